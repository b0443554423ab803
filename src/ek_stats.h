/*
 * ek_stats: the server's counters. They live in one shared anonymous
 * mapping (see ek_server_open) so that forked children of the process
 * model count into the same place as threads and loops; every update is a
 * relaxed atomic add, exact without ordering anything else.
 */
#ifndef EK_STATS_H
#define EK_STATS_H

#include <stdatomic.h>
#include <stdint.h>

struct ek_stats {
    atomic_uint_fast64_t accepted;      /* connections admitted */
    atomic_uint_fast64_t active;        /* admitted and not yet closed */
    atomic_uint_fast64_t refused_limit; /* over --max-conns */
    atomic_uint_fast64_t refused_fd;    /* fd above the model's limit */
    atomic_uint_fast64_t accept_errors; /* accept(2) failures, EMFILE too */
    atomic_uint_fast64_t conn_errors;   /* connections ended by an error */
    atomic_uint_fast64_t bytes_in;
    atomic_uint_fast64_t bytes_out;
    atomic_uint_fast64_t queue_full; /* reads paused by --max-queue */
};

/* The echo path's counters, one set per loop or worker thread and written
 * only by its owner: a relaxed load and store (a plain add, no locked
 * read-modify-write) on a cache line no other writer touches. Readers may
 * sum them at any time; ek_counters_merge folds them into the shared
 * ek_stats when the owner is done. */
struct ek_counters {
    _Alignas(64) atomic_uint_fast64_t bytes_in;
    atomic_uint_fast64_t bytes_out;
    atomic_uint_fast64_t queue_full;
};

static inline void ek_count(atomic_uint_fast64_t *c, uint64_t n)
{
    uint64_t v = atomic_load_explicit(c, memory_order_relaxed);
    atomic_store_explicit(c, v + n, memory_order_relaxed);
}

static inline void ek_stat_add(atomic_uint_fast64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t ek_stat_get(atomic_uint_fast64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* Adds the owner's counters to the shared ones and zeroes them. Call from
 * the owner. */
static inline void ek_counters_merge(struct ek_stats *into,
                                     struct ek_counters *from)
{
    ek_stat_add(&into->bytes_in, ek_stat_get(&from->bytes_in));
    ek_stat_add(&into->bytes_out, ek_stat_get(&from->bytes_out));
    ek_stat_add(&into->queue_full, ek_stat_get(&from->queue_full));
    atomic_store_explicit(&from->bytes_in, 0, memory_order_relaxed);
    atomic_store_explicit(&from->bytes_out, 0, memory_order_relaxed);
    atomic_store_explicit(&from->queue_full, 0, memory_order_relaxed);
}

#endif
