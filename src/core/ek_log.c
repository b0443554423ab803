#include "ek_log.h"
#include "ek_quote.h"
#include "ek_util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int log_level = EK_LOG_INFO;
static bool log_json;

static const char *const level_names[] = {"error", "warn", "info", "debug",
                                          "trace"};

void ek_log_set_level(int level)
{
    if (level < EK_LOG_OFF)
        level = EK_LOG_OFF;
    if (level > EK_LOG_TRACE)
        level = EK_LOG_TRACE;
    log_level = level;
}

int ek_log_get_level(void)
{
    return log_level;
}

void ek_log_set_json(int on)
{
    log_json = on != 0;
}

/* Writes the whole line or gives up: stderr is best effort, and a log line
 * must never block or kill the server (EPIPE is ignored with SIGPIPE). */
static void write_line(const char *buf, size_t len)
{
    int saved = errno;
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        buf += n;
        len -= (size_t)n;
    }
    errno = saved;
}

static void vlog(int level, const char *prefix, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

static void vlog(int level, const char *prefix, const char *fmt, va_list ap)
{
    char msg[1024], line[2048], stamp[40];
    struct timespec ts;
    struct tm tm;
    size_t len;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    len = strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + len, sizeof(stamp) - len, ".%03ldZ",
             ts.tv_nsec / 1000000L);
    int n = snprintf(msg, sizeof(msg), "%s", prefix);
    if (n >= 0 && (size_t)n < sizeof(msg))
        vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);

    /* The message is escaped whole (ek_quote.h): it may carry a peer's
     * bytes. A line longer than the buffer is cut between escapes. */
    if (log_json) {
        /* One object per line: {"ts":..., "level":..., "msg":...}. */
        len = (size_t)snprintf(line, sizeof(line),
                               "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"",
                               stamp, level_names[level]);
        ek_escape_json(line, sizeof(line) - 3, &len, msg);
        memcpy(line + len, "\"}", 2);
        len += 2;
    } else {
        len = (size_t)snprintf(line, sizeof(line), "%s %s: ", stamp,
                               level_names[level]);
        ek_escape_text(line, sizeof(line) - 1, &len, msg);
    }
    line[len++] = '\n';
    write_line(line, len);
}

void ek_log(int level, const char *fmt, ...)
{
    va_list ap;
    if (!ek_log_enabled(level))
        return;
    va_start(ap, fmt);
    vlog(level, "", fmt, ap);
    va_end(ap);
}

void ek_log_limited(struct ek_ratelimit *rl, int level, const char *fmt, ...)
{
    va_list ap;
    char prefix[64] = "";
    int64_t now = ek_now_ms();

    if (!ek_log_enabled(level))
        return;
    if (rl->window_ms != 0 && now - rl->window_ms < 1000) {
        rl->suppressed++;
        return;
    }
    if (rl->suppressed > 0)
        snprintf(prefix, sizeof(prefix), "(%llu similar lines suppressed) ",
                 (unsigned long long)rl->suppressed);
    rl->window_ms = now;
    rl->suppressed = 0;
    va_start(ap, fmt);
    vlog(level, prefix, fmt, ap);
    va_end(ap);
}

void ek_warnx(const char *fmt, ...)
{
    char msg[1024], line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t len = 0;
    ek_escape_text(line, sizeof(line) - 1, &len, "echokit: ");
    ek_escape_text(line, sizeof(line) - 1, &len, msg);
    line[len++] = '\n';
    write_line(line, len);
}
