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

static inline void ek_stat_add(atomic_uint_fast64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t ek_stat_get(atomic_uint_fast64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

#endif
