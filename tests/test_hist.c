/* Unit test of ek_hist (precision, quantiles, merge) and of ek_hdr, its
 * HdrHistogram encoding (the test that another implementation reads it is
 * cli.bench_hdr_log, with HdrHistogram's own Java library). */
#include "check.h"
#include "hdr_crafted.h"
#include "ek_hdr.h"
#include "ek_hist.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static struct ek_hist a, b;

/* Every value is reported within 0.4% (exactly below 256). */
static void test_precision(void)
{
    uint64_t v = 1;
    while (v < (1ull << 62)) {
        ek_hist_reset(&a);
        ek_hist_add(&a, v);
        ek_hist_add(&a, v + 1); /* min/max clamping must not hide errors */
        ek_hist_add(&a, 0);
        uint64_t got = ek_hist_quantile(&a, 0.5);
        double err = fabs((double)got - (double)v) / (double)v;
        if (v < 256)
            CHECK_INT(got, ==, v);
        else if (err > 0.004) {
            fprintf(stderr, "value %llu reported as %llu (%.3f%%)\n",
                    (unsigned long long)v, (unsigned long long)got, err * 100);
            exit(1);
        }
        v = v * 3 / 2 + 1;
    }
}

static void test_quantiles(void)
{
    ek_hist_reset(&a);
    for (uint64_t v = 1; v <= 1000000; v++)
        ek_hist_add(&a, v);
    CHECK_INT(a.count, ==, 1000000);
    CHECK_INT(a.min, ==, 1);
    CHECK_INT(a.max, ==, 1000000);
    double qs[] = {0.5, 0.9, 0.99, 0.999};
    for (int i = 0; i < 4; i++) {
        double want = qs[i] * 1e6;
        double got = (double)ek_hist_quantile(&a, qs[i]);
        CHECK(fabs(got - want) / want < 0.01);
    }
    CHECK_INT(ek_hist_quantile(&a, 0), ==, 1);
    CHECK_INT(ek_hist_quantile(&a, 1), ==, 1000000);
    CHECK(fabs(ek_hist_mean(&a) - 500000.5) < 0.01);

    /* A heavy tail: 99% at 10 us, 1% at 5 ms. */
    ek_hist_reset(&a);
    for (int i = 0; i < 9900; i++)
        ek_hist_add(&a, 10000);
    for (int i = 0; i < 100; i++)
        ek_hist_add(&a, 5000000);
    CHECK(ek_hist_quantile(&a, 0.99) < 10100);
    CHECK(ek_hist_quantile(&a, 0.995) > 4900000);
}

static void test_merge_and_empty(void)
{
    ek_hist_reset(&a);
    ek_hist_reset(&b);
    CHECK_INT(ek_hist_quantile(&a, 0.5), ==, 0);
    CHECK(ek_hist_mean(&a) == 0.0);
    for (uint64_t v = 1; v <= 1000; v++)
        ek_hist_add(v % 2 ? &a : &b, v);
    ek_hist_merge(&a, &b);
    CHECK_INT(a.count, ==, 1000);
    CHECK_INT(a.min, ==, 1);
    CHECK_INT(a.max, ==, 1000);
    uint64_t p50 = ek_hist_quantile(&a, 0.5);
    CHECK(p50 >= 495 && p50 <= 505);
}

