/*
 * ek_log: one log line per event, on stderr, written with a single write(2)
 * so that lines from several threads or processes never interleave.
 *
 * The level is process-wide (set once from -v/-q at start-up), like redis'
 * server.verbosity: every module logs, and threading a logger through each
 * call would buy nothing.
 */
#ifndef EK_LOG_H
#define EK_LOG_H

#include <stdint.h>

enum ek_log_level {
    EK_LOG_OFF = -1, /* nothing at all (--inetd on a shared stderr) */
    EK_LOG_ERROR = 0,
    EK_LOG_WARN = 1,
    EK_LOG_INFO = 2,  /* default */
    EK_LOG_DEBUG = 3, /* -v: every connection opened and closed */
    EK_LOG_TRACE = 4, /* -vv */
};

void ek_log_set_level(int level);
int ek_log_get_level(void);

/* --log-format json: each line one JSON object, {"ts": RFC 3339 UTC,
 * "level", "msg"}, for log shippers. Default: text. */
void ek_log_set_json(int on);

static inline int ek_log_enabled(int level)
{
    return level <= ek_log_get_level();
}

/* "2026-11-25T12:02:37.123Z warn: <message>\n" on stderr. */
void ek_log(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* A log line that may repeat at a high rate (refused connections, accept
 * errors): at most one line per second per limiter; the next line that gets
 * through says how many were suppressed. Not thread-safe: one limiter per
 * thread. The zero value is ready to use. */
struct ek_ratelimit {
    int64_t window_ms;
    uint64_t suppressed;
};
void ek_log_limited(struct ek_ratelimit *rl, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* CLI-edge messages, err(3)-style: "echokit: <message>\n". */
void ek_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
