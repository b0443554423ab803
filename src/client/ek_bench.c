#include "ek_bench.h"
#include "ek_backend.h"
#include "ek_conn.h"
#include "ek_net.h"
#include "ek_pattern.h"
#include "ek_platform.h"
#include "ek_signal.h"
#include "ek_tls.h"
#include "ek_util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Scratch per worker: one send and one receive buffer, reused for every
 * connection and message (stream mode: the send buffer holds a write of
 * `size` bytes when that is larger). */
#define BENCH_BUF ((size_t)64 * 1024)
/* stream mode: bytes a connection may have sent and not yet had back, at
 * least two writes' worth. */
#define STREAM_WINDOW ((uint64_t)4 << 20)
/* How often a worker looks up from its events (stop flag, stalls). */
#define BENCH_TICK_NS (100 * 1000000LL)
#define BENCH_EVENTS 256

/* Where a connection is in its life (connect mode goes round them all;
 * the others start at HANDSHAKE or RUNNING and stay). */
enum phase {
    PH_NONE,       /* connect mode: the slot has no connection */
    PH_CONNECTING, /* connect(2) under way */
    PH_HANDSHAKE,  /* TLS handshake under way */
    PH_RUNNING,    /* exchanging */
};

struct bconn {
    int fd;        /* -1 once failed (connect mode: between connections) */
    uint32_t key;  /* pattern stream: the connection's global index */
    uint32_t slot; /* index within its worker (open-loop schedule) */
    bool out_armed;
    bool heard;   /* received something in the measured window */
    bool again;   /* TLS: records already read: read again without waiting */
    bool refused; /* its socket refused the last send: waiting for room */
    bool sent_since_echo;  /* UDP: an echo is owed since the last one */
    uint64_t sent, recvd;  /* bytes */
    uint64_t started;      /* messages whose first byte went out */
    uint64_t due;          /* open loop: messages scheduled so far */
    uint64_t held;         /* open loop: messages counted as held back */
    int64_t waiting_since; /* since when an echo is owed without news */
    /* Message m's actual send time is stamps[m % nslots] (rr, connect,
     * UDP) and, with timestamps, the kernel's in ktx (0: not known yet).
     * nslots starts at b->slots; UDP's grows (udp_grow). */
    uint32_t nslots;
    int64_t *stamps;
    int64_t *ktx;
    uint64_t ts_msgs; /* TCP timestamps: messages whose send stamp came */
    /* UDP: the record of datagram m is inflight[m % nslots]: m + 1 and
     * its state (UDP_* below), 0 when there is none. */
    uint64_t *inflight;
    uint32_t in_flight;   /* datagrams holding a place in the window */
    uint32_t turn;        /* the worker's turn of its last first read */
    uint64_t expire_next; /* the oldest datagram that may be awaited */
    uint64_t highest;     /* the highest datagram number back so far */
    struct ek_conn tc;    /* its transport: plain, or TLS's client side */
    uint8_t phase;        /* enum phase */
    /* connect mode: when this connection's connect started, what its time
     * to first echo counts from (the intended start, in open loop), and
     * when a slot whose connection failed may try again. */
    int64_t t_begin, t_from, retry_at;
    int64_t t_connected; /* when the TCP connection was up */
};

struct worker {
    struct ek_bench *b;
    pthread_t tid;
    struct ek_poller *poller;
    struct bconn *conns;
    uint32_t n;
    unsigned char *sbuf, *rbuf;
    struct ek_bench_live live;
    /* What the current interval of the measured window found so far
     * (connect mode: cur.conns_failed counts connects that failed); all of
     * the window when it is not cut into intervals. */
    struct ek_bench_result cur;
    uint64_t k;    /* the current interval (under b->lock: the reader looks) */
    int64_t k_end; /* when it ends (INT64_MAX: no intervals) */
    bool exited;   /* published its last interval (under b->lock) */
    char first_error[256];
    /* open loop: message j of this worker is due at start + j * interval
     * and goes to connection j % n: round robin in time order, so the
     * whole schedule is one counter. */
    int64_t interval_ns;
    int64_t t0;       /* when message 0 is due: t_start + phase_ns */
    int64_t phase_ns; /* worker t of T: t/T of an interval, so that the
                         workers' schedules interleave, not coincide */
    uint64_t next_j;
    int64_t next_check;
    bool again; /* some connection has again set */
    /* UDP, after the window: waiting for the echoes of what the window
     * sent, sending nothing more. */
    bool draining;
    /* Open loop: the schedule's ticker (ek_ticker_open), in the poller
     * as slot n; -1 when there is none (the wait then times out at the
     * next message's time). */
    int ticker;
    /* When the last wait returned, and how many waits have: an echo's
     * arrival is when the client learned of it (below). */
    int64_t woke;
    uint32_t turn;
};

/* Intervals k_first..k_last as the workers have published them so far,
 * waiting for the others and for ek_bench_next_interval. One interval
 * each, unless the reader fell behind. */
struct interval_slot {
    struct interval_slot *next;
    uint64_t k_first, k_last;
    struct ek_bench_result r;
};

/* Slots waiting for the reader at most (each sizeof(struct
 * ek_bench_result), about 240 KiB). A reader that falls this far behind
 * (stuck writing to a pipe nobody reads, say) gets the intervals that
 * follow merged into the last slot, one longer interval, until it catches
 * up: the workers never wait for it, so it cannot stall the load. */
#define INTERVALS_WAITING 8

struct ek_bench {
    struct ek_bench_config cfg;
    struct worker *workers;
    uint32_t nworkers, made, failed;
    uint32_t no_fd;             /* connections not tried: no descriptor left */
    uint32_t slots;             /* per connection: stamps (and records) */
    atomic_size_t record_bytes; /* all connections' stamps and records */
    char connect_error[96];     /* why the first failed connection failed */
    int64_t t_start, t_measure, t_end;
    atomic_bool stop;
    atomic_uint_fast64_t opened; /* connect mode: connections started */
    bool running;
    /* Intervals, under lock. */
    pthread_mutex_t lock;
    bool lock_made;
    struct interval_slot *head, *tail; /* published, in order */
    uint32_t waiting;                  /* slots in the list */
    uint32_t exited;                   /* workers done */
    int64_t t_stopped;                 /* INT64_MAX unless stopped early */
    struct ek_bench_result total;      /* every interval, summed */
    bool slot_lost;                    /* the first found no memory */
};