/* Encoding then decoding gives every bucket back. */
static void test_hdr_round_trip(void)
{
    ek_hist_reset(&a);
    for (uint64_t v = 1; v < (1ull << 50); v = v * 5 / 4 + 1)
        ek_hist_add_n(&a, v, v % 7 + 1);
    ek_hist_add_n(&a, 1ull << 40, 1ull << 40); /* a count past 4 bytes */
    char *text = ek_hdr_encode(&a);
    CHECK(text != NULL);
    CHECK(strncmp(text, "HISTF", 5) == 0); /* compressed V2's cookie */
    ek_hist_reset(&b);
    const char *why = NULL;
    CHECK_INT(ek_hdr_decode_add(text, strlen(text), &b, NULL, &why), ==, 0);
    CHECK_INT(b.count, ==, a.count);
    CHECK(memcmp(a.buckets, b.buckets, sizeof(a.buckets)) == 0);
    /* Added, not replaced. */
    CHECK_INT(ek_hdr_decode_add(text, strlen(text), &b, NULL, &why), ==, 0);
    CHECK_INT(b.count, ==, 2 * a.count);
    free(text);

    ek_hist_reset(&a); /* empty */
    text = ek_hdr_encode(&a);
    CHECK(text != NULL);
    ek_hist_reset(&b);
    CHECK_INT(ek_hdr_decode_add(text, strlen(text), &b, NULL, &why), ==, 0);
    CHECK_INT(b.count, ==, 0);
    free(text);
}

/* Damaged or foreign input is refused with a reason, never read past. */
static void test_hdr_refused(void)
{
    ek_hist_reset(&a);
    for (uint64_t v = 1; v < 100000; v += 37)
        ek_hist_add(&a, v);
    char *text = ek_hdr_encode(&a);
    CHECK(text != NULL);
    size_t len = strlen(text);
    const char *why = NULL;
    CHECK_INT(ek_hdr_decode_add("not base64!", 11, &b, NULL, &why), ==,
              -EINVAL);
    CHECK(why != NULL);
    CHECK_INT(ek_hdr_decode_add(text, len / 2, &b, NULL, &why), ==, -EINVAL);
    /* Every single-character change: refused or decoded, within bounds
     * (the sanitizers watch the reads). */
    for (size_t i = 0; i < len; i++) {
        char *bad = strdup(text);
        CHECK(bad != NULL);
        bad[i] = bad[i] == 'A' ? 'z' : 'A';
        ek_hist_reset(&b);
        (void)ek_hdr_decode_add(bad, len, &b, NULL, &why);
        free(bad);
    }
    free(text);
}

/* A compressed V2 histogram (2 digits, lowest 1) holding the given
 * ZigZag LEB128 words, as base64: what a hostile file may carry. */
static char *encode_words(const int64_t *words, size_t n)
{
    uint8_t raw[16 * 10];
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t v =
            ((uint64_t)words[i] << 1) ^ (words[i] < 0 ? UINT64_MAX : 0);
        for (int k = 0; k < 8 && v >= 0x80; k++, v >>= 7)
            raw[len++] = (uint8_t)(v | 0x80);
        raw[len++] = (uint8_t)v;
    }
    return hdr_crafted(raw, len, 2);
}

/* Counts that wrap: runs of zeros that carry the index round 2^64 back
 * to a small value, a run of INT64_MIN, counts past 2^63 in all: each
 * refused (a review found the first and the last accepted, as 7 values
 * at 0.1 us and as one value). */
static void test_hdr_wraps_refused(void)
{
    const int64_t big = -((int64_t)1 << 62);
    const int64_t wrap[] = {big, big, big, big, -100, 7};
    const int64_t min_run[] = {INT64_MIN, 1};
    const int64_t too_many[] = {INT64_MAX, 3};
    const int64_t fine[] = {-100, 7, 0, 5};
    const struct {
        const int64_t *w;
        size_t n;
        int want;
    } cases[] = {{wrap, 6, -EINVAL},
                 {min_run, 2, -EINVAL},
                 {too_many, 2, -EINVAL},
                 {fine, 4, 0}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *text = encode_words(cases[i].w, cases[i].n);
        const char *why = "";
        ek_hist_reset(&b);
        CHECK_INT(ek_hdr_decode_add(text, strlen(text), &b, NULL, &why), ==,
                  cases[i].want);
        free(text);
    }
    CHECK_INT(b.count, ==, 12); /* the fine one: 7 at 100, 5 at 102 */
    CHECK_INT(b.buckets[100], ==, 7);
    CHECK_INT(b.buckets[102], ==, 5);
}

