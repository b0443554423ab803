/*
 * ek_stats: the server's counters. They live in one shared anonymous
 * mapping (see ek_server_open) so that forked children of the process
 * model count into the same place as threads and loops, and so that a
 * reader (SIGUSR1, --metrics) sees them live from any thread.
 *
 * Two kinds of writers:
 *   - the event loops each own one struct ek_counters in loop[] and write
 *     it alone: a relaxed load and store (ek_count), no locked
 *     read-modify-write, on a cache line no other writer touches, so
 *     --threads N shares nothing on the echo path;
 *   - everything else (accepting, the blocking models' threads and
 *     children) adds to the shared fields with a relaxed atomic add
 *     (ek_stat_add), exact without ordering anything else.
 * A reader sums both with ek_stats_snapshot.
 */
#ifndef EK_STATS_H
#define EK_STATS_H

#include <stdatomic.h>
#include <stdint.h>

/* The most event loops (--threads) a server runs. */
#define EK_MAX_LOOPS 256

/* The echo path's counters. */
struct ek_counters {
    _Alignas(64) atomic_uint_fast64_t bytes_in;
    atomic_uint_fast64_t bytes_out;
    atomic_uint_fast64_t queue_full; /* reads paused by --max-queue */
    atomic_uint_fast64_t dgrams_in;  /* UDP datagrams received */
    atomic_uint_fast64_t dgrams_out; /* UDP datagrams echoed */
};

/* Why a UDP datagram was not answered (ek_udp.h). */
enum ek_udp_drop {
    EK_UDP_DROP_LOW_PORT,   /* source port below 1024 */
    EK_UDP_DROP_BROADCAST,  /* unspecified, broadcast or multicast source */
    EK_UDP_DROP_SELF,       /* claims to come from ourselves */
    EK_UDP_DROP_ACL,        /* --allow/--deny */
    EK_UDP_DROP_RATE,       /* --udp-rate, per source */
    EK_UDP_DROP_RATE_TOTAL, /* --udp-rate-total */
    EK_UDP_DROP_TRUNCATED,  /* larger than a datagram can be */
    EK_UDP_DROP_SEND,       /* the socket would not take the answer */
    EK_UDP_DROP_REASONS
};

/* Their names in logs and metrics, by enum ek_udp_drop. */
extern const char *const ek_udp_drop_names[EK_UDP_DROP_REASONS];

/* Why a TLS handshake failed (transport_tls.c, ek_idle.c). */
enum ek_tls_fail {
    EK_TLS_FAIL_PROTOCOL,      /* not TLS, bad records, no common ground */
    EK_TLS_FAIL_CLIENT_CERT,   /* --tls-client-ca: none given, or refused */
    EK_TLS_FAIL_TIMEOUT,       /* not done within --tls-handshake-timeout */
    EK_TLS_FAIL_CLOSED,        /* the client left before the end */
    EK_TLS_FAIL_RENEGOTIATION, /* asked to renegotiate: refused, closed */
    EK_TLS_FAIL_TOO_LARGE,     /* a ClientHello past the gate's bound
                                  (ek_tls_hello.h) */
    EK_TLS_FAIL_REASONS
};

/* Their names in logs and metrics, by enum ek_tls_fail. */
extern const char *const ek_tls_fail_names[EK_TLS_FAIL_REASONS];

struct ek_stats {
    atomic_uint_fast64_t accepted;      /* connections admitted */
    atomic_uint_fast64_t active;        /* admitted and not yet closed */
    atomic_uint_fast64_t refused_limit; /* over --max-conns */
    atomic_uint_fast64_t refused_fd;    /* fd above the model's limit */
    atomic_uint_fast64_t refused_acl;   /* --allow/--deny said no */
    atomic_uint_fast64_t refused_proxy; /* bad, missing or late PROXY header */
    atomic_uint_fast64_t refused_proxy_untrusted; /* not --proxy-from */
    atomic_uint_fast64_t refused_handshakes;      /* over --max-handshakes */
    atomic_uint_fast64_t accept_errors; /* accept(2) failures, EMFILE too */
    atomic_uint_fast64_t conn_errors;   /* connections ended by an error */
    atomic_uint_fast64_t idle_closed;   /* closed by --idle-timeout */
    atomic_uint_fast64_t udp_drops[EK_UDP_DROP_REASONS];
    atomic_uint_fast64_t tls_handshaking; /* TLS handshakes under way */
    atomic_uint_fast64_t tls_handshakes;  /* TLS handshakes done */
    atomic_uint_fast64_t tls_resumed;     /* of which resumed sessions */
    atomic_uint_fast64_t tls_failed[EK_TLS_FAIL_REASONS];
    struct ek_counters shared;             /* blocking models: ek_stat_add */
    struct ek_counters loop[EK_MAX_LOOPS]; /* event loop i: ek_count */
};

/* For the single writer of a counter: no locked instruction. */
static inline void ek_count(atomic_uint_fast64_t *c, uint64_t n)
{
    uint64_t v = atomic_load_explicit(c, memory_order_relaxed);
    atomic_store_explicit(c, v + n, memory_order_relaxed);
}

/* For a counter with several writers. */
static inline void ek_stat_add(atomic_uint_fast64_t *c, uint64_t n)
{
    atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

static inline uint64_t ek_stat_get(atomic_uint_fast64_t *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

/* The counters at one moment, summed over every writer. */
struct ek_stats_view {
    uint64_t accepted, active, refused_limit, refused_fd, refused_acl;
    uint64_t refused_proxy, refused_proxy_untrusted, refused_handshakes;
    uint64_t accept_errors, conn_errors, idle_closed;
    uint64_t bytes_in, bytes_out, queue_full;
    uint64_t dgrams_in, dgrams_out, udp_drops[EK_UDP_DROP_REASONS];
    uint64_t tls_handshaking, tls_handshakes, tls_resumed;
    uint64_t tls_failed[EK_TLS_FAIL_REASONS];
};

void ek_stats_snapshot(struct ek_stats *s, struct ek_stats_view *v);

/* Logs one "stats: ..." line at info level (SIGUSR1). */
void ek_stats_log(struct ek_stats *s);

#endif
