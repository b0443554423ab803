#include "ek_util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

/* strtoull accepts leading blanks and a sign ("-1" wraps to a huge value);
 * a command-line number must start with a digit. */
static int parse_digits(const char *s, uint64_t *out, char **end,
                        const char **why)
{
    if (!isdigit((unsigned char)*s)) {
        *why = "not a number";
        return -EINVAL;
    }
    errno = 0;
    unsigned long long v = strtoull(s, end, 10);
    if (errno == ERANGE) {
        *why = "number too large";
        return -ERANGE;
    }
    *out = v;
    return 0;
}

static int check_range(uint64_t v, uint64_t min, uint64_t max, const char **why)
{
    /* Per thread so that concurrent parsers (tests) cannot clobber it. */
    static _Thread_local char msg[80];

    if (v >= min && v <= max)
        return 0;
    if (max == UINT64_MAX)
        snprintf(msg, sizeof(msg), "must be at least %llu",
                 (unsigned long long)min);
    else
        snprintf(msg, sizeof(msg), "must be between %llu and %llu",
                 (unsigned long long)min, (unsigned long long)max);
    *why = msg;
    return -ERANGE;
}

int ek_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out,
                  const char **why)
{
    uint64_t v;
    char *end;
    int err = parse_digits(s, &v, &end, why);
    if (err < 0)
        return err;
    if (*end != '\0') {
        *why = "not a number";
        return -EINVAL;
    }
    err = check_range(v, min, max, why);
    if (err == 0)
        *out = v;
    return err;
}

static int size_multiplier(const char *suffix, uint64_t *mult)
{
    static const struct {
        const char *names[4];
        uint64_t mult;
    } units[] = {
        {{"", "b", NULL, NULL}, 1},
        {{"k", "kb", "kib", NULL}, 1ull << 10},
        {{"m", "mb", "mib", NULL}, 1ull << 20},
        {{"g", "gb", "gib", NULL}, 1ull << 30},
    };
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        for (size_t j = 0; j < 4 && units[i].names[j] != NULL; j++)
            if (strcasecmp(suffix, units[i].names[j]) == 0) {
                *mult = units[i].mult;
                return 0;
            }
    return -EINVAL;
}

int ek_parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out,
                  const char **why)
{
    uint64_t v, mult;
    char *end;
    int err = parse_digits(s, &v, &end, why);
    if (err < 0)
        return err;
    if (size_multiplier(end, &mult) < 0) {
        *why = "unknown unit (use a plain byte count or K, M, G)";
        return -EINVAL;
    }
    if (v > UINT64_MAX / mult) {
        *why = "number too large";
        return -ERANGE;
    }
    v *= mult;
    err = check_range(v, min, max, why);
    if (err == 0)
        *out = v;
    return err;
}

int ek_parse_seconds(const char *s, int64_t max_ms, int64_t *out_ms,
                     const char **why)
{
    int64_t us;
    int err = ek_parse_seconds_us(s, max_ms * 1000, &us, why);
    if (err == 0)
        *out_ms = (us + 999) / 1000;
    return err;
}

int ek_parse_seconds_us(const char *s, int64_t max_us, int64_t *out_us,
                        const char **why)
{
    uint64_t whole, frac = 0, scale = 1;
    char *end;
    int err = parse_digits(s, &whole, &end, why);
    if (err < 0)
        return err;
    if (*end == '.') {
        const char *p = end + 1;
        if (!isdigit((unsigned char)*p)) {
            *why = "not a number of seconds";
            return -EINVAL;
        }
        /* Digits past the microsecond cannot matter; skip them. */
        for (; isdigit((unsigned char)*p); p++)
            if (scale < 1000000) {
                frac = frac * 10 + (uint64_t)(*p - '0');
                scale *= 10;
            }
        end = (char *)p;
    }
    if (*end != '\0') {
        *why = "not a number of seconds";
        return -EINVAL;
    }
    if (whole > (uint64_t)max_us / 1000000) {
        static _Thread_local char msg[64];
        snprintf(msg, sizeof(msg), "must be at most %lld seconds",
                 (long long)(max_us / 1000000));
        *why = msg;
        return -ERANGE;
    }
    *out_us = (int64_t)(whole * 1000000 + frac * (1000000 / scale));
    return 0;
}