/* What decoding may cost is bounded: a histogram of more than
 * EK_HDR_WORDS_MAX words is refused (a few KiB of base64 decoded to 6.16
 * million before: 31 ms each), and a budget shared by several decodes
 * (bench merge's per file) refuses what would pass it, -E2BIG. */
static void test_hdr_bounds(void)
{
    const char *why = "";
    char *most = hdr_crafted_ones(EK_HDR_WORDS_MAX);
    char *more = hdr_crafted_ones(EK_HDR_WORDS_MAX + 1);
    printf("2^21 words: %zu bytes of base64; 2^21 + 1: %zu\n", strlen(most),
           strlen(more));
    ek_hist_reset(&b);
    CHECK_INT(ek_hdr_decode_add(most, strlen(most), &b, NULL, &why), ==, 0);
    CHECK_INT(b.count, ==, EK_HDR_WORDS_MAX);
    CHECK_INT(ek_hdr_decode_add(more, strlen(more), &b, NULL, &why), ==,
              -EINVAL);
    CHECK(strstr(why, "more than 2097152 counts in one histogram") != NULL);
    free(most);
    free(more);

    char *some = hdr_crafted_ones(600);
    struct ek_hdr_budget budget = {.words = 1000, .bytes = 1 << 20};
    ek_hist_reset(&b);
    CHECK_INT(ek_hdr_decode_add(some, strlen(some), &b, &budget, &why), ==, 0);
    CHECK_INT(budget.words, ==, 400);
    CHECK_INT(budget.bytes, ==, (1 << 20) - 640); /* header and words */
    CHECK_INT(ek_hdr_decode_add(some, strlen(some), &b, &budget, &why), ==,
              -E2BIG);
    budget = (struct ek_hdr_budget){.words = 1000, .bytes = 639};
    CHECK_INT(ek_hdr_decode_add(some, strlen(some), &b, &budget, &why), ==,
              -E2BIG);

    /* A log's lines share its budget; its #[RunId: ...] is read, one. */
    char log[4096];
    snprintf(log, sizeof(log),
             "#[RunId: 0123456789abcdef0123456789abcdef]\n"
             "0.0,1.0,1.0,%s\n1.0,1.0,1.0,%s\n",
             some, some);
    FILE *f = fmemopen(log, strlen(log), "r");
    CHECK(f != NULL);
    struct ek_hdr_log l;
    size_t line;
    budget = (struct ek_hdr_budget){.words = 1000, .bytes = 1 << 20};
    CHECK_INT(ek_hdr_log_read(f, &l, &budget, &why, &line), ==, -E2BIG);
    CHECK_INT(line, ==, 3);
    ek_hdr_log_free(&l);
    rewind(f);
    budget.words = 1200;
    CHECK_INT(ek_hdr_log_read(f, &l, &budget, &why, &line), ==, 0);
    CHECK_STR(l.run_id, "0123456789abcdef0123456789abcdef");
    ek_hdr_log_free(&l);
    fclose(f);
    snprintf(log, sizeof(log),
             "#[RunId: 0123456789abcdef0123456789abcdef]\n"
             "#[RunId: ffffffffffffffffffffffffffffffff]\n0.0,1.0,1.0,%s\n",
             some);
    f = fmemopen(log, strlen(log), "r");
    CHECK(f != NULL);
    CHECK_INT(ek_hdr_log_read(f, &l, NULL, &why, &line), ==, -EINVAL);
    CHECK(strstr(why, "a second #[RunId") != NULL);
    ek_hdr_log_free(&l);
    fclose(f);
    free(some);
}

int main(void)
{
    test_precision();
    test_quantiles();
    test_merge_and_empty();
    test_hdr_round_trip();
    test_hdr_refused();
    test_hdr_wraps_refused();
    test_hdr_bounds();
    printf("PASS: hist\n");
    return 0;
}
