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
 * connection and message. */
#define BENCH_BUF ((size_t)64 * 1024)
/* stream mode: bytes a connection may have sent and not yet had back. */
#define STREAM_WINDOW (4u << 20)
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
    bool heard; /* received something in the measured window */
    bool again; /* TLS: records already read: read again without waiting */
    uint64_t sent, recvd;  /* bytes */
    uint64_t started;      /* messages whose first byte went out */
    uint64_t due;          /* open loop: messages scheduled so far */
    int64_t waiting_since; /* since when an echo is owed without news */
    int64_t *stamps;       /* closed-loop rr: send times, `depth` entries */
    /* UDP: the datagrams in flight, slot m % udp_slots holding m + 1 (0:
     * free) and its send time in stamps. */
    uint64_t *inflight;
    uint32_t in_flight;
    uint64_t highest;  /* the highest datagram number back so far */
    struct ek_conn tc; /* its transport: plain, or TLS's client side */
    uint8_t phase;     /* enum phase */
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
    uint64_t next_j;
    int64_t next_check;
    bool again; /* some connection has again set */
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
    char connect_error[96]; /* why the first failed connection failed */
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

/* How far the stream of c may be sent now, in bytes. */
static uint64_t send_target(const struct ek_bench *b, const struct bconn *c)
{
    const struct ek_bench_config *cfg = &b->cfg;
    switch (cfg->mode) {
    case EK_BENCH_STREAM:
        return c->recvd + STREAM_WINDOW;
    case EK_BENCH_IDLE:
        return cfg->size;
    case EK_BENCH_CONNECT: { /* one exchange at a time, `exchanges` in all */
        uint64_t next = (c->recvd / cfg->size + 1) * cfg->size;
        uint64_t all = (uint64_t)cfg->exchanges * cfg->size;
        return next < all ? next : all;
    }
    case EK_BENCH_RR:
    default:
        if (cfg->rate > 0)
            return c->due * cfg->size;
        return (c->recvd / cfg->size + cfg->depth) * cfg->size;
    }
}

static void conn_send(struct worker *w, struct bconn *c, int64_t now)
{
    const struct ek_bench_config *cfg = &w->b->cfg;
    uint64_t target = send_target(w->b, c);

    if (c->sent == c->recvd && target > c->sent)
        c->waiting_since = now; /* an echo is owed from now on */
    while (c->fd >= 0 && c->sent < target) {
        uint64_t left = target - c->sent;
        size_t n = left < BENCH_BUF ? (size_t)left : BENCH_BUF;
        ek_pattern_fill(c->key, c->sent, w->sbuf, n);
        /* The clock before the send: on loopback the echo may be back
         * before send() returns. And the clock now, not the batch's:
         * events handled earlier in the batch are not this latency. */
        int64_t at = ek_now_ns();
        struct iovec iov = {.iov_base = w->sbuf, .iov_len = n};
        ssize_t k = ek_conn_tp(&c->tc)->writev(&c->tc, c->fd, &iov, 1);
        if (k == -EAGAIN)
            break;
        if (k < 0) {
            conn_fail(w, c, FAIL_RESET, (int)-k);
            return;
        }
        c->sent += (uint64_t)k;
        if (c->stamps != NULL)
            while (c->started * cfg->size < c->sent)
                c->stamps[c->started++ % cfg->depth] = at;
        if ((size_t)k < n)
            break;
    }
    if (c->fd >= 0)
        arm_out(w, c, c->sent < target);
}

/* When message m of c was meant to go out (open loop). */
static int64_t intended(const struct worker *w, const struct bconn *c,
                        uint64_t m)
{
    uint64_t j = m * w->n + c->slot;
    return w->b->t_start + (int64_t)j * w->interval_ns;
}

static void conn_done(struct worker *w, struct bconn *c, int64_t now);

/* One read of c's echo. Returns true when another may follow at once
 * (TLS: records OpenSSL holds already). */
