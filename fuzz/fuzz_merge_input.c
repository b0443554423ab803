/*
 * Fuzz target: what `bench merge` reads from files it is given, which may
 * come from anywhere: the JSON reader (ek_json.h), HdrHistogram's
 * compressed histograms (ek_hdr_decode_add) and interval logs
 * (ek_hdr_log_read).
 *
 * Any bytes in. The JSON reader must agree with itself (checking alone
 * and recording fields give the same verdict) and every field must lie
 * within the input; a histogram decoded must count what its buckets hold;
 * nothing may read past the input or allocate without bound (a few bytes
 * of deflate claiming gigabytes are refused at 18 MiB, and past what a
 * budget leaves).
 */
#include "ek_hdr.h"
#include "ek_json.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_hist(const struct ek_hist *h)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < EK_HIST_BUCKETS; i++)
        n += h->buckets[i];
    if (n != h->count)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    struct ek_json j;
    int checked = ek_json_parse(text, NULL);
    int parsed = ek_json_parse(text, &j);
    if (parsed != -ENOMEM && (checked == 0) != (parsed == 0))
        abort();
    for (size_t i = 0; i < j.n; i++)
        if (j.fields[i].value < text ||
            j.fields[i].value + j.fields[i].len > text + size)
            abort();
    ek_json_free(&j);

    static struct ek_hist h;
    const char *why;
    ek_hist_reset(&h);
    struct ek_hdr_budget budget = {.words = 1u << 16, .bytes = 1u << 20};
    if (ek_hdr_decode_add(text, size, &h, &budget, &why) == 0)
        check_hist(&h);

    FILE *f = fmemopen(text, size ? size : 1, "r");
    if (f != NULL) {
        struct ek_hdr_log log;
        size_t line;
        budget = (struct ek_hdr_budget){.words = 1u << 16, .bytes = 1u << 20};
        if (ek_hdr_log_read(f, &log, &budget, &why, &line) == 0)
            for (size_t i = 0; i < log.ntags; i++)
                check_hist(log.hist[i]);
        ek_hdr_log_free(&log);
        fclose(f);
    }
    free(text);
    return 0;
}
