#include "ek_log.h"
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

/* Appends text to out[*len..size) as the inside of a JSON string. */
static void json_escape(char *out, size_t size, size_t *len, const char *text)
{
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
        char esc[8];
        size_t n = 1;
        esc[0] = (char)*p;
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            n = 2;
        } else if (*p < 0x20) {
            n = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", *p);
        }
        if (*len + n >= size)
            return;
        memcpy(out + *len, esc, n);
        *len += n;
    }
}

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

    if (log_json) {
        /* One object per line: {"ts":..., "level":..., "msg":...}. */
        len = (size_t)snprintf(line, sizeof(line),
                               "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"",
                               stamp, level_names[level]);
        json_escape(line, sizeof(line) - 3, &len, msg);
        memcpy(line + len, "\"}", 2);
        len += 2;
    } else {
        n = snprintf(line, sizeof(line), "%s %s: %s", stamp, level_names[level],
                     msg);
        len = n < 0 ? 0 : (size_t)n;
        if (len > sizeof(line) - 2)
            len = sizeof(line) - 2; /* truncated: keep the newline */
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
    char line[1024];
    va_list ap;
    int n = snprintf(line, sizeof(line), "echokit: ");
    va_start(ap, fmt);
    int m = vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = m < 0 ? (size_t)n : (size_t)n + (size_t)m;
    if (len > sizeof(line) - 2)
        len = sizeof(line) - 2;
    line[len++] = '\n';
    write_line(line, len);
}