static bool conn_recv_once(struct worker *w, struct bconn *c)
{
    const struct ek_bench *b = w->b;
    ssize_t n = ek_conn_tp(&c->tc)->read(&c->tc, c->fd, w->rbuf, BENCH_BUF);
    int64_t now = ek_now_ns(); /* when this echo arrived, exactly */
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
    bool measured = now >= b->t_measure && now < b->t_end;
    c->heard |= measured;

    if (b->cfg.mode == EK_BENCH_RR || connect_mode(b)) {
        for (uint64_t m = done_before; m < done && measured; m++) {
            int64_t from = b->cfg.rate > 0 && !connect_mode(b)
                               ? intended(w, c, m)
                               : c->stamps[m % b->cfg.depth];
            ek_hist_add(&w->cur.latency, (uint64_t)(now - from));
        }
        if (connect_mode(b) && done_before == 0 && done > 0 && measured)
            ek_hist_add(&w->cur.first_echo_lat, (uint64_t)(now - c->t_from));
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
    w->cur.conns_failed++;
    atomic_fetch_add_explicit(&w->live.errors, 1, memory_order_relaxed);
    set_error(w, "connect: %s", strerror(err));
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

/* Open loop: datagrams a connection remembers in flight (older ones still
 * out when their slot comes round again count as lost). */
#define EK_BENCH_UDP_RING 256

static uint32_t udp_slots(const struct ek_bench *b)
{
    return b->cfg.rate > 0 ? EK_BENCH_UDP_RING : b->cfg.depth;
}

/* Datagram m of c: its number (8 bytes, big-endian), then the pattern. */
static void udp_fill(struct worker *w, const struct bconn *c, uint64_t m,
                     size_t size)
{
    for (int i = 0; i < 8; i++)
        w->sbuf[i] = (unsigned char)(m >> (56 - 8 * i));
    ek_pattern_fill(c->key, m * size + 8, w->sbuf + 8, size - 8);
}

/* A datagram in flight is given up on (lost): its slot is free again. */
static void udp_forget(struct worker *w, struct bconn *c, uint32_t slot,
                       int64_t now)
{
    c->inflight[slot] = 0;
    c->in_flight--;
    if (now >= w->b->t_measure)
        w->cur.lost++;
}

static void udp_send(struct worker *w, struct bconn *c, int64_t now)
{
    const struct ek_bench_config *cfg = &w->b->cfg;
    uint32_t slots = udp_slots(w->b);
    size_t size = (size_t)cfg->size;
    while (c->fd >= 0 &&
           (cfg->rate > 0 ? c->started < c->due : c->in_flight < cfg->depth)) {
        uint64_t m = c->started;
        uint32_t slot = (uint32_t)(m % slots);
        udp_fill(w, c, m, size);
        int64_t at = ek_now_ns();
        ssize_t k = send(c->fd, w->sbuf, size, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0 &&
            (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
            arm_out(w, c, true);
            return;
        }
        if (k < 0) { /* ECONNREFUSED: nothing listens there */
            conn_fail(w, c, FAIL_RESET, errno);
            return;
        }
        if (c->inflight[slot] != 0)
            udp_forget(w, c, slot, now); /* its slot came round: lost */
        if (c->in_flight == 0)
            c->waiting_since = now; /* an echo is owed from now on */
        c->inflight[slot] = m + 1;
        c->stamps[slot] = cfg->rate > 0 ? intended(w, c, m) : at;
        c->in_flight++;
        c->started++;
        c->sent += size;
    }
    if (c->fd >= 0)
        arm_out(w, c, false);
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

/* One datagram in w->rbuf (n bytes, its real length) arrived at now. */
static void udp_reply(struct worker *w, struct bconn *c, size_t n, int64_t now)
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
    uint32_t slot = (uint32_t)(m % udp_slots(b));
    bool measured = now >= b->t_measure && now < b->t_end;
    if (c->inflight[slot] != m + 1) { /* answered already, or given up */
        w->cur.duplicates += measured;
        return;
    }
    c->inflight[slot] = 0;
    c->in_flight--;
    if (ek_pattern_check(c->key, m * size + 8, w->rbuf + 8, size - 8) !=
        size - 8) {
        udp_mismatch(w, c, "the echo differs", m);
        return;
    }
    c->recvd += size;
    c->waiting_since = now;
    c->heard |= measured;
    bool reordered = m < c->highest;
    if (!reordered)
        c->highest = m;
    if (measured) {
        w->cur.reordered += reordered;
        ek_hist_add(&w->cur.latency, (uint64_t)(now - c->stamps[slot]));
        w->cur.msgs++;
        w->cur.bytes += size;
    }
    atomic_fetch_add_explicit(&w->live.msgs, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&w->live.bytes, size, memory_order_relaxed);
}

static void udp_recv(struct worker *w, struct bconn *c)
{
    for (;;) {
        ssize_t n;
        do
            n = recv(c->fd, w->rbuf, BENCH_BUF, MSG_DONTWAIT | EK_MSG_TRUNC);
        while (n < 0 && errno == EINTR);
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                conn_fail(w, c, FAIL_RESET, errno);
            break;
        }
        udp_reply(w, c, (size_t)n, ek_now_ns());
    }
    if (c->fd >= 0)
        udp_send(w, c, ek_now_ns());
}

/* Datagrams out for longer than EK_BENCH_UDP_LOSS_NS are lost; closed
 * loop sends the next ones in their place. */
static void udp_expire(struct worker *w, int64_t now)
{
    uint32_t slots = udp_slots(w->b);
    for (uint32_t i = 0; i < w->n; i++) {
        struct bconn *c = &w->conns[i];
        if (c->fd < 0 || c->in_flight == 0)
            continue;
        for (uint32_t s = 0; s < slots; s++)
            if (c->inflight[s] != 0 &&
                now - c->stamps[s] > EK_BENCH_UDP_LOSS_NS)
                udp_forget(w, c, s, now);
        udp_send(w, c, now);
    }
}

/* connect mode, open loop: starts every connection now due, each in a
 * free slot; with none free, what is due waits (and is charged for it). */
static void issue_due_connections(struct worker *w, int64_t now)
{
    for (;;) {
        int64_t due = w->b->t_start + (int64_t)w->next_j * w->interval_ns;
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

/* Open loop: hands every message now due to its connection. */
static void issue_due(struct worker *w, int64_t now)
{
    if (w->n == 0) /* never: a worker exists for a connection */
        return;
    if (connect_mode(w->b)) {
        issue_due_connections(w, now);
        return;
    }
    while (w->b->t_start + (int64_t)w->next_j * w->interval_ns <= now) {
        struct bconn *c = &w->conns[w->next_j % w->n];
        c->due = w->next_j / w->n + 1;
        w->next_j++;
        if (c->fd >= 0 && w->b->cfg.udp)
            udp_send(w, c, now);
        else if (c->fd >= 0)
            conn_send(w, c, now);
    }
}

/* A connection owed an echo that has heard nothing for the timeout. */
static void check_stalls(struct worker *w, int64_t now)
{
    const struct ek_bench *b = w->b;
    for (uint32_t i = 0; i < w->n; i++) {
        struct bconn *c = &w->conns[i];
        bool owed = c->phase != PH_RUNNING || c->sent > c->recvd;
        if (c->fd >= 0 && owed && now - c->waiting_since > b->cfg.timeout_ns)
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
static void publish(struct worker *w, bool final)
{
    struct ek_bench *b = w->b;
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

    while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
        now = ek_now_ns();
        if (now >= b->t_end)
            break;
        while (now >= w->k_end)
            publish(w, false);
        bool open_loop =
            (b->cfg.mode == EK_BENCH_RR || connect_mode(b)) && b->cfg.rate > 0;
        if (open_loop)
            issue_due(w, now);
        if (now >= w->next_check) {
            if (b->cfg.udp)
                udp_expire(w, now);
            else
                check_stalls(w, now);
            w->next_check = now + BENCH_TICK_NS;
        }
        int64_t until = b->t_end < w->next_check ? b->t_end : w->next_check;
        if (w->k_end < until)
            until = w->k_end;
        if (open_loop) {
            int64_t due = b->t_start + (int64_t)w->next_j * w->interval_ns;
            if (due < until)
                until = due;
        }
        int n = ek_poller_wait(w->poller, ev, BENCH_EVENTS,
                               until > now && !w->again ? until - now : 0);
        if (n < 0 && n != -EINTR) {
            set_error(w, "waiting for events: %s", strerror(-n));
            break;
        }
        now = ek_now_ns();
        for (int i = 0; i < n; i++) {
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
    if (b->cfg.mode != EK_BENCH_IDLE && !connect_mode(b))
        count_silent(w);
    publish(w, true);
    return NULL;
}

static int worker_init(struct ek_bench *b, struct worker *w)
{
    w->b = b;
    w->sbuf = malloc(BENCH_BUF);
    w->rbuf = malloc(BENCH_BUF);
    int err = ek_poller_open(&w->poller, w->n);
    if (err < 0)
        return err;
    if (w->sbuf == NULL || w->rbuf == NULL)
        return -ENOMEM;
    ek_bench_result_reset(&w->cur);
    if (b->cfg.rate > 0 && w->n > 0) {
        /* This worker's share of the rate: n of the conns. */
        double per_worker = (double)b->cfg.rate * w->n / b->made;
        w->interval_ns = (int64_t)(1e9 / per_worker);
        if (w->interval_ns < 1)
            w->interval_ns = 1;
    }
    for (uint32_t i = 0; i < w->n && err == 0; i++)
        if (w->conns[i].fd >= 0)
            err = ek_poller_add(w->poller, w->conns[i].fd, i, POLLIN);
    return err;
}

/* Connections being opened at once: enough to open thousands in a
 * fraction of a second, few enough not to flood a small listen backlog. */
#define CONNECT_BATCH 64

/* Opens every connection, CONNECT_BATCH at a time, all within
 * cfg->timeout_ns: a server whose backlog drops SYNs costs a bounded wait
 * and shows up as failed connections, not as a hang. */
static void connect_failed(struct ek_bench *b, int err)
{
    if (b->failed++ == 0)
        snprintf(b->connect_error, sizeof(b->connect_error), "%s",
                 err ? strerror(err) : "timed out");
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
        if (fd >= 0 && err < 0) {
            close(fd);
            fd = err;
        }
        if (fd < 0)
            connect_failed(b, -fd);
        else
            fds[b->made++] = fd;
    }
    return 0;
}

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
            if (fd < 0)
                connect_failed(b, -fd);
            else if (done)
                (*fds)[b->made++] = fd;
            else
                p[pending++] = (struct pollfd){.fd = fd, .events = POLLOUT};
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
            if (p[i].revents != 0 && err == 0) {
                (*fds)[b->made++] = fd;
            } else {
                close(fd); /* refused, or out of time */
                connect_failed(b, -err);
            }
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
    /* connect mode: the slots open their connections as they run. */
    int err = 0;
    if (connect_mode(b))
        b->made = cfg->conns;
    else
        err = connect_all(b, &fds);
    if (err < 0 || b->made == 0) {
        free(fds);
        ek_bench_free(b);
        return err < 0 ? err : -ECONNREFUSED;
    }
    err = -ENOMEM;
    b->nworkers = cfg->threads < b->made ? cfg->threads : b->made;
    b->workers = calloc(b->nworkers, sizeof(*b->workers));
    if (b->workers == NULL)
        goto fail;
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
    for (uint32_t i = 0; i < b->made; i++) {
        struct worker *w = &b->workers[i % b->nworkers];
        struct bconn *c = &w->conns[i / b->nworkers];
        c->key = i;
        c->slot = i / b->nworkers;
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
        if (cfg->udp) {
            c->stamps = calloc(udp_slots(b), sizeof(*c->stamps));
            c->inflight = calloc(udp_slots(b), sizeof(*c->inflight));
            if (c->stamps == NULL || c->inflight == NULL)
                goto fail;
        } else if ((cfg->mode == EK_BENCH_RR && cfg->rate == 0) ||
                   connect_mode(b)) {
            c->stamps = calloc(cfg->depth, sizeof(*c->stamps));
            if (c->stamps == NULL)
                goto fail;
        }
    }
    err = 0;
    for (uint32_t t = 0; t < b->nworkers && err == 0; t++)
        err = worker_init(b, &b->workers[t]);
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
        if (c->fd >= 0 && c->sent > c->recvd && !c->heard && window > 0 &&
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
            free(w->conns[i].inflight);
        }
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