int64_t ek_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t ek_now_ms(void)
{
    return ek_now_ns() / 1000000;
}

int ek_timeout_until(int64_t deadline_ms)
{
    if (deadline_ms < 0)
        return -1;
    int64_t left = deadline_ms - ek_now_ms();
    if (left < 0)
        return 0;
    return left > INT32_MAX ? INT32_MAX : (int)left;
}

int ek_timeout_min(int a, int b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

int ek_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* ---- SipHash-2-4 (Aumasson and Bernstein, 2012) ----------------------- */

static uint64_t rotl64(uint64_t x, unsigned b)
{
    return (x << b) | (x >> (64 - b));
}

static void sip_round(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = rotl64(v[1], 13) ^ v[0];
    v[0] = rotl64(v[0], 32);
    v[2] += v[3];
    v[3] = rotl64(v[3], 16) ^ v[2];
    v[0] += v[3];
    v[3] = rotl64(v[3], 21) ^ v[0];
    v[2] += v[1];
    v[1] = rotl64(v[1], 17) ^ v[2];
    v[2] = rotl64(v[2], 32);
}

static void sip_absorb(uint64_t v[4], uint64_t m)
{
    v[3] ^= m;
    sip_round(v);
    sip_round(v);
    v[0] ^= m;
}

uint64_t ek_siphash(const void *data, size_t n, const uint64_t key[2])
{
    const unsigned char *p = data;
    uint64_t v[4] = {
        key[0] ^ 0x736f6d6570736575ULL, key[1] ^ 0x646f72616e646f6dULL,
        key[0] ^ 0x6c7967656e657261ULL, key[1] ^ 0x7465646279746573ULL};
    size_t whole = n - n % 8;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = 0;
        for (unsigned j = 0; j < 8; j++) /* little-endian, any host */
            m |= (uint64_t)p[i + j] << (8 * j);
        sip_absorb(v, m);
    }
    uint64_t last = (uint64_t)(n & 0xff) << 56;
    for (size_t j = 0; j < n % 8; j++)
        last |= (uint64_t)p[whole + j] << (8 * j);
    sip_absorb(v, last);
    v[2] ^= 0xff;
    for (int r = 0; r < 4; r++)
        sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

char *ek_read_all(FILE *f, size_t max, size_t *len)
{
    size_t cap = 0, n = 0;
    char *buf = NULL;
    for (;;) {
        if (n + 4096 > cap) {
            size_t bigger = cap ? 2 * cap : 65536;
            char *b = bigger <= max ? realloc(buf, bigger + 1) : NULL;
            if (b == NULL) {
                errno = bigger > max ? EFBIG : ENOMEM;
                break;
            }
            buf = b;
            cap = bigger;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    if (buf == NULL || ferror(f) || !feof(f)) {
        if (errno == 0)
            errno = EIO;
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

int ek_fd_limit_raise(unsigned long long *from, unsigned long long *to)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
        return 0;
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        return 0;
    if (from != NULL)
        *from = (unsigned long long)old;
    if (to != NULL)
        *to = (unsigned long long)rl.rlim_cur;
    return 1;
}

void ek_vappendf(char *buf, size_t size, size_t *len, const char *fmt,
                 va_list ap)
{
    int n = vsnprintf(*len < size ? buf + *len : NULL,
                      *len < size ? size - *len : 0, fmt, ap);
    if (n > 0)
        *len += (size_t)n;
}

void ek_appendf(char *buf, size_t size, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ek_vappendf(buf, size, len, fmt, ap);
    va_end(ap);
}
