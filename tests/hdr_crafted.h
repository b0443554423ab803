/*
 * hdr_crafted.h: HdrHistogram histograms made by hand, as a hostile file
 * may carry them, for the tests of ek_hdr (unit.test_hist) and of bench
 * merge (cli.bench_merge_crafted). Static functions: include it once per
 * test program, after check.h.
 */
#ifndef EK_TESTS_HDR_CRAFTED_H
#define EK_TESTS_HDR_CRAFTED_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* A compressed V2 histogram of the given payload (ZigZag LEB128 words) at
 * digits significant digits, lowest value 1, as base64 (malloc'd). */
static inline char *hdr_crafted(const uint8_t *payload, size_t n,
                                unsigned digits)
{
    size_t len = 40 + n;
    uint8_t *raw = calloc(1, len);
    uLongf plen = compressBound((uLong)len);
    uint8_t *packed = malloc(8 + plen);
    CHECK(raw != NULL && packed != NULL);
    memcpy(raw + 40, payload, n);
    const uint64_t fields[] = {0x1c849313, n, 0, digits};
    for (int f = 0; f < 4; f++)
        for (int k = 0; k < 4; k++)
            raw[f * 4 + k] = (uint8_t)(fields[f] >> (24 - 8 * k));
    raw[23] = 1;                    /* lowest discernible value */
    raw[24] = 0x40;                 /* highest trackable: 2^62 */
    raw[32] = 0x3f, raw[33] = 0xf0; /* 1.0 */
    CHECK(compress2(packed + 8, &plen, raw, (uLong)len, 9) == Z_OK);
    const uint32_t head[] = {0x1c849314, (uint32_t)plen};
    for (int f = 0; f < 2; f++)
        for (int k = 0; k < 4; k++)
            packed[f * 4 + k] = (uint8_t)(head[f] >> (24 - 8 * k));
    static const char b64[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=";
    size_t total = plen + 8, o = 0;
    char *out = malloc((total + 2) / 3 * 4 + 1);
    CHECK(out != NULL);
    for (size_t i = 0; i < total; i += 3) {
        uint32_t v = (uint32_t)packed[i] << 16 |
                     (i + 1 < total ? (uint32_t)packed[i + 1] << 8 : 0) |
                     (i + 2 < total ? packed[i + 2] : 0);
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = b64[i + 1 < total ? v >> 6 & 63 : 64];
        out[o++] = b64[i + 2 < total ? v & 63 : 64];
    }
    out[o] = '\0';
    free(raw);
    free(packed);
    return out;
}

/* n counts of 1 (ZigZag 2, one byte each) at 5 significant digits,
 * HdrHistogram's finest, where the most fit (6.16 million before 2^63):
 * a few KiB that decode to millions of counts. */
static inline char *hdr_crafted_ones(size_t n)
{
    uint8_t *ones = malloc(n ? n : 1);
    CHECK(ones != NULL);
    memset(ones, 2, n);
    char *text = hdr_crafted(ones, n, 5);
    free(ones);
    return text;
}

#endif
