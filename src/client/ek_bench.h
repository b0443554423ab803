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
 *    from the send. Open loop (rate > 0): messages fall due on a fixed
 *    schedule whatever is in flight, and latency runs from the *intended*
 *    send time, so a stalled server is charged for the whole stall (no
 *    coordinated omission, as in wrk2). Each echo of the open loop gives
 *    three figures: that latency, the latency from the actual send
 *    (uncorrected, wrk2's -U) and the send lag, actual minus intended send
 *    time: how late the client itself was, or how long a full socket held
 *    the message back. A connection whose socket is full, or which has
 *    EK_BENCH_OPEN_WINDOW_S of its schedule in flight, writes nothing until
 *    it drains: what falls due meanwhile waits in the schedule, still
 *    charged from its intended time, and goes out in one write when it
 *    can. The run counts the messages sent, so the report can say when
 *    the rate offered was not achieved.
 *  - stream: every connection writes without pause, `size` bytes a write
 *    (iperf3's -l), and checks the echo.
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
 * datagram with no echo within udp_timeout_ns of its send stops holding
 * its place in the window (closed loop: the next one goes); if its echo
 * still comes, it is late (its latency counted), else, once its record is
 * let go (at least twice udp_timeout_ns after its send, or at the end of
 * the run), lost: never both.
 *
 * timestamps (rr over plain TCP or UDP): every socket asks the kernel for
 * its send and arrival times (SO_TIMESTAMPING, ek_platform.h), and each
 * echo also gives the kernel's round trip: from the device taking the
 * message's last byte to the arrival of its echo's, the path and the
 * server without the client's scheduling.
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

/* Open loop: how much of its schedule a connection may have in flight
 * (at least EK_BENCH_OPEN_WINDOW_MIN messages, at most _MAX): more, and
 * it waits for echoes before it writes again. */
#define EK_BENCH_OPEN_WINDOW_S 1
#define EK_BENCH_OPEN_WINDOW_MIN 256u
#define EK_BENCH_OPEN_WINDOW_MAX 65536u
/* UDP: the receive buffer each socket asks for (ek_rcvbuf_ask): a burst
 * of echoes after a stall must not be lost in the client itself. */
#define EK_BENCH_UDP_RCVBUF (4 << 20)
/* UDP: the most datagrams a connection keeps a record of (2 x the
 * udp_timeout's worth at its rate): 2^22, 64 MiB (96 with timestamps). */
#define EK_BENCH_UDP_RECORDS_MAX (1u << 22)
/* The most bytes of send times, kernel stamps and UDP records a run
 * keeps in all: open loops get smaller windows to fit it, UDP runs that
 * would need more from the start are refused (and its rings stop
 * growing there). */
#define EK_BENCH_RECORDS_BUDGET ((size_t)1 << 30)

struct ek_bench_config {
    enum ek_bench_mode mode;
    bool udp; /* rr over UDP datagrams */
    struct ek_sockaddr target;
    uint32_t conns;
    uint32_t threads;
    uint64_t size;      /* message size; stream: the size of a write */
    uint32_t depth;     /* rr closed loop: messages in flight per connection */
    uint64_t rate;      /* rr: messages per second over all connections;
                           connect: connections per second; 0 = closed loop */
    uint32_t exchanges; /* connect: request/response exchanges each */
    struct ek_tls_client *tls;          /* NULL: plain TCP */
    const struct ek_sockopts *sockopts; /* NULL: none; connection i takes
                                           source address i */
    const char *tls_host;               /* the name TLS verifies (and sends) */
    int64_t warmup_ns, duration_ns;
    int64_t interval_ns;    /* > 0: the window is cut into intervals of this
                               length, each reported (ek_bench_next_interval) */
    int64_t timeout_ns;     /* connect; and a connection owed an echo that sees
                               nothing for this long has failed */
    int64_t spin_ns;        /* open loop: spin, not sleep, for the last spin_ns
                               before a message falls due */
    int64_t udp_timeout_ns; /* UDP: no echo within this: lost, or late */
    bool timestamps;        /* the kernel's round trip too (see above) */
};

/* The records a UDP connection of cfg starts with (see above), or 0 when
 * that would pass EK_BENCH_UDP_RECORDS_MAX. */
uint32_t ek_bench_udp_records(const struct ek_bench_config *cfg);

/* The bytes of records a UDP run of cfg keeps from its start (every
 * connection's first ring, see EK_BENCH_RECORDS_BUDGET). */
uint64_t ek_bench_udp_records_bytes(const struct ek_bench_config *cfg);

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
    X(conns_resumed)                                                           \
    X(msgs_sent)                                                               \
    X(late)                                                                    \
    X(held_back)                                                               \
    X(conns_no_fd)                                                             \
    X(rcvbuf_drops)                                                            \
    X(too_late)                                                                \
    X(msgs_due)

/* What a run found, over the measured window only (or one interval of
 * it, or several runs merged). */
struct ek_bench_result {
    uint32_t conns_made, conns_failed;
    uint64_t msgs, bytes; /* in the window */
    uint64_t mismatches, resets, closed, timeouts;
    uint64_t lost, reordered, duplicates; /* UDP */
    uint64_t late;       /* UDP: echoes after udp_timeout_ns (in msgs too) */
    uint64_t tls_failed; /* TLS handshakes that failed */
    /* Messages (datagrams; stream: writes' worth of bytes) whose first
     * byte went out in the window: the rate achieved. */
    uint64_t msgs_sent;
    /* Open loop: messages that could not go out when due, their
     * connection's socket full or its window of the schedule in flight
     * (they went later, charged from their intended time). */
    uint64_t held_back;
    /* Connections not made for want of a descriptor (EMFILE, ENFILE): the
     * client's limit, not the server's failure. */
    uint64_t conns_no_fd;
    /* UDP: echoes bench's own sockets dropped, their receive buffers full
     * (over the whole run, warm-up included; SO_MEMINFO): of the loss,
     * the part that is the client's. */
    uint64_t rcvbuf_drops;
    /* UDP: echoes that came after their record was let go (at least
     * twice udp_timeout_ns after the send): their datagram is among the
     * lost (or they are duplicates: it cannot be told any more); counted
     * here and nowhere else. */
    uint64_t too_late;
    /* Open loop: the messages (connect: connections) the schedule had
     * fall due in the window: what "achieved" is measured against. */
    uint64_t msgs_due;
    struct ek_hist latency; /* ns; rr and connect; open loop: from the
                               intended send time */
    /* Open loop rr: from the actual send, and actual minus intended. */
    struct ek_hist uncorrected, send_lag;
    /* timestamps: the kernel's send to the kernel's arrival (ns), for
     * the echoes both stamps were found for, on one clock. */
    struct ek_hist kernel_rtt;
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
 * (-ECONNREFUSED: no connection could be made; -EMFILE or -ENFILE: none
 * for want of descriptors). Running out of descriptors part way stops the
 * connecting: the run goes on with those made, and its result counts the
 * rest in conns_no_fd. */
int ek_bench_new(const struct ek_bench_config *cfg, struct ek_bench **out);

/* Runs the workload from now: warm-up, then the measured window.
 * Returns 0, or -errno when the workers could not start. */
int ek_bench_start(struct ek_bench *b, int64_t start_ns);

/* Ends the run early (e.g. on SIGINT); the result covers what was
 * measured so far. */
void ek_bench_stop(struct ek_bench *b);

/* Whether every worker is done (after the window; UDP's wait for the
 * window's echoes may go on past it). */
bool ek_bench_done(struct ek_bench *b);

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
