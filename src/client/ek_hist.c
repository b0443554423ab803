#include "ek_hist.h"

#include <string.h>

void ek_hist_reset(struct ek_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

static unsigned bucket_of(uint64_t v)
{
    if (v < EK_HIST_LINEAR)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v); /* >= 8 */
    unsigned shift = msb - 7;                          /* v>>shift: 128..255 */
    unsigned mant = (unsigned)(v >> shift);
    return EK_HIST_LINEAR + (shift - 1) * EK_HIST_SUB + (mant - EK_HIST_SUB);
}

uint64_t ek_hist_bucket_mid(unsigned i)
{
    if (i < EK_HIST_LINEAR)
        return i;
    unsigned k = i - EK_HIST_LINEAR;
    unsigned shift = k / EK_HIST_SUB + 1;
    uint64_t low = (uint64_t)(k % EK_HIST_SUB + EK_HIST_SUB) << shift;
    return low + ((uint64_t)1 << shift) / 2;
}

void ek_hist_add_n(struct ek_hist *h, uint64_t value, uint64_t n)
{
    if (n == 0)
        return;
    h->buckets[bucket_of(value)] += n;
    h->count += n;
    h->sum += (long double)value * (long double)n;
    if (value < h->min)
        h->min = value;
    if (value > h->max)
        h->max = value;
}

void ek_hist_add(struct ek_hist *h, uint64_t value)
{
    ek_hist_add_n(h, value, 1);
}

void ek_hist_merge(struct ek_hist *into, const struct ek_hist *from)
{
    for (unsigned i = 0; i < EK_HIST_BUCKETS; i++)
        into->buckets[i] += from->buckets[i];
    into->count += from->count;
    into->sum += from->sum;
    if (from->min < into->min)
        into->min = from->min;
    if (from->max > into->max)
        into->max = from->max;
}

uint64_t ek_hist_quantile(const struct ek_hist *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q <= 0)
        return h->min;
    if (q >= 1)
        return h->max;
    uint64_t rank = (uint64_t)(q * (double)h->count);
    if ((double)rank < q * (double)h->count)
        rank++; /* ceil */
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < EK_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = ek_hist_bucket_mid(i);
            return v < h->min ? h->min : v > h->max ? h->max : v;
        }
    }
    return h->max;
}

double ek_hist_mean(const struct ek_hist *h)
{
    return h->count ? (double)(h->sum / (long double)h->count) : 0.0;
}
