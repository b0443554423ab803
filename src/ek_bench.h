/*
 * ek_bench: the load engine behind `echokit bench`.
 *
 * Connections are split between worker threads; each worker runs its own
 * event loop (ek_poller: epoll, or poll) over its connections, with fixed
 * buffers and per-connection state allocated up front (nothing is allocated per
 * message). Every byte sent is ek_pattern(connection, offset), and every byte
 * received is checked against it.
 *
 * Modes:
 *  - rr: request/response. Closed loop: each connection keeps `depth`
 *    messages in flight and sends the next when one is echoed; latency runs
 *    from the send. Open loop (rate > 0): messages go out on a fixed
 *    schedule whatever is in flight, and latency runs from the *intended*
 *    send time, so a stalled server is charged for the whole stall (no
 *    coordinated omission, as in wrk2).
 *  - stream: every connection sends without pause and checks the echo.
 *  - idle: connections echo one message each, then stay open and quiet.
 *  - connect: the connection rate (tcpkali --connect-rate, netperf
 *    TCP_CRR): each of `conns` slots opens a connection, does `exchanges`
 *    request/response exchanges of `size` bytes, closes it and opens the
 *    next (closed loop); with rate > 0, connections start on a fixed
 *    schedule of rate per second instead (open loop), each in the first
 *    free slot, and a connection that had to wait for one is charged for
 *    the wait in its time to first echo. Measured: connections completed
 *    per second; TCP connect time (the SYN to the established socket), TLS
 *    handshake time, and time to first echo (from the connect, or from the
 *    intended start in open loop).
 *
 * TLS (tls != NULL): every connection is the client side of TLS
 * (ek_tls.h); in rr, stream and idle the handshakes are done at the start,
 * before the first message.
 *
 * --udp (rr only): each "connection" is a connected UDP socket and each
 * message one datagram carrying its number; replies are matched by it, so
 * loss, reordering and duplicates are counted rather than fatal. A
 * datagram not back within EK_BENCH_UDP_LOSS_NS is lost, and its slot in
 * the window goes to the next message.
 */
#ifndef EK_BENCH_H
#define EK_BENCH_H

#include "ek_addr.h"
#include "ek_hist.h"
#include "ek_sockopt.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum ek_bench_mode {
    EK_BENCH_RR,
    EK_BENCH_STREAM,
    EK_BENCH_IDLE,
    EK_BENCH_CONNECT
};

struct ek_tls_client;

/* UDP: how long a datagram may take before it counts as lost. */
#define EK_BENCH_UDP_LOSS_NS 1000000000LL

struct ek_bench_config {
    enum ek_bench_mode mode;
    bool udp; /* rr over UDP datagrams */
    struct ek_sockaddr target;
    uint32_t conns;
    uint32_t threads;
    uint64_t size;      /* message size */
    uint32_t depth;     /* rr closed loop: messages in flight per connection */
    uint64_t rate;      /* rr: messages per second over all connections;
                           connect: connections per second; 0 = closed loop */
    uint32_t exchanges; /* connect: request/response exchanges each */
    struct ek_tls_client *tls;          /* NULL: plain TCP */
    const struct ek_sockopts *sockopts; /* NULL: none; connection i takes
                                           source address i */
    const char *tls_host;               /* the name TLS verifies (and sends) */
    int64_t warmup_ns, duration_ns;
    int64_t interval_ns; /* > 0: the window is cut into intervals of this
                            length, each reported (ek_bench_next_interval) */
    int64_t timeout_ns;  /* connect; and a connection owed an echo that sees
                            nothing for this long has failed */
};

/* Counters a worker updates as it goes (relaxed atomics, read by the main
 * thread for the progress line). */
struct ek_bench_live {
    atomic_uint_fast64_t msgs;  /* messages echoed and verified */
    atomic_uint_fast64_t bytes; /* bytes echoed and verified */
    atomic_uint_fast64_t errors;
};

/* The counters of a result, each a uint64_t of struct ek_bench_result by
 * that name: one list for adding results up, for bench's JSON and for
 * bench merge reading it back. */
#define EK_BENCH_COUNTERS(X)                                                   \
    X(msgs)                                                                    \
    X(bytes)                                                                   \
    X(mismatches)                                                              \
    X(resets)                                                                  \
    X(closed)                                                                  \
    X(timeouts)                                                                \
    X(tls_failed)                                                              \
    X(lost)                                                                    \
    X(reordered)                                                               \
    X(duplicates)                                                              \
    X(conns_done)                                                              \
    X(conns_resumed)

/* What a run found, over the measured window only (or one interval of
 * it, or several runs merged). */
struct ek_bench_result {
    uint32_t conns_made, conns_failed;
    uint64_t msgs, bytes; /* in the window */
    uint64_t mismatches, resets, closed, timeouts;
    uint64_t lost, reordered, duplicates; /* UDP */
    uint64_t tls_failed;                  /* TLS handshakes that failed */
    struct ek_hist latency;               /* ns; rr and connect */
    /* connect mode */
    uint64_t conns_done, conns_resumed; /* closed after their exchanges */
    struct ek_hist connect_lat, handshake_lat, first_echo_lat; /* ns */
    char first_error[256]; /* "" when none */
};

void ek_bench_result_reset(struct ek_bench_result *r);

/* Adds from's counts and histograms to into's (first_error: into's, or
 * else from's). */
void ek_bench_result_add(struct ek_bench_result *into,
                         const struct ek_bench_result *from);

/* One interval of the measured window: [start_ns, end_ns) on ek_now_ns's
 * clock; the last one ends with the window, or where the run was
 * stopped. It is `intervals` intervals long, 1 unless the reader fell
 * behind (ek_bench_next_interval). */
struct ek_bench_interval {
    uint64_t index;     /* of its first interval */
    uint64_t intervals; /* how many it spans */
    int64_t start_ns, end_ns;
    struct ek_bench_result r;
};

struct ek_bench;

/* Connects every connection (counting failures) and prepares the
 * workers. Returns 0 with *out, or -errno when nothing could be set up
 * (-ECONNREFUSED: no connection could be made). */
int ek_bench_new(const struct ek_bench_config *cfg, struct ek_bench **out);

/* Runs the workload from now: warm-up, then the measured window.
 * Returns 0, or -errno when the workers could not start. */
int ek_bench_start(struct ek_bench *b, int64_t start_ns);

/* Ends the run early (e.g. on SIGINT); the result covers what was
 * measured so far. */
void ek_bench_stop(struct ek_bench *b);

/* Sums the live counters of all workers. */
void ek_bench_live(struct ek_bench *b, uint64_t *msgs, uint64_t *bytes,
                   uint64_t *errors);

/* The next interval, in order, once every worker is past its end: 1 with
 * *out, 0 when it is not complete yet (never waits), -1 when there are no
 * more. Without interval_ns the whole window is one interval, complete
 * once the run is over. The workers never wait for the reader: one that
 * falls 8 intervals behind gets the next ones as one longer interval. */
int ek_bench_next_interval(struct ek_bench *b, struct ek_bench_interval *out);

/* Waits for the workers and fills *r: the whole window, every interval
 * summed, whether or not they were read. */
void ek_bench_finish(struct ek_bench *b, struct ek_bench_result *r);

void ek_bench_free(struct ek_bench *b);

#endif
