/*
 * ek_hist: a latency histogram with bounded memory and ~0.4% precision,
 * after HdrHistogram: values below 256 have a bucket each; above, every
 * power of two is split into 128 buckets, so a bucket is at most 1/128 of
 * its value wide and its midpoint is within 0.4% of any value in it.
 *
 * Values are nanoseconds (any unit works). One histogram is 58 KiB,
 * whatever it counts; merge per-thread histograms at the end.
 */
#ifndef EK_HIST_H
#define EK_HIST_H

#include <stdint.h>

#define EK_HIST_LINEAR 256
#define EK_HIST_SUB 128
#define EK_HIST_BUCKETS (EK_HIST_LINEAR + 56 * EK_HIST_SUB)

struct ek_hist {
    uint64_t count;
    uint64_t min, max; /* exact */
    long double sum;   /* exact mean without overflow */
    uint64_t buckets[EK_HIST_BUCKETS];
};

void ek_hist_reset(struct ek_hist *h);
void ek_hist_add(struct ek_hist *h, uint64_t value);
/* n values at value at once (a decoded histogram's bucket). */
void ek_hist_add_n(struct ek_hist *h, uint64_t value, uint64_t n);
void ek_hist_merge(struct ek_hist *into, const struct ek_hist *from);

/* The value at quantile q (0..1): the midpoint of the bucket holding the
 * ceil(q * count)-th smallest value, clamped to [min, max]; 0 if empty. */
uint64_t ek_hist_quantile(const struct ek_hist *h, double q);

double ek_hist_mean(const struct ek_hist *h);

/* The midpoint of bucket i (< EK_HIST_BUCKETS): what it reports. */
uint64_t ek_hist_bucket_mid(unsigned i);

#endif