static void set_error(struct worker *w, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void set_error(struct worker *w, const char *fmt, ...)
{
    if (w->first_error[0] != '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->first_error, sizeof(w->first_error), fmt, ap);
    va_end(ap);
}

enum failure { FAIL_MISMATCH, FAIL_RESET, FAIL_CLOSED, FAIL_TIMEOUT, FAIL_TLS };

/* connect mode: how long a slot whose connection failed waits before the
 * next (a refused connect must not spin). */
#define BENCH_RETRY_NS BENCH_TICK_NS

static bool connect_mode(const struct ek_bench *b)
{
    return b->cfg.mode == EK_BENCH_CONNECT;
}

/* Closes c's connection: the slot is free (connect mode) or dead. */
static void conn_close(struct worker *w, struct bconn *c)
{
    (void)ek_poller_remove(w->poller, c->fd, c->slot);
    ek_conn_release(&c->tc);
    close(c->fd);
    c->fd = -1;
    c->phase = PH_NONE;
    c->out_armed = false;
    c->again = false;
}

/* A connection that failed is closed and counted; the run goes on with the
 * others (connect mode: the slot opens another after BENCH_RETRY_NS), and
 * the exit status will say it. */
static void conn_fail(struct worker *w, struct bconn *c, enum failure why,
                      int err)
{
    static const char *const what[] = {"the echo differs", "connection failed",
                                       "the server closed the connection",
                                       "no echo", "TLS failed"};
    uint64_t *counter[] = {&w->cur.mismatches, &w->cur.resets, &w->cur.closed,
                           &w->cur.timeouts, &w->cur.tls_failed};
    (*counter[why])++;
    atomic_fetch_add_explicit(&w->live.errors, 1, memory_order_relaxed);
    const char *tls_why = NULL;
#ifdef EK_HAVE_TLS
    if (err == EPROTO && ek_conn_tp(&c->tc) == &ek_transport_tls)
        tls_why = ek_tls_error(&c->tc);
#endif
    if (why != FAIL_MISMATCH)
        set_error(w, "connection %u: %s after %llu of %llu bytes came back%s%s",
                  c->key, what[why], (unsigned long long)c->recvd,
                  (unsigned long long)c->sent, err ? ": " : "",
                  tls_why != NULL ? tls_why
                  : err           ? strerror(err)
                                  : "");
    conn_close(w, c);
    c->retry_at = ek_now_ns() + BENCH_RETRY_NS;
}

static void arm_out(struct worker *w, struct bconn *c, bool on)
{
    /* The transport itself may have to write to go on (TLS). */
    on |= (ek_conn_tp(&c->tc)->blocked(&c->tc) & EK_EV_WRITE) != 0;
    if (c->out_armed == on)
        return;
    unsigned events = POLLIN | (on ? (unsigned)POLLOUT : 0u);
    if (ek_poller_modify(w->poller, c->fd, c->slot, events) == 0)
        c->out_armed = on;
}

static bool in_window(const struct ek_bench *b, int64_t t)
{
    return t >= b->t_measure && t < b->t_end;
}

/* b - a, or 0 when b is earlier (a histogram holds no negative time). */
static uint64_t span(int64_t a, int64_t b)
{
    return b > a ? (uint64_t)(b - a) : 0;
}

/* How far the stream of c may be sent now, in bytes. */
static uint64_t send_target(const struct ek_bench *b, const struct bconn *c)
{
    const struct ek_bench_config *cfg = &b->cfg;
    switch (cfg->mode) {
    case EK_BENCH_STREAM: {
        uint64_t window =
            STREAM_WINDOW > 2 * cfg->size ? STREAM_WINDOW : 2 * cfg->size;
        return c->recvd + window;
    }
    case EK_BENCH_IDLE:
        return cfg->size;
    case EK_BENCH_CONNECT: { /* one exchange at a time, `exchanges` in all */
        uint64_t next = (c->recvd / cfg->size + 1) * cfg->size;
        uint64_t all = (uint64_t)cfg->exchanges * cfg->size;
        return next < all ? next : all;
    }
    case EK_BENCH_RR:
    default:
        if (cfg->rate > 0) { /* what is due, within the window */
            uint64_t window = c->recvd / cfg->size + c->nslots;
            return (c->due < window ? c->due : window) * cfg->size;
        }
        return (c->recvd / cfg->size + cfg->depth) * cfg->size;
    }
}

/* The last write, made at `at`, took c's stream up to c->sent: the
 * messages whose first byte it carried get their send time, and those of
 * the window are counted. */
static void note_started(struct worker *w, struct bconn *c, int64_t at)
{
    const struct ek_bench *b = w->b;
    uint64_t size = b->cfg.size;
    uint64_t started = (c->sent + size - 1) / size;
    if (in_window(b, at))
        w->cur.msgs_sent += started - c->started;
    for (uint64_t m = c->started; c->stamps != NULL && m < started; m++) {
        c->stamps[m % c->nslots] = at;
        if (c->ktx != NULL)
            c->ktx[m % c->nslots] = 0;
    }
    c->started = started;
}

/* Open loop: the messages of c that are due and could not go out (its
 * socket full, or its window in flight) are held back: each counted
 * once, in the window. */
static void note_held(struct worker *w, struct bconn *c, int64_t now)
{
    uint64_t from = c->started > c->held ? c->started : c->held;
    if (c->due <= from)
        return;
    if (in_window(w->b, now))
        w->cur.held_back += c->due - from;
    c->held = c->due;
}

/* Writes (datagrams) one connection makes per turn: a stream of small
 * writes, or an open loop's backlog, must not keep the worker from its
 * other connections, from reading their echoes, and from its clock. A
 * connection with more to send waits for POLLOUT, its next turn. */
#define BENCH_WRITES_PER_TURN 64

static void conn_send(struct worker *w, struct bconn *c, int64_t now)
{
    const struct ek_bench *b = w->b;
    uint64_t target = send_target(b, c);
    /* stream: a write is `size` bytes, as asked (iperf3's -l). */
    size_t chunk =
        b->cfg.mode == EK_BENCH_STREAM ? (size_t)b->cfg.size : BENCH_BUF;

    if (c->sent == c->recvd && target > c->sent)
        c->waiting_since = now; /* an echo is owed from now on */
    c->refused = false;
    for (int writes = 0;
         c->fd >= 0 && c->sent < target && writes < BENCH_WRITES_PER_TURN;
         writes++) {
        uint64_t left = target - c->sent;
        size_t n = left < chunk ? (size_t)left : chunk;
        ek_pattern_fill(c->key, c->sent, w->sbuf, n);
        /* The clock before the send: on loopback the echo may be back
         * before send() returns. And the clock now, not the batch's:
         * events handled earlier in the batch are not this latency. */
        int64_t at = ek_now_ns();
        struct iovec iov = {.iov_base = w->sbuf, .iov_len = n};
        ssize_t k = ek_conn_tp(&c->tc)->writev(&c->tc, c->fd, &iov, 1);
        c->refused = k == -EAGAIN || (k >= 0 && (size_t)k < n);
        if (k == -EAGAIN)
            break;
        if (k < 0) {
            conn_fail(w, c, FAIL_RESET, (int)-k);
            return;
        }
        c->sent += (uint64_t)k;
        note_started(w, c, at);
        if (c->refused)
            break;
    }
    if (c->fd < 0)
        return;
    /* Held back: by the socket, or by the window (what is due is past
     * the target); not by the turn's end, which is the client's pace. */
    if (b->cfg.mode == EK_BENCH_RR && b->cfg.rate > 0 &&
        (c->refused || target < c->due * b->cfg.size))
        note_held(w, c, now);
    /* Room is waited for only when the socket took less than was there to
     * send (or the turn ended first); a full window waits for echoes. */
    arm_out(w, c, c->sent < target);
}

/* When message m of c was meant to go out (open loop). */
static int64_t intended(const struct worker *w, const struct bconn *c,
                        uint64_t m)
{
    uint64_t j = m * w->n + c->slot;
    return w->t0 + (int64_t)j * w->interval_ns;
}

/* The kernel's round trip of an echo: from the send stamp of its
 * message to the arrival stamp of the echo, when both are known and on
 * one clock. */
static void add_kernel_rtt(struct ek_bench_result *r, int64_t tx, int64_t rx)
{
    if (tx != 0 && rx != 0 && ((tx ^ rx) & EK_TSTAMP_HW) == 0 && rx >= tx)
        ek_hist_add(&r->kernel_rtt, (uint64_t)(rx - tx));
}

/* The echo of message m of c came back whole at now (the kernel's
 * arrival stamp rx, or 0), in the measured window: its latencies. */
static void count_echo(struct worker *w, const struct bconn *c, uint64_t m,
                       int64_t now, int64_t rx)
{
    const struct ek_bench *b = w->b;
    struct ek_bench_result *r = &w->cur;
    uint32_t s = (uint32_t)(m % c->nslots);
    int64_t sent = c->stamps[s];
    if (b->cfg.rate > 0 && !connect_mode(b)) {
        /* Open loop: from when it was meant to go, as a user who sent
         * it then would wait; from when it went; and how late it went. */
        int64_t due = intended(w, c, m);
        ek_hist_add(&r->latency, span(due, now));
        ek_hist_add(&r->uncorrected, span(sent, now));
        ek_hist_add(&r->send_lag, span(due, sent));
    } else {
        ek_hist_add(&r->latency, span(sent, now));
    }
    if (c->ktx != NULL)
        add_kernel_rtt(r, c->ktx[s], rx);
}

static void udp_tx_stamp(struct bconn *c, uint32_t key, int64_t tx);

/* timestamps: the send stamps the kernel has queued for c. TCP's key is
 * the offset of the last byte of the send it stamps: the messages whose
 * last byte that send carried went out then. */
static void collect_tx_stamps(struct worker *w, struct bconn *c)
{
    const struct ek_bench *b = w->b;
    uint32_t key;
    int64_t tx;
    while (ek_tstamp_next_tx(c->fd, &key, &tx) == 1) {
        if (b->cfg.udp) {
            udp_tx_stamp(c, key, tx);
            continue;
        }
        if (c->sent == 0)
            continue;
        /* 32 bits of a byte offset: widened against what was sent, which
         * a stamp is never 4 GiB behind. */
        uint64_t last = c->sent - 1 - (uint32_t)((uint32_t)(c->sent - 1) - key);
        uint64_t end = (last + 1) / b->cfg.size;
        uint64_t m = c->recvd / b->cfg.size;
        for (m = m > c->ts_msgs ? m : c->ts_msgs; m < end; m++)
            c->ktx[m % c->nslots] = tx;
        if (end > c->ts_msgs)
            c->ts_msgs = end;
    }
}

static void conn_done(struct worker *w, struct bconn *c, int64_t now);

/* When what c reads now arrived, as the client can tell: the first read
 * after a wait takes the moment the wait returned (the bytes were there
 * then: what the client took to come round to them, a read syscall and
 * the other connections of the batch, is not the server's); a later read
 * of the same turn, the clock now. */
static int64_t arrival(struct worker *w, struct bconn *c)
{
    if (c->turn != w->turn && w->woke != 0) {
        c->turn = w->turn;
        return w->woke;
    }
    return ek_now_ns();
}

/* One read of c's echo. Returns true when another may follow at once
 * (TLS: records OpenSSL holds already). */
static bool conn_recv_once(struct worker *w, struct bconn *c)
{
    const struct ek_bench *b = w->b;
    ssize_t n;
    int64_t rx = 0;
    if (c->ktx != NULL) { /* timestamps: plain TCP, never TLS */
        collect_tx_stamps(w, c);
        n = ek_tstamp_recv(c->fd, w->rbuf, BENCH_BUF, 0, &rx);
    } else {
        n = ek_conn_tp(&c->tc)->read(&c->tc, c->fd, w->rbuf, BENCH_BUF);
    }
    int64_t now = arrival(w, c);
    if (n == -EAGAIN)
        return false;
    if (n < 0) {
        conn_fail(w, c, FAIL_RESET, (int)-n);
        return false;
    }
    if (n == 0) {
        conn_fail(w, c, FAIL_CLOSED, 0);
        return false;
    }
    size_t ok = c->recvd + (uint64_t)n > c->sent
                    ? 0
                    : ek_pattern_check(c->key, c->recvd, w->rbuf, (size_t)n);
    if (ok < (size_t)n) {
        set_error(w, "connection %u: the echo differs at byte %llu%s", c->key,
                  (unsigned long long)c->recvd + ok,
                  c->recvd + (uint64_t)n > c->sent
                      ? " (more bytes came back than were sent)"
                      : "");
        conn_fail(w, c, FAIL_MISMATCH, 0);
        return false;
    }

    uint64_t size = b->cfg.size;
    uint64_t done_before = c->recvd / size;
    c->recvd += (uint64_t)n;
    c->waiting_since = now;
    uint64_t done = c->recvd / size;
    bool measured = in_window(b, now);
    c->heard |= measured;

    if (c->stamps != NULL && measured) {
        for (uint64_t m = done_before; m < done; m++)
            count_echo(w, c, m, now, rx);
        if (connect_mode(b) && done_before == 0 && done > 0)
            ek_hist_add(&w->cur.first_echo_lat, span(c->t_from, now));
    }
    if (measured) {
        w->cur.msgs += done - done_before;
        w->cur.bytes += (uint64_t)n;
    }
    atomic_fetch_add_explicit(&w->live.msgs, done - done_before,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&w->live.bytes, (uint64_t)n,
                              memory_order_relaxed);
    if (connect_mode(b) && done == b->cfg.exchanges) {
        conn_done(w, c, now);
        return false;
    }
    conn_send(w, c, now);
    return c->fd >= 0 && ek_conn_tp(&c->tc)->pending(&c->tc);
}

/* Reads of one connection per event: a TLS stream that always has
 * records ready must not keep the worker from its other connections and
 * its clock. */
#define BENCH_READS_PER_EVENT 16

static void conn_recv(struct worker *w, struct bconn *c)
{
    int n = 0;
    bool more;
    do
        more = conn_recv_once(w, c);
    while (more && ++n < BENCH_READS_PER_EVENT);
    /* OpenSSL still holds records: no readiness will say so. */
    c->again = more;
    w->again |= more;
}

/* The connections left with records to read: one more turn each. */
static void recv_again(struct worker *w)
{
    w->again = false;
    for (uint32_t i = 0; i < w->n; i++) {
        struct bconn *c = &w->conns[i];
        if (c->again && c->fd >= 0 && c->phase == PH_RUNNING)
            conn_recv(w, c);
        else
            c->again = false;
    }
}

/* ---- the connection's life: connect, TLS handshake, exchanges -------- */

static void conn_running(struct worker *w, struct bconn *c, int64_t now)
{
    c->phase = PH_RUNNING;
    c->waiting_since = now;
    conn_send(w, c, now);
}

/* The TLS handshake goes on; once done, the exchanges start. */
static void handshake_step(struct worker *w, struct bconn *c, int64_t now)
{
#ifdef EK_HAVE_TLS
    unsigned wait = 0;
    int rc = ek_tls_handshake(&c->tc, c->fd, &wait);
    if (rc == -EAGAIN) {
        arm_out(w, c, (wait & EK_EV_WRITE) != 0);
        return;
    }
    if (rc < 0) {
        conn_fail(w, c, rc == -EPROTO ? FAIL_TLS : FAIL_RESET, -rc);
        return;
    }
    now = ek_now_ns();
    if (connect_mode(w->b) && now >= w->b->t_measure)
        ek_hist_add(&w->cur.handshake_lat, (uint64_t)(now - c->t_connected));
#endif
    conn_running(w, c, now);
}

/* The TCP connection is up: the handshake, if TLS, then the exchanges. */
static void conn_connected(struct worker *w, struct bconn *c, int64_t now)
{
    const struct ek_bench *b = w->b;
    if (connect_mode(b) && now >= b->t_measure)
        ek_hist_add(&w->cur.connect_lat, (uint64_t)(now - c->t_begin));
    c->t_connected = now;
    c->waiting_since = now;
#ifdef EK_HAVE_TLS
    if (b->cfg.tls != NULL) {
        if (ek_tls_client_attach(b->cfg.tls, &c->tc, c->fd, b->cfg.tls_host) <
            0) {
            conn_fail(w, c, FAIL_TLS, ENOMEM);
            return;
        }
        c->phase = PH_HANDSHAKE;
        handshake_step(w, c, now);
        return;
    }
#endif
    conn_running(w, c, now);
}

/* connect mode: a connect that failed (refused, ...): counted, and the
 * slot waits BENCH_RETRY_NS. */
static void connect_failed_in(struct worker *w, struct bconn *c, int err)
{
    if (err == EMFILE || err == ENFILE) { /* the client's limit, not the
                                             server's failure */
        w->cur.conns_no_fd++;
    } else {
        w->cur.conns_failed++;
        atomic_fetch_add_explicit(&w->live.errors, 1, memory_order_relaxed);
        set_error(w, "connect: %s", strerror(err));
    }
    if (c->fd >= 0)
        conn_close(w, c);
    c->retry_at = ek_now_ns() + BENCH_RETRY_NS;
}

/* connect mode: a new connection in slot c, its first echo counted from
 * `from` (now, or its intended start in open loop). */
static void conn_start(struct worker *w, struct bconn *c, int64_t now,
                       int64_t from)
{
    bool done = false;
    c->t_begin = now;
    c->t_from = from;
    c->sent = c->recvd = c->started = 0;
    c->waiting_since = now;
    memset(&c->tc, 0, sizeof(c->tc));
    c->tc.tp = EK_TP_SOCKET;
    /* Round robin over the source pool, over all workers. */
    uint64_t index =
        atomic_fetch_add_explicit(&w->b->opened, 1, memory_order_relaxed);
    int fd = ek_net_connect_start(&w->b->cfg.target, w->b->cfg.sockopts, index,
                                  &done);
    if (fd < 0) {
        connect_failed_in(w, c, -fd);
        return;
    }
    ek_net_tune(fd); /* TCP_NODELAY, as socket_ready */
    c->fd = fd;
    c->phase = PH_CONNECTING;
    int err = ek_poller_add(w->poller, fd, c->slot, POLLIN | POLLOUT);
    if (err < 0) {
        close(fd);
        c->fd = -1;
        c->phase = PH_NONE;
        connect_failed_in(w, c, -err);
        return;
    }
    c->out_armed = true;
    if (done)
        conn_connected(w, c, now);
}

static void issue_due(struct worker *w, int64_t now);

/* connect mode: the connection did its exchanges: closed (TLS: after our
 * close_notify, best effort), counted, and the slot goes on. */
static void conn_done(struct worker *w, struct bconn *c, int64_t now)
{
    if (now >= w->b->t_measure) {
        w->cur.conns_done++;
#ifdef EK_HAVE_TLS
        if (ek_conn_tp(&c->tc) == &ek_transport_tls && ek_tls_resumed(&c->tc))
            w->cur.conns_resumed++;
#endif
    }
    (void)ek_conn_tp(&c->tc)->finish(&c->tc, c->fd);
    conn_close(w, c);
    c->retry_at = 0;
    if (w->b->cfg.rate > 0)
        issue_due(w, now); /* a slot is free for what is due */
    else
        conn_start(w, c, now, now);
}

/* An event (or its absence) on c, in whichever phase. */
static void conn_event(struct worker *w, struct bconn *c, unsigned e,
                       int64_t now)
{
    switch (c->phase) {
    case PH_CONNECTING: {
        int err = ek_net_connect_result(c->fd);
        if (err < 0)
            connect_failed_in(w, c, -err);
        else
            conn_connected(w, c, now);
        return;
    }
    case PH_HANDSHAKE:
        handshake_step(w, c, now);
        return;
    case PH_RUNNING: {
        /* TLS: either direction may be what unblocks the other. */
        bool tls = ek_conn_tp(&c->tc) != &ek_transport_socket;
        if (c->fd >= 0 && (tls || (e & (POLLOUT | POLLERR))))
            conn_send(w, c, now);
        if (c->fd >= 0 && (tls || (e & (POLLIN | POLLERR | POLLHUP))))
            conn_recv(w, c);
        return;
    }
    default:
        return;
    }
}

/* ---- UDP: datagrams matched by number --------------------------------- */

/* A record's state, beside its datagram's number + 1 (UDP_NUMBER). */
#define UDP_EXPIRED ((uint64_t)1 << 62) /* no echo within udp_timeout_ns */
#define UDP_ANSWERED ((uint64_t)1 << 63)
/* Closed loop: awaited, but no longer holding a place in the window: a
 * datagram `depth` behind the newest (its echo may still come in time,
 * or late; it is lost only by the timeout). */
#define UDP_OUTSIDE ((uint64_t)1 << 61)
#define UDP_NUMBER (UDP_OUTSIDE - 1)
/* Whether rec still holds a place in c's window. */
#define UDP_HOLDS(rec)                                                         \
    ((rec) != 0 && !((rec) & (UDP_EXPIRED | UDP_ANSWERED | UDP_OUTSIDE)))

uint64_t ek_bench_udp_records_bytes(const struct ek_bench_config *cfg)
{
    uint64_t per =
        sizeof(int64_t) * (cfg->timestamps ? 2 : 1) + sizeof(uint64_t);
    return (uint64_t)ek_bench_udp_records(cfg) * per * cfg->conns;
}

uint32_t ek_bench_udp_records(const struct ek_bench_config *cfg)
{
    /* Twice the timeout's worth at the connection's rate (open loop), so
     * that an echo up to twice the timeout late is still known for one;
     * closed loop, whose rate is the server's, starts small. Either grows
     * as it must (udp_grow). */
    uint64_t n = 2 * (uint64_t)cfg->depth;
    if (cfg->rate > 0 && cfg->conns > 0) {
        double per_conn = (double)cfg->rate / cfg->conns;
        double want = 2.0 * per_conn * (double)cfg->udp_timeout_ns / 1e9;
        if (want > (double)EK_BENCH_UDP_RECORDS_MAX)
            return 0;
        n = (uint64_t)want + 1;
    }
    return n < 256 ? 256 : (uint32_t)n;
}

/* Datagram m of c: its number (8 bytes, big-endian), then the pattern. */
static void udp_fill(struct worker *w, const struct bconn *c, uint64_t m,
                     size_t size)
{
    for (int i = 0; i < 8; i++)
        w->sbuf[i] = (unsigned char)(m >> (56 - 8 * i));
    ek_pattern_fill(c->key, m * size + 8, w->sbuf + 8, size - 8);
}

/* Bytes of records (stamps, kernel stamps, states) one slot costs. */
static size_t slot_bytes(const struct ek_bench *b)
{
    return sizeof(int64_t) * (b->cfg.timestamps ? 2 : 1) +
           (b->cfg.udp ? sizeof(uint64_t) : 0);
}

/* Doubles c's records (at most EK_BENCH_UDP_RECORDS_MAX, within the
 * run's EK_BENCH_RECORDS_BUDGET), each record moving to its datagram's
 * slot in the larger ring: so that no record is let go before twice the
 * timeout after its send, however fast the closed loop or a catching-up
 * open loop sends. Returns false when it cannot (the caller waits, or
 * lets the record go). */
static bool udp_grow(struct worker *w, struct bconn *c)
{
    struct ek_bench *b = w->b;
    uint32_t n = c->nslots, grown = n * 2;
    size_t more = (size_t)n * slot_bytes(b);
    if (n >= EK_BENCH_UDP_RECORDS_MAX ||
        atomic_fetch_add(&b->record_bytes, more) + more >
            EK_BENCH_RECORDS_BUDGET) {
        atomic_fetch_sub(&b->record_bytes, more);
        return false;
    }
    int64_t *stamps = calloc(grown, sizeof(*stamps));
    int64_t *ktx = c->ktx != NULL ? calloc(grown, sizeof(*ktx)) : NULL;
    uint64_t *recs = calloc(grown, sizeof(*recs));
    if (stamps == NULL || recs == NULL || (c->ktx != NULL && ktx == NULL)) {
        free(stamps);
        free(ktx);
        free(recs);
        atomic_fetch_sub(&b->record_bytes, more);
        return false;
    }
    for (uint32_t i = 0; i < n; i++) {
        uint64_t rec = c->inflight[i];
        if (rec == 0)
            continue;
        uint32_t to = (uint32_t)(((rec & UDP_NUMBER) - 1) % grown);
        recs[to] = rec;
        stamps[to] = c->stamps[i];
        if (ktx != NULL)
            ktx[to] = c->ktx[i];
    }
    free(c->stamps);
    free(c->ktx);
    free(c->inflight);
    c->stamps = stamps;
    c->ktx = ktx;
    c->inflight = recs;
    c->nslots = grown;
    return true;
}

/* The record in slot is let go: if its datagram expired unanswered, it is
 * lost (counted when it was sent in the window). */
static void udp_release(struct worker *w, struct bconn *c, uint32_t slot)
{
    uint64_t rec = c->inflight[slot];
    if ((rec & UDP_EXPIRED) && !(rec & UDP_ANSWERED) &&
        in_window(w->b, c->stamps[slot]))
        w->cur.lost++;
    c->inflight[slot] = 0;
}

static void udp_send(struct worker *w, struct bconn *c, int64_t now)
{
    const struct ek_bench *b = w->b;
    const struct ek_bench_config *cfg = &b->cfg;
    size_t size = (size_t)cfg->size;
    bool held = false, more = false;
    c->refused = false;
    for (int sends = 0;
         c->fd >= 0 && !w->draining &&
         (cfg->rate > 0 ? c->started < c->due : c->in_flight < cfg->depth);
         sends++) {
        if (sends == BENCH_WRITES_PER_TURN) {
            more = true;
            break;
        }
        uint64_t m = c->started;
        /* Closed loop: the window is the depth newest datagrams; one that
         * falls out of it, still awaited, stops holding its place (so that
         * a loss does not hold the window for the whole timeout). */
        if (cfg->rate == 0 && m >= cfg->depth) {
            uint32_t old = (uint32_t)((m - cfg->depth) % c->nslots);
            if ((c->inflight[old] & UDP_NUMBER) == m - cfg->depth + 1 &&
                UDP_HOLDS(c->inflight[old])) {
                c->inflight[old] |= UDP_OUTSIDE;
                c->in_flight--;
            }
        }
        uint32_t slot = (uint32_t)(m % c->nslots);
        uint64_t rec = c->inflight[slot];
        /* Its slot holds a record to keep: a datagram still awaited, or
         * one that expired less than twice the timeout ago (its echo may
         * yet come, late). The ring grows; if it cannot, an awaited one
         * holds the next back, as a TCP window would, and an expired one
         * is let go early (lost). */
        bool keep = rec != 0 && !(rec & UDP_ANSWERED) &&
                    (!(rec & UDP_EXPIRED) ||
                     now - c->stamps[slot] < 2 * cfg->udp_timeout_ns);
        if (keep && udp_grow(w, c)) {
            /* m's slot in the grown ring is free: the one record that could
             * map there is 2 x the old size back, older than any kept. */
            slot = (uint32_t)(m % c->nslots);
        } else if (keep && !(rec & UDP_EXPIRED)) {
            held = true;
            break;
        }
        udp_fill(w, c, m, size);
        int64_t at = ek_now_ns();
        ssize_t k = send(c->fd, w->sbuf, size, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 &&
            (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
            c->refused = true;
            break;
        }
        if (k < 0) { /* ECONNREFUSED: nothing listens there */
            conn_fail(w, c, FAIL_RESET, errno);
            return;
        }
        udp_release(w, c, slot);
        c->inflight[slot] = m + 1;
        c->stamps[slot] = at;
        if (c->ktx != NULL)
            c->ktx[slot] = 0;
        c->in_flight++;
        c->started++;
        c->sent += size;
        if (!c->sent_since_echo) /* an echo is owed from now on */
            c->waiting_since = at;
        c->sent_since_echo = true;
        if (in_window(b, at))
            w->cur.msgs_sent++;
    }
    if (c->fd < 0)
        return;
    if (cfg->rate > 0 && (held || c->refused))
        note_held(w, c, now);
    arm_out(w, c, c->refused || more);
}

/* timestamps: UDP's key counts the datagrams sent, from 0: datagram m. */
static void udp_tx_stamp(struct bconn *c, uint32_t key, int64_t tx)
{
    if (c->started == 0)
        return;
    uint64_t m = c->started - 1 - (uint32_t)((uint32_t)(c->started - 1) - key);
    uint32_t slot = (uint32_t)(m % c->nslots);
    if ((c->inflight[slot] & UDP_NUMBER) == m + 1)
        c->ktx[slot] = tx;
}

/* A datagram that is not an echo of ours. */
static void udp_mismatch(struct worker *w, const struct bconn *c,
                         const char *what, uint64_t m)
{
    w->cur.mismatches++;
    atomic_fetch_add_explicit(&w->live.errors, 1, memory_order_relaxed);
    set_error(w, "connection %u: datagram %llu: %s", c->key,
              (unsigned long long)m, what);
}

/* One datagram in w->rbuf (n bytes, its real length) arrived at now
 * (the kernel's stamp rx, or 0). An echo counts in the result of the
 * window its datagram was sent in (so that what the window sent is each
 * either echoed or lost), and in the interval it arrives in. */
static void udp_reply(struct worker *w, struct bconn *c, size_t n, int64_t now,
                      int64_t rx)
{
    const struct ek_bench *b = w->b;
    size_t size = (size_t)b->cfg.size;
    uint64_t m = 0;
    for (int i = 0; i < 8 && n >= 8; i++)
        m = m << 8 | w->rbuf[i];
    if (n != size) {
        udp_mismatch(w, c, "wrong length", m);
        return;
    }
    if (m >= c->started) {
        udp_mismatch(w, c, "never sent", m);
        return;
    }
    uint32_t slot = (uint32_t)(m % c->nslots);
    uint64_t rec = c->inflight[slot];
    /* Answered already: a duplicate. Older than every record kept (at
     * least twice the timeout): its datagram was counted lost, or it is
     * a duplicate too, which cannot be told apart any more: too late,
     * counted as such and nowhere else. */
    if ((rec & UDP_NUMBER) != m + 1) {
        w->cur.too_late += now >= b->t_measure;
        return;
    }
    if (rec & UDP_ANSWERED) {
        w->cur.duplicates += now >= b->t_measure;
        return;
    }
    bool measured = in_window(b, c->stamps[slot]);
    bool late =
        (rec & UDP_EXPIRED) || now - c->stamps[slot] > b->cfg.udp_timeout_ns;
    if (UDP_HOLDS(rec))
        c->in_flight--;
    c->inflight[slot] = rec | UDP_ANSWERED;
    if (ek_pattern_check(c->key, m * size + 8, w->rbuf + 8, size - 8) !=
        size - 8) {
        udp_mismatch(w, c, "the echo differs", m);
        return;
    }
    c->recvd += size;
    c->waiting_since = now;
    c->sent_since_echo = false;
    c->heard |= measured;
    bool reordered = m < c->highest;
    if (!reordered)
        c->highest = m;
    if (measured) {
        w->cur.reordered += reordered;
        w->cur.late += late;
        count_echo(w, c, m, now, rx);
        w->cur.msgs++;
        w->cur.bytes += size;
    }
    atomic_fetch_add_explicit(&w->live.msgs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->live.bytes, size, memory_order_relaxed);
}

/* Datagrams read from one connection per turn: a flood from the server
 * must not keep the worker from its clock, its other connections and a
 * stop (the socket's readiness stays, level-triggered). */
#define UDP_READS_PER_TURN 64

static void udp_recv(struct worker *w, struct bconn *c)
{
    if (c->ktx != NULL)
        collect_tx_stamps(w, c);
    for (int reads = 0; reads < UDP_READS_PER_TURN; reads++) {
        ssize_t n;
        int64_t rx = 0;
        if (c->ktx != NULL) {
            n = ek_tstamp_recv(c->fd, w->rbuf, BENCH_BUF, EK_MSG_TRUNC, &rx);
        } else {
            do
                n = recv(c->fd, w->rbuf, BENCH_BUF,
                         MSG_DONTWAIT | EK_MSG_TRUNC);
            while (n < 0 && errno == EINTR);
            if (n < 0)
                n = -errno;
        }
        if (n < 0) {
            if (n != -EAGAIN && n != -EWOULDBLOCK)
                conn_fail(w, c, FAIL_RESET, (int)-n);
            break;
        }
        udp_reply(w, c, (size_t)n, arrival(w, c), rx);
    }
    if (c->fd >= 0 && !c->out_armed)
        udp_send(w, c, ek_now_ns());
}

/* Datagrams awaited for longer than udp_timeout_ns expire: no longer in
 * flight (closed loop sends the next ones in their place), lost unless
 * their echo still comes. Sends go in order, so the oldest come first. */
static void udp_expire(struct worker *w, int64_t now)
{
    const struct ek_bench *b = w->b;
    for (uint32_t i = 0; i < w->n; i++) {
        struct bconn *c = &w->conns[i];
        if (c->fd < 0)
            continue;
        while (c->expire_next < c->started) {
            uint32_t slot = (uint32_t)(c->expire_next % c->nslots);
            uint64_t rec = c->inflight[slot];
            if ((rec & UDP_NUMBER) == c->expire_next + 1 &&
                !(rec & (UDP_EXPIRED | UDP_ANSWERED))) { /* awaited */
                if (now - c->stamps[slot] <= b->cfg.udp_timeout_ns)
                    break;
                if (UDP_HOLDS(rec))
                    c->in_flight--;
                c->inflight[slot] = rec | UDP_EXPIRED;
            }
            c->expire_next++;
        }
        if (!c->out_armed)
            udp_send(w, c, now);
    }
}

/* Whether a datagram is still awaited, not yet expired: one sent since
 * the oldest not yet expired (udp_expire's mark). */
static bool udp_awaited(const struct worker *w)
{
    for (uint32_t i = 0; i < w->n; i++)
        if (w->conns[i].fd >= 0 &&
            w->conns[i].expire_next < w->conns[i].started)
            return true;
    return false;
}

static void ticker_stop(struct worker *w);

/* After the window: the echoes of what it sent, for up to the timeout,
 * so that each datagram it sent is echoed or lost (none left "in
 * flight"); nothing more is sent. Ends early when nothing is awaited, or
 * the run is stopped. */
static void udp_drain(struct worker *w, struct ek_poller_event *ev)
{
    const struct ek_bench *b = w->b;
    int64_t until = b->t_end + b->cfg.udp_timeout_ns + BENCH_TICK_NS;
    w->draining = true;
    /* Nothing more goes out: no connection waits for room (a level-
     * triggered POLLOUT left armed would wake every wait at once), and the
     * schedule's ticker stops. */
    for (uint32_t i = 0; i < w->n; i++)
        if (w->conns[i].fd >= 0)
            arm_out(w, &w->conns[i], false);
    ticker_stop(w);
    for (int64_t now = ek_now_ns();
         now < until && udp_awaited(w) &&
         !atomic_load_explicit(&b->stop, memory_order_relaxed);
         now = ek_now_ns()) {
        int64_t wait =
            until - now < BENCH_TICK_NS ? until - now : BENCH_TICK_NS;
        int n = ek_poller_wait(w->poller, ev, BENCH_EVENTS, wait);
        w->woke = ek_now_ns();
        w->turn++;
        for (int i = 0; i < n; i++) {
            struct bconn *c = &w->conns[ev[i].slot]; /* no ticker now */
            if (c->fd >= 0 && (ev[i].events & (POLLIN | POLLERR)))
                udp_recv(w, c);
        }
        udp_expire(w, ek_now_ns());
    }
}

/* The end of the run: every record of a datagram that expired (or would
 * have, by now) unanswered is let go: lost. Younger ones (a run stopped
 * early) are still in flight and counted neither way. And how many
 * echoes the sockets themselves dropped. */
static void udp_finish(struct worker *w, int64_t now)
{
    const struct ek_bench *b = w->b;
    for (uint32_t i = 0; i < w->n; i++) {
        struct bconn *c = &w->conns[i];
        int64_t drops = c->fd >= 0 ? ek_socket_drops(c->fd) : 0;
        if (drops > 0)
            w->cur.rcvbuf_drops += (uint64_t)drops;
        /* The records of the last nslots datagrams, no other slot: a ring
         * of millions is not touched for a run that sent a few. */
        uint64_t first = c->started > c->nslots ? c->started - c->nslots : 0;
        for (uint64_t m = first; c->inflight != NULL && m < c->started; m++) {
            uint32_t s = (uint32_t)(m % c->nslots);
            uint64_t rec = c->inflight[s];
            if (rec == 0)
                continue;
            if (!(rec & UDP_ANSWERED) &&
                now - c->stamps[s] > b->cfg.udp_timeout_ns)
                c->inflight[s] = rec | UDP_EXPIRED;
            udp_release(w, c, s);
        }
    }
}

/* connect mode, open loop: starts every connection now due, each in a
 * free slot; with none free, what is due waits (and is charged for it). */
static void issue_due_connections(struct worker *w, int64_t now)
{
    for (;;) {
        int64_t due = w->t0 + (int64_t)w->next_j * w->interval_ns;
        if (due > now)
            return;
        struct bconn *slot = NULL;
        for (uint32_t i = 0; i < w->n && slot == NULL; i++)
            if (w->conns[i].fd < 0 && w->conns[i].retry_at <= now)
                slot = &w->conns[i];
        if (slot == NULL)
            return;
        w->next_j++;
        conn_start(w, slot, now, due);
    }
}

/* Open loop: c has more messages due. A connection waiting for room in
 * its socket (or for its next turn) is not written to (one write per due
 * message into a full socket is how a client collapses): the messages
 * wait in the schedule and go out together once it can. */
static void send_due(struct worker *w, struct bconn *c, int64_t now)
{
    if (c->fd < 0)
        return;
    if (c->out_armed && c->refused)
        note_held(w, c, now);
    else if (c->out_armed)
        return;
    else if (w->b->cfg.udp)
        udp_send(w, c, now);
    else
        conn_send(w, c, now);
}

/* Open loop: hands every message now due to its connection. Message j
 * of this worker falls due at start + j * interval_ns and goes to
 * connection j % n. */
static void issue_due(struct worker *w, int64_t now)
{
    const struct ek_bench *b = w->b;
    if (w->n == 0 || now < w->t0) /* n: never 0, a worker has connections */
        return;
    if (connect_mode(b)) {
        issue_due_connections(w, now);
        return;
    }
    uint64_t last = (uint64_t)((now - w->t0) / w->interval_ns);
    if (last < w->next_j)
        return;
    if (last - w->next_j >= w->n) { /* a round or more: every connection */
        for (uint32_t i = 0; i < w->n; i++) {
            struct bconn *c = &w->conns[i];
            c->due = last >= i ? (last - i) / w->n + 1 : 0;
            send_due(w, c, now);
        }
    } else { /* fewer than a round: each connection at most once */
        for (uint64_t j = w->next_j; j <= last; j++) {
            struct bconn *c = &w->conns[j % w->n];
            c->due = j / w->n + 1;
            send_due(w, c, now);
        }
    }
    w->next_j = last + 1;
}

/* Whether c is owed an echo: over TCP, bytes sent that have not come
 * back (or, before it runs, the handshake); over UDP, a datagram sent
 * since the last echo. */
static bool owed(const struct ek_bench *b, const struct bconn *c)
{
    if (b->cfg.udp)
        return c->sent_since_echo;
    return c->phase != PH_RUNNING || c->sent > c->recvd;
}

/* A connection owed an echo that has heard nothing for the timeout. */
static void check_stalls(struct worker *w, int64_t now)
{
    const struct ek_bench *b = w->b;
    for (uint32_t i = 0; i < w->n; i++) {
        struct bconn *c = &w->conns[i];
        if (c->fd >= 0 && owed(b, c) &&
            now - c->waiting_since > b->cfg.timeout_ns)
            conn_fail(w, c, FAIL_TIMEOUT, 0);
        /* connect mode, closed loop: a failed slot tries again. */
        if (connect_mode(b) && b->cfg.rate == 0 && c->fd < 0 &&
            c->retry_at <= now)
            conn_start(w, c, now, now);
    }
}

void ek_bench_result_reset(struct ek_bench_result *r)
{
    memset(r, 0, sizeof(*r));
    ek_hist_reset(&r->latency);
    ek_hist_reset(&r->uncorrected);
    ek_hist_reset(&r->send_lag);
    ek_hist_reset(&r->kernel_rtt);
    ek_hist_reset(&r->connect_lat);
    ek_hist_reset(&r->handshake_lat);
    ek_hist_reset(&r->first_echo_lat);
}

void ek_bench_result_add(struct ek_bench_result *into,
                         const struct ek_bench_result *from)
{
    into->conns_made += from->conns_made;
    into->conns_failed += from->conns_failed;
#define ADD_COUNTER(f) into->f += from->f;
    EK_BENCH_COUNTERS(ADD_COUNTER)
#undef ADD_COUNTER
    ek_hist_merge(&into->latency, &from->latency);
    ek_hist_merge(&into->uncorrected, &from->uncorrected);
    ek_hist_merge(&into->send_lag, &from->send_lag);
    ek_hist_merge(&into->kernel_rtt, &from->kernel_rtt);
    ek_hist_merge(&into->connect_lat, &from->connect_lat);
    ek_hist_merge(&into->handshake_lat, &from->handshake_lat);
    ek_hist_merge(&into->first_echo_lat, &from->first_echo_lat);
    if (into->first_error[0] == '\0')
        memcpy(into->first_error, from->first_error, sizeof(into->first_error));
}

/* The slot interval k goes to: the one that holds it already, or a new
 * one at the tail (workers publish every interval in order, so a new k
 * comes after the tail's); with INTERVALS_WAITING slots waiting, or no
 * memory for another, the tail grows to hold k. NULL only when there is
 * no slot at all and no memory for one. */
static struct interval_slot *slot_for(struct ek_bench *b, uint64_t k)
{
    for (struct interval_slot *s = b->head; s != NULL; s = s->next)
        if (s->k_first <= k && k <= s->k_last)
            return s;
    struct interval_slot *s =
        b->waiting < INTERVALS_WAITING ? malloc(sizeof(*s)) : NULL;
    if (s == NULL) {
        if (b->tail != NULL)
            b->tail->k_last = k;
        return b->tail;
    }
    s->next = NULL;
    s->k_first = s->k_last = k;
    ek_bench_result_reset(&s->r);
    if (b->tail != NULL)
        b->tail->next = s;
    else
        b->head = s;
    b->tail = s;
    b->waiting++;
    return s;
}

/* Hands w's current interval over and starts the next, never waiting for
 * the reader; final: w is done (its last interval may be cut short). */
/* Open loop: the points of w's schedule in [from, to). */
static uint64_t points_between(const struct worker *w, int64_t from, int64_t to)
{
    if (w->interval_ns <= 0 || to <= from)
        return 0;
    int64_t i = w->interval_ns;
    int64_t a = from > w->t0 ? (from - w->t0 + i - 1) / i : 0;
    int64_t z = to > w->t0 ? (to - w->t0 + i - 1) / i : 0;
    return (uint64_t)(z - a);
}

static void publish(struct worker *w, bool final)
{
    struct ek_bench *b = w->b;
    /* What the schedule had fall due in this interval (of the window). */
    int64_t len = b->cfg.interval_ns;
    int64_t from = len > 0 && w->k_end - len > b->t_measure ? w->k_end - len
                                                            : b->t_measure;
    int64_t to = final ? ek_now_ns() : w->k_end;
    w->cur.msgs_due += points_between(w, from, to < b->t_end ? to : b->t_end);
    pthread_mutex_lock(&b->lock);
    struct interval_slot *s = slot_for(b, w->k);
    if (s != NULL)
        ek_bench_result_add(&s->r, &w->cur);
    else
        b->slot_lost = true; /* the total below still has it */
    ek_bench_result_add(&b->total, &w->cur);
    w->k++;
    if (final) {
        w->exited = true;
        b->exited++;
    }
    pthread_mutex_unlock(&b->lock);
    ek_bench_result_reset(&w->cur);
    w->k_end += w->k_end < INT64_MAX ? w->b->cfg.interval_ns : 0;
}

static void count_silent(struct worker *w);
static void ticker_start(struct worker *w, bool open_loop);

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct ek_bench *b = w->b;
    struct ek_poller_event ev[BENCH_EVENTS];

    /* Timer slack (50 us by default) would blur an open-loop schedule. */
    ek_timer_slack_min();
    int64_t now = ek_now_ns();
    for (uint32_t i = 0; i < w->n; i++) {
        struct bconn *c = &w->conns[i];
        c->waiting_since = now;
        if (connect_mode(b)) {
            if (b->cfg.rate == 0)
                conn_start(w, c, now, now);
        } else if (c->phase == PH_HANDSHAKE) {
            handshake_step(w, c, now);
        } else if (b->cfg.udp && b->cfg.rate == 0) {
            udp_send(w, c, now);
        } else if (b->cfg.rate == 0 || b->cfg.mode != EK_BENCH_RR) {
            conn_send(w, c, now);
        }
    }
    w->next_check = now + BENCH_TICK_NS;
    w->k_end =
        b->cfg.interval_ns > 0 ? b->t_measure + b->cfg.interval_ns : INT64_MAX;

    bool open_loop =
        (b->cfg.mode == EK_BENCH_RR || connect_mode(b)) && b->cfg.rate > 0;
    ticker_start(w, open_loop);
    while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
        now = ek_now_ns();
        if (now >= b->t_end)
            break;
        while (now >= w->k_end)
            publish(w, false);
        if (open_loop)
            issue_due(w, now);
        if (now >= w->next_check) {
            if (b->cfg.udp)
                udp_expire(w, now);
            check_stalls(w, now);
            w->next_check = now + BENCH_TICK_NS;
        }
        int64_t until = b->t_end < w->next_check ? b->t_end : w->next_check;
        if (w->k_end < until)
            until = w->k_end;
        if (open_loop && w->ticker < 0) {
            /* --spin-us: the last stretch before a message falls due is
             * spent polling without sleeping, no wake-up to be late. */
            int64_t due = w->t0 + (int64_t)w->next_j * w->interval_ns;
            if (due - b->cfg.spin_ns < until)
                until = due - b->cfg.spin_ns;
        }
        int n = ek_poller_wait(w->poller, ev, BENCH_EVENTS,
                               until > now && !w->again ? until - now : 0);
        if (n < 0 && n != -EINTR) {
            set_error(w, "waiting for events: %s", strerror(-n));
            break;
        }
        now = ek_now_ns();
        w->woke = now;
        w->turn++;
        for (int i = 0; i < n; i++) {
            if (ev[i].slot == w->n) { /* the ticker: issue_due follows */
                (void)ek_ticker_read(w->ticker);
                continue;
            }
            struct bconn *c = &w->conns[ev[i].slot];
            unsigned e = ev[i].events;
            if (b->cfg.udp) {
                if (c->fd >= 0 && (e & POLLOUT))
                    udp_send(w, c, now);
                if (c->fd >= 0 && (e & (POLLIN | POLLERR)))
                    udp_recv(w, c);
                continue;
            }
            if (c->fd >= 0)
                conn_event(w, c, e, now);
        }
        if (w->again)
            recv_again(w);
    }
    if (b->cfg.udp) {
        udp_drain(w, ev);
        udp_finish(w, ek_now_ns());
    }
    if (b->cfg.mode != EK_BENCH_IDLE && !connect_mode(b))
        count_silent(w);
    publish(w, true);
    return NULL;
}

/* The per-connection memory of rr and UDP: send times (and kernel send
 * stamps, and UDP's records), b->slots each to begin with. */
static int conn_alloc(const struct ek_bench *b, struct bconn *c)
{
    const struct ek_bench_config *cfg = &b->cfg;
    bool rr = cfg->mode == EK_BENCH_RR || connect_mode(b);
    if (!rr)
        return 0;
    c->nslots = b->slots;
    c->stamps = calloc(c->nslots, sizeof(*c->stamps));
    if (cfg->timestamps)
        c->ktx = calloc(c->nslots, sizeof(*c->ktx));
    if (cfg->udp)
        c->inflight = calloc(c->nslots, sizeof(*c->inflight));
    if (c->stamps == NULL || (cfg->timestamps && c->ktx == NULL) ||
        (cfg->udp && c->inflight == NULL))
        return -ENOMEM;
    return 0;
}

/* The stamps each connection keeps: closed loop, its depth; open loop,
 * EK_BENCH_OPEN_WINDOW_S of its schedule (within the window's bounds);
 * UDP, its records. */
static uint32_t slots_of(const struct ek_bench *b)
{
    const struct ek_bench_config *cfg = &b->cfg;
    if (cfg->udp) {
        struct ek_bench_config made = *cfg;
        made.conns = b->made;
        uint32_t n = ek_bench_udp_records(&made);
        return n > 0 ? n : EK_BENCH_UDP_RECORDS_MAX;
    }
    if (cfg->mode != EK_BENCH_RR || cfg->rate == 0)
        return cfg->depth;
    uint64_t n = cfg->rate * EK_BENCH_OPEN_WINDOW_S / b->made;
    n = n < EK_BENCH_OPEN_WINDOW_MIN   ? EK_BENCH_OPEN_WINDOW_MIN
        : n > EK_BENCH_OPEN_WINDOW_MAX ? EK_BENCH_OPEN_WINDOW_MAX
                                       : n;
    /* Within the run's budget: a smaller window (what does not fit is
     * held back, and counted, as a full window is). */
    uint64_t fits = EK_BENCH_RECORDS_BUDGET / slot_bytes(b) / b->made;
    if (n > fits)
        n = fits < 16 ? 16 : fits;
    return (uint32_t)n;
}

/* Below this interval between a worker's messages, no ticker: the worker
 * hardly sleeps between them, and a timer interrupt per message would
 * cost more than the timed wait. */
#define TICKER_MIN_NS 20000

/* Open loop: the worker's schedule as a ticker when the platform has one
 * and the messages are far enough apart (not with --spin-us, which polls
 * to the due time itself). Without, the wait times out at each message's
 * time, which is as punctual but costs each early wake-up. */
static void ticker_start(struct worker *w, bool open_loop)
{
    const struct ek_bench *b = w->b;
    if (!open_loop || b->cfg.spin_ns > 0 || w->interval_ns < TICKER_MIN_NS)
        return;
    int fd = ek_ticker_open(w->t0, w->interval_ns);
    if (fd < 0)
        return;
    if (ek_poller_add(w->poller, fd, w->n, POLLIN) < 0) {
        close(fd);
        return;
    }
    w->ticker = fd;
}

static void ticker_stop(struct worker *w)
{
    if (w->ticker < 0)
        return;
    (void)ek_poller_remove(w->poller, w->ticker, w->n);
    close(w->ticker);
    w->ticker = -1;
}

static int worker_init(struct ek_bench *b, struct worker *w, uint32_t t)
{
    /* stream: one write of `size` bytes must fit the send buffer. */
    size_t sbuf = b->cfg.mode == EK_BENCH_STREAM && b->cfg.size > BENCH_BUF
                      ? (size_t)b->cfg.size
                      : BENCH_BUF;
    w->sbuf = malloc(sbuf);
    w->rbuf = malloc(BENCH_BUF);
    if (w->sbuf == NULL || w->rbuf == NULL)
        return -ENOMEM;
    ek_bench_result_reset(&w->cur);
    if (b->cfg.rate > 0 && w->n > 0) {
        /* This worker's share of the rate: n of the conns. */
        double per_worker = (double)b->cfg.rate * w->n / b->made;
        w->interval_ns = (int64_t)(1e9 / per_worker);
        if (w->interval_ns < 1)
            w->interval_ns = 1;
        w->phase_ns = w->interval_ns * t / b->nworkers;
    }
    int err = 0;
    for (uint32_t i = 0; i < w->n && err == 0; i++)
        if (w->conns[i].fd >= 0)
            err = ek_poller_add(w->poller, w->conns[i].fd, i, POLLIN);
    return err;
}

/* Connections being opened at once: enough to open thousands in a
 * fraction of a second, few enough not to flood a small listen backlog. */
#define CONNECT_BATCH 64

static void connect_failed(struct ek_bench *b, int err)
{
    if (b->failed++ == 0)
        snprintf(b->connect_error, sizeof(b->connect_error), "%s",
                 err ? strerror(err) : "timed out");
}

static bool no_fd_left(int err)
{
    return err == EMFILE || err == ENFILE;
}

/* A new socket of the run, once connected: TCP_NODELAY; with timestamps,
 * asked for them before it sends anything (TCP: once connected, the only
 * state the kernel keys send stamps from 0 in). Returns 0 or -errno, fd
 * closed. */
static int socket_ready(const struct ek_bench *b, int fd)
{
    /* TCP_NODELAY, as the server sets it and every latency tool does: a
     * message goes out when it is written, not when Nagle allows. */
    if (!b->cfg.udp)
        ek_net_tune(fd);
    int err = b->cfg.timestamps ? ek_tstamp_enable(fd) : 0;
    if (err < 0)
        close(fd);
    return err;
}

/* UDP: connected datagram sockets, nothing to wait for. */
static int open_udp_all(struct ek_bench *b, int *fds)
{
    const struct ek_bench_config *cfg = &b->cfg;
    for (uint32_t i = 0; i < cfg->conns; i++) {
        int family = cfg->target.ss.ss_family;
        int fd = ek_socket(family, SOCK_DGRAM, O_NONBLOCK | O_CLOEXEC);
        const char *which;
        int err = fd < 0 || cfg->sockopts == NULL
                      ? 0
                      : ek_sockopts_apply(cfg->sockopts, fd, family, false, i,
                                          &which);
        if (fd >= 0 && err == 0 &&
            connect(fd, (const struct sockaddr *)&cfg->target.ss,
                    cfg->target.len) < 0)
            err = -errno;
        if (fd >= 0 && err == 0)
            ek_rcvbuf_ask(fd, EK_BENCH_UDP_RCVBUF);
        if (fd >= 0 && err < 0) {
            close(fd);
            fd = err;
        }
        if (fd >= 0)
            fd = socket_ready(b, fd) < 0 ? -errno : fd;
        if (fd < 0 && no_fd_left(-fd)) { /* the rest are not tried */
            b->no_fd = cfg->conns - i;
            break;
        }
        if (fd < 0)
            connect_failed(b, -fd);
        else
            fds[b->made++] = fd;
    }
    return 0;
}

/* Opens every connection, CONNECT_BATCH at a time, all within
 * cfg->timeout_ns: a server whose backlog drops SYNs costs a bounded wait
 * and shows up as failed connections, not as a hang. Out of descriptors,
 * it stops opening: the run goes on with those made. */
static int connect_all(struct ek_bench *b, int **fds)
{
    const struct ek_bench_config *cfg = &b->cfg;
    struct pollfd p[CONNECT_BATCH];
    nfds_t pending = 0;
    uint32_t next = 0;
    int64_t deadline = ek_now_ns() + cfg->timeout_ns;

    *fds = calloc(cfg->conns, sizeof(**fds));
    if (*fds == NULL)
        return -ENOMEM;
    if (cfg->udp)
        return open_udp_all(b, *fds);
    while (next < cfg->conns || pending > 0) {
        while (pending < CONNECT_BATCH && next < cfg->conns) {
            bool done;
            int fd =
                ek_net_connect_start(&cfg->target, cfg->sockopts, next, &done);
            next++;
            if (fd < 0 && no_fd_left(-fd)) {
                b->no_fd = cfg->conns - next + 1;
                next = cfg->conns;
            } else if (fd < 0) {
                connect_failed(b, -fd);
            } else if (done) {
                if ((fd = socket_ready(b, fd)) >= 0)
                    (*fds)[b->made++] = fd;
                else
                    connect_failed(b, -fd);
            } else {
                p[pending++] = (struct pollfd){.fd = fd, .events = POLLOUT};
            }
        }
        int64_t left = (deadline - ek_now_ns()) / 1000000;
        int n = left > 0 ? poll(p, pending, (int)left) : 0;
        if (n < 0 && errno != EINTR)
            return -errno;
        for (nfds_t i = pending; i-- > 0;) {
            if (left > 0 && p[i].revents == 0)
                continue;
            int fd = p[i].fd;
            int err = p[i].revents != 0 ? ek_net_connect_result(fd) : 0;
            if (p[i].revents != 0 && err == 0)
                err = socket_ready(b, fd);
            else
                close(fd); /* refused, or out of time */
            if (p[i].revents != 0 && err == 0)
                (*fds)[b->made++] = fd;
            else
                connect_failed(b, -err);
            p[i] = p[--pending];
        }
        if (left <= 0) { /* out of time: the rest are not even tried */
            while (next < cfg->conns) {
                connect_failed(b, 0);
                next++;
            }
        }
    }
    return 0;
}

/* The workers and their pollers, before any connection: a poller is a
 * descriptor too, and must not be the one that cannot be had once the
 * connections took them all. */
static int workers_open(struct ek_bench *b)
{
    const struct ek_bench_config *cfg = &b->cfg;
    b->nworkers = cfg->threads < cfg->conns ? cfg->threads : cfg->conns;
    b->workers = calloc(b->nworkers, sizeof(*b->workers));
    if (b->workers == NULL)
        return -ENOMEM;
    uint32_t most = (cfg->conns + b->nworkers - 1) / b->nworkers;
    for (uint32_t t = 0; t < b->nworkers; t++) {
        b->workers[t].b = b;
        b->workers[t].ticker = -1;
        /* One more slot than connections: the ticker's. */
        int err = ek_poller_open(&b->workers[t].poller, most + 1);
        if (err < 0)
            return err;
    }
    return 0;
}

/* Fewer connections made than workers opened: the extra ones go. */
static void workers_trim(struct ek_bench *b)
{
    while (b->nworkers > b->made) {
        struct worker *w = &b->workers[--b->nworkers];
        ek_poller_close(w->poller);
        w->poller = NULL;
    }
}

int ek_bench_new(const struct ek_bench_config *cfg, struct ek_bench **out)
{
    struct ek_bench *b = calloc(1, sizeof(*b));
    int *fds = NULL;
    if (b == NULL)
        return -ENOMEM;
    b->cfg = *cfg;
    b->t_stopped = INT64_MAX;
    ek_bench_result_reset(&b->total);
    if (pthread_mutex_init(&b->lock, NULL) != 0) {
        free(b);
        return -ENOMEM;
    }
    b->lock_made = true;
    int err = workers_open(b);
    /* connect mode: the slots open their connections as they run. */
    if (err == 0 && connect_mode(b))
        b->made = cfg->conns;
    else if (err == 0)
        err = connect_all(b, &fds);
    if (err == 0 && b->made == 0)
        err = b->no_fd > 0 ? -EMFILE : -ECONNREFUSED;
    if (err < 0) {
        free(fds);
        ek_bench_free(b);
        return err;
    }
    b->slots = slots_of(b);
    atomic_store_explicit(&b->record_bytes,
                          (size_t)b->slots * slot_bytes(b) * b->made,
                          memory_order_relaxed);
    workers_trim(b);
    if (b->nworkers == 0) { /* never: made >= 1, and a worker each */
        err = -EINVAL;
        goto fail;
    }
    err = -ENOMEM;
    for (uint32_t t = 0; t < b->nworkers; t++) {
        struct worker *w = &b->workers[t];
        w->n = b->made / b->nworkers + (t < b->made % b->nworkers);
        /* nworkers <= made, so n >= 1. */
        // NOLINTNEXTLINE(clang-analyzer-optin.portability.UnixAPI)
        w->conns = calloc(w->n, sizeof(*w->conns));
        if (w->conns == NULL)
            goto fail;
        for (uint32_t i = 0; i < w->n; i++) {
            w->conns[i].fd = -1;
            w->conns[i].tc.tp = EK_TP_SOCKET;
        }
    }
    /* Connection i goes to worker i % nworkers, as its slot i / nworkers. */
    const uint32_t nw = b->nworkers;
    for (uint32_t i = 0; i < b->made; i++) {
        struct worker *w = &b->workers[i % nw];
        struct bconn *c = &w->conns[i / nw];
        c->key = i;
        c->slot = i / nw;
        if (fds != NULL) {
            c->fd = fds[i];
            fds[i] = -1;
            c->phase = PH_RUNNING;
        }
#ifdef EK_HAVE_TLS
        /* Made up front: the workers do the handshakes as they start. */
        if (c->fd >= 0 && cfg->tls != NULL) {
            if (ek_tls_client_attach(cfg->tls, &c->tc, c->fd, cfg->tls_host) <
                0)
                goto fail;
            c->phase = PH_HANDSHAKE;
        }
#endif
        if (conn_alloc(b, c) < 0)
            goto fail;
    }
    err = 0;
    for (uint32_t t = 0; t < b->nworkers && err == 0; t++)
        err = worker_init(b, &b->workers[t], t);
    if (err < 0)
        goto fail;
    free(fds);
    *out = b;
    return 0;
fail:
    for (uint32_t i = 0; fds != NULL && i < b->made; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    ek_bench_free(b);
    return err;
}

int ek_bench_start(struct ek_bench *b, int64_t start_ns)
{
    b->t_start = start_ns;
    for (uint32_t t = 0; t < b->nworkers; t++)
        b->workers[t].t0 = start_ns + b->workers[t].phase_ns;
    b->t_measure = start_ns + b->cfg.warmup_ns;
    b->t_end = b->t_measure + b->cfg.duration_ns;
    sigset_t saved;
    ek_signal_block_all(&saved); /* signals stay with the main thread */
    for (uint32_t t = 0; t < b->nworkers; t++) {
        int err = pthread_create(&b->workers[t].tid, NULL, worker_main,
                                 &b->workers[t]);
        if (err != 0) {
            ek_signal_restore(&saved);
            atomic_store(&b->stop, true);
            for (uint32_t k = 0; k < t; k++)
                pthread_join(b->workers[k].tid, NULL);
            return -err;
        }
    }
    ek_signal_restore(&saved);
    b->running = true;
    return 0;
}

void ek_bench_stop(struct ek_bench *b)
{
    atomic_store(&b->stop, true);
    pthread_mutex_lock(&b->lock);
    if (b->t_stopped == INT64_MAX)
        b->t_stopped = ek_now_ns();
    pthread_mutex_unlock(&b->lock);
}

bool ek_bench_done(struct ek_bench *b)
{
    pthread_mutex_lock(&b->lock);
    bool done = b->exited == b->nworkers;
    pthread_mutex_unlock(&b->lock);
    return done;
}

void ek_bench_live(struct ek_bench *b, uint64_t *msgs, uint64_t *bytes,
                   uint64_t *errors)
{
    *msgs = *bytes = *errors = 0;
    for (uint32_t t = 0; t < b->nworkers; t++) {
        struct ek_bench_live *l = &b->workers[t].live;
        *msgs += atomic_load_explicit(&l->msgs, memory_order_relaxed);
        *bytes += atomic_load_explicit(&l->bytes, memory_order_relaxed);
        *errors += atomic_load_explicit(&l->errors, memory_order_relaxed);
    }
}

/* A connection owed an echo that heard nothing during the whole measured
 * window failed, even if the window was shorter than --timeout: a run must
 * never report 0 msgs/s as a success. */
static void count_silent(struct worker *w)
{
    int64_t end = ek_now_ns();
    if (end > w->b->t_end)
        end = w->b->t_end;
    int64_t window = end - w->b->t_measure;
    for (uint32_t i = 0; i < w->n; i++) {
        struct bconn *c = &w->conns[i];
        /* Owed an echo for at least half the window and heard nothing in
         * it (half: a first message sent just as the window began still
         * counts; one sent just before the end does not). */
        if (c->fd >= 0 && owed(w->b, c) && !c->heard && window > 0 &&
            end - c->waiting_since >= window / 2)
            conn_fail(w, c, FAIL_TIMEOUT, 0);
    }
}

/* Whether every worker has published all of slot s, or is done. */
static bool slot_complete(const struct ek_bench *b,
                          const struct interval_slot *s)
{
    for (uint32_t t = 0; t < b->nworkers; t++)
        if (!b->workers[t].exited && b->workers[t].k <= s->k_last)
            return false;
    return true;
}

int ek_bench_next_interval(struct ek_bench *b, struct ek_bench_interval *out)
{
    pthread_mutex_lock(&b->lock);
    struct interval_slot *s = b->head;
    /* A first interval without memory for its slot would never complete:
     * the reports stop there (the total has everything). */
    int rc = b->slot_lost || (s == NULL && b->exited == b->nworkers) ? -1 : 0;
    if (b->slot_lost)
        s = NULL;
    if (s != NULL && slot_complete(b, s)) {
        int64_t len = b->cfg.interval_ns;
        out->index = s->k_first;
        out->intervals = s->k_last - s->k_first + 1;
        out->start_ns = b->t_measure + (int64_t)s->k_first * len;
        out->end_ns =
            len > 0 ? b->t_measure + (int64_t)(s->k_last + 1) * len : INT64_MAX;
        if (out->end_ns > b->t_end)
            out->end_ns = b->t_end;
        if (out->end_ns > b->t_stopped)
            out->end_ns = b->t_stopped;
        if (out->end_ns < out->start_ns) /* stopped in the warm-up */
            out->end_ns = out->start_ns;
        memcpy(&out->r, &s->r, sizeof(out->r));
        b->head = s->next;
        if (b->head == NULL)
            b->tail = NULL;
        b->waiting--;
        free(s);
        rc = 1;
    }
    pthread_mutex_unlock(&b->lock);
    return rc;
}

void ek_bench_finish(struct ek_bench *b, struct ek_bench_result *r)
{
    for (uint32_t t = 0; b->running && t < b->nworkers; t++)
        pthread_join(b->workers[t].tid, NULL);
    b->running = false;
    memcpy(r, &b->total, sizeof(*r));
    r->conns_made = b->made;
    r->conns_failed += b->failed;
    r->conns_no_fd += b->no_fd;
    for (uint32_t t = 0; t < b->nworkers && r->first_error[0] == '\0'; t++)
        memcpy(r->first_error, b->workers[t].first_error,
               sizeof(r->first_error));
    if (r->first_error[0] == '\0' && b->failed > 0)
        snprintf(r->first_error, sizeof(r->first_error),
                 "%u of %u connections could not be made; the first: %s",
                 b->failed, b->cfg.conns, b->connect_error);
    if (b->slot_lost && r->first_error[0] == '\0')
        snprintf(r->first_error, sizeof(r->first_error),
                 "out of memory: an interval was left out of the interval "
                 "reports (not of this total)");
}

void ek_bench_free(struct ek_bench *b)
{
    if (b == NULL)
        return;
    for (uint32_t t = 0; b->workers != NULL && t < b->nworkers; t++) {
        struct worker *w = &b->workers[t];
        for (uint32_t i = 0; w->conns != NULL && i < w->n; i++) {
            ek_conn_release(&w->conns[i].tc);
            if (w->conns[i].fd >= 0)
                close(w->conns[i].fd);
            free(w->conns[i].stamps);
            free(w->conns[i].ktx);
            free(w->conns[i].inflight);
        }
        if (w->ticker >= 0)
            close(w->ticker);
        ek_poller_close(w->poller);
        free(w->conns);
        free(w->sbuf);
        free(w->rbuf);
    }
    free(b->workers);
    while (b->head != NULL) {
        struct interval_slot *next = b->head->next;
        free(b->head);
        b->head = next;
    }
    if (b->lock_made)
        pthread_mutex_destroy(&b->lock);
    free(b);
}
