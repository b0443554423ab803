#include "ek_pattern.h"

#include <string.h>

static inline uint64_t mix(uint64_t key, uint64_t word)
{
    uint64_t x = key * 0x9e3779b97f4a7c15ull + word;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* Word i of a stream, as the 8 bytes it is on the wire: little-endian
 * whatever the host, so streams are portable. */
static inline uint64_t wire_word(uint64_t key, uint64_t i)
{
    uint64_t w = mix(key, i);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

void ek_pattern_fill(uint64_t key, uint64_t off, void *buf, size_t n)
{
    unsigned char *p = buf;
    uint64_t w;
    if (off & 7) { /* the rest of a partly sent word */
        size_t skip = (size_t)(off & 7), k = 8 - skip < n ? 8 - skip : n;
        w = wire_word(key, off >> 3);
        memcpy(p, (unsigned char *)&w + skip, k);
        p += k;
        off += k;
        n -= k;
    }
    for (; n >= 8; p += 8, off += 8, n -= 8) {
        w = wire_word(key, off >> 3);
        memcpy(p, &w, 8);
    }
    if (n > 0) {
        w = wire_word(key, off >> 3);
        memcpy(p, &w, n);
    }
}

/* The index of the first differing byte in a word known to differ. */
static size_t first_diff(const unsigned char *a, const unsigned char *b,
                         size_t n)
{
    size_t i = 0;
    while (i < n && a[i] == b[i])
        i++;
    return i;
}

size_t ek_pattern_check(uint64_t key, uint64_t off, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    size_t done = 0;
    uint64_t w, got;
    if (off & 7) {
        size_t skip = (size_t)(off & 7), k = 8 - skip < n ? 8 - skip : n;
        w = wire_word(key, off >> 3);
        const unsigned char *want = (unsigned char *)&w + skip;
        if (memcmp(p, want, k) != 0)
            return first_diff(p, want, k);
        done = k;
        off += k;
    }
    for (; n - done >= 8; done += 8, off += 8) {
        w = wire_word(key, off >> 3);
        memcpy(&got, p + done, 8);
        if (got != w)
            return done + first_diff(p + done, (unsigned char *)&w, 8);
    }
    if (done < n) {
        w = wire_word(key, off >> 3);
        if (memcmp(p + done, &w, n - done) != 0)
            return done + first_diff(p + done, (unsigned char *)&w, n - done);
    }
    return n;
}
