/*
 * ek_util: number parsing for the command line and the monotonic clock.
 *
 * Parsers return 0, or -EINVAL / -ERANGE with *why set to a short phrase
 * for the user ("not a number", "must be at most 65535").
 */
#ifndef EK_UTIL_H
#define EK_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

/* EK_TSAN: built with ThreadSanitizer (gcc or clang), whose runtime needs
 * a little help with signals (ek_signal.c, model_uring.c). */
#if defined(__SANITIZE_THREAD__)
#define EK_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define EK_TSAN 1
#endif
#endif

/* A plain decimal integer in [min, max]. */
int ek_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out,
                  const char **why);

/* A byte count: decimal with an optional binary suffix, case-insensitive:
 * k/kb/kib = 1024, m/mb/mib = 1024^2, g/gb/gib = 1024^3. */
int ek_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out,
                  const char **why);

/* Seconds, fractional allowed ("10", "0.25"), converted to milliseconds
 * (rounded up so that "0.0001" is not 0). */
int ek_parse_seconds(const char *s, int64_t max_ms, int64_t *out_ms,
                     const char **why);

/* The same to the microsecond (digits past it are ignored). */
int ek_parse_seconds_us(const char *s, int64_t max_us, int64_t *out_us,
                        const char **why);

/* The monotonic clock (CLOCK_MONOTONIC), in nanoseconds: the one clock
 * for deadlines, timeouts and latencies; ek_now_ms is the same clock in
 * milliseconds. */
/* SipHash-2-4 of n bytes under a 128-bit key: the keyed hash for tables
 * whose keys a peer chooses (an unkeyed hash lets it pick colliding
 * keys). */
uint64_t ek_siphash(const void *data, size_t n, const uint64_t key[2]);

int64_t ek_now_ns(void);
int64_t ek_now_ms(void);

/* Milliseconds from now until deadline_ms, clamped to [0, INT32_MAX], for
 * poll()-style timeouts; -1 (wait forever) when deadline_ms < 0. */
int ek_timeout_until(int64_t deadline_ms);

/* The smaller of two poll()-style timeouts, where -1 means forever. */
int ek_timeout_min(int a, int b);

/* Raises the soft RLIMIT_NOFILE to the hard one (a process for many
 * connections wants many descriptors; lower the hard limit to bound it:
 * ulimit -Hn, LimitNOFILE=). Returns 1 when it did, with the limits
 * before and after in *from and *to (each may be NULL), else 0. */
int ek_fd_limit_raise(unsigned long long *from, unsigned long long *to);

/* write(2) until all of buf is written (EINTR retried). Returns 0 or
 * -errno. */
int ek_write_all(int fd, const void *buf, size_t len);

/* snprintf that appends at *len and keeps counting past the end (so that
 * *len >= size says the text was cut). */
void ek_appendf(char *buf, size_t size, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void ek_vappendf(char *buf, size_t size, size_t *len, const char *fmt,
                 va_list ap) __attribute__((format(printf, 4, 0)));

/* All of f, to its end, NUL-terminated, malloc'd, its length in *len;
 * NULL with errno set (EFBIG when it is longer than max, which is at
 * least 64 KiB; EIO on a read error). */
char *ek_read_all(FILE *f, size_t max, size_t *len);

#endif
