#include "ek_bench.h"
#include "ek_net.h"
#include "ek_pattern.h"
#include "ek_platform.h"
#include "ek_signal.h"
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

struct bconn {
    int fd;        /* -1 once failed */
    uint32_t key;  /* pattern stream: the connection's global index */
    uint32_t slot; /* index within its worker (open-loop schedule) */
    bool out_armed;
    bool heard;            /* received something in the measured window */
    uint64_t sent, recvd;  /* bytes */
    uint64_t started;      /* messages whose first byte went out */
    uint64_t due;          /* open loop: messages scheduled so far */
    int64_t waiting_since; /* since when an echo is owed without news */
    int64_t *stamps;       /* closed-loop rr: send times, `depth` entries */
    /* UDP: the datagrams in flight, slot m % udp_slots holding m + 1 (0:
     * free) and its send time in stamps. */
    uint64_t *inflight;
    uint32_t in_flight;
    uint64_t highest; /* the highest datagram number back so far */
};

struct worker {
    struct ek_bench *b;
    pthread_t tid;
    struct ek_poller *poller;
    struct bconn *conns;
    uint32_t n;
    unsigned char *sbuf, *rbuf;
    struct ek_bench_live live;
    /* the measured window */
    uint64_t msgs, bytes, mismatches, resets, closed, timeouts;
    uint64_t lost, reordered, duplicates;
    struct ek_hist hist;
    char first_error[256];
    /* open loop: message j of this worker is due at start + j * interval
     * and goes to connection j % n: round robin in time order, so the
     * whole schedule is one counter. */
    int64_t interval_ns;
    uint64_t next_j;
    int64_t next_check;
};

struct ek_bench {
    struct ek_bench_config cfg;
    struct worker *workers;
    uint32_t nworkers, made, failed;
    char connect_error[96]; /* why the first failed connection failed */
    int64_t t_start, t_measure, t_end;
    atomic_bool stop;
    bool running;
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

enum failure { FAIL_MISMATCH, FAIL_RESET, FAIL_CLOSED, FAIL_TIMEOUT };

/* A connection that failed is closed and counted; the run goes on with the
 * others, and the exit status will say it. */
static void conn_fail(struct worker *w, struct bconn *c, enum failure why,
                      int err)
{
    static const char *const what[] = {"the echo differs", "connection failed",
                                       "the server closed the connection",
                                       "no echo"};
    uint64_t *counter[] = {&w->mismatches, &w->resets, &w->closed,
                           &w->timeouts};
    (*counter[why])++;
    atomic_fetch_add_explicit(&w->live.errors, 1, memory_order_relaxed);
    if (why != FAIL_MISMATCH)
        set_error(w, "connection %u: %s after %llu of %llu bytes came back%s%s",
                  c->key, what[why], (unsigned long long)c->recvd,
                  (unsigned long long)c->sent, err ? ": " : "",
                  err ? strerror(err) : "");
    (void)ek_poller_remove(w->poller, c->fd, c->slot);
    close(c->fd);
    c->fd = -1;
}

static void arm_out(struct worker *w, struct bconn *c, bool on)
{
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
        ssize_t k = send(c->fd, w->sbuf, n, EK_MSG_NOSIGNAL);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            conn_fail(w, c, FAIL_RESET, errno);
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

static void conn_recv(struct worker *w, struct bconn *c)
{
    const struct ek_bench *b = w->b;
    ssize_t n;
    do
        n = recv(c->fd, w->rbuf, BENCH_BUF, 0);
    while (n < 0 && errno == EINTR);
    int64_t now = ek_now_ns(); /* when this echo arrived, exactly */
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            conn_fail(w, c, FAIL_RESET, errno);
        return;
    }
    if (n == 0) {
        conn_fail(w, c, FAIL_CLOSED, 0);
        return;
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
        return;
    }

    uint64_t size = b->cfg.size;
    uint64_t done_before = c->recvd / size;
    c->recvd += (uint64_t)n;
    c->waiting_since = now;
    uint64_t done = c->recvd / size;
    bool measured = now >= b->t_measure;
    c->heard |= measured;

    if (b->cfg.mode == EK_BENCH_RR && measured)
        for (uint64_t m = done_before; m < done; m++) {
            int64_t from = b->cfg.rate > 0 ? intended(w, c, m)
                                           : c->stamps[m % b->cfg.depth];
            ek_hist_add(&w->hist, (uint64_t)(now - from));
        }
    if (measured) {
        w->msgs += done - done_before;
        w->bytes += (uint64_t)n;
    }
    atomic_fetch_add_explicit(&w->live.msgs, done - done_before,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&w->live.bytes, (uint64_t)n,
                              memory_order_relaxed);
    conn_send(w, c, now);
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
        w->lost++;
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
    w->mismatches++;
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
    bool measured = now >= b->t_measure;
    if (c->inflight[slot] != m + 1) { /* answered already, or given up */
        w->duplicates += measured;
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
        w->reordered += reordered;
        ek_hist_add(&w->hist, (uint64_t)(now - c->stamps[slot]));
        w->msgs++;
        w->bytes += size;
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

/* Open loop: hands every message now due to its connection. */
static void issue_due(struct worker *w, int64_t now)
{
    if (w->n == 0) /* never: a worker exists for a connection */
        return;
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
    for (uint32_t i = 0; i < w->n; i++) {
        struct bconn *c = &w->conns[i];
        if (c->fd >= 0 && c->sent > c->recvd &&
            now - c->waiting_since > w->b->cfg.timeout_ns)
            conn_fail(w, c, FAIL_TIMEOUT, 0);
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct ek_bench *b = w->b;
    struct ek_poller_event ev[BENCH_EVENTS];

    /* Timer slack (50 us by default) would blur an open-loop schedule. */
    ek_timer_slack_min();
    int64_t now = ek_now_ns();
    for (uint32_t i = 0; i < w->n; i++) {
        w->conns[i].waiting_since = now;
        if (b->cfg.udp && b->cfg.rate == 0)
            udp_send(w, &w->conns[i], now);
        else if (b->cfg.rate == 0 || b->cfg.mode != EK_BENCH_RR)
            conn_send(w, &w->conns[i], now);
    }
    w->next_check = now + BENCH_TICK_NS;

    while (!atomic_load_explicit(&b->stop, memory_order_relaxed)) {
        now = ek_now_ns();
        if (now >= b->t_end)
            break;
        bool open_loop = b->cfg.mode == EK_BENCH_RR && b->cfg.rate > 0;
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
        if (open_loop) {
            int64_t due = b->t_start + (int64_t)w->next_j * w->interval_ns;
            if (due < until)
                until = due;
        }
        int n = ek_poller_wait(w->poller, ev, BENCH_EVENTS,
                               until > now ? until - now : 0);
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
            if (c->fd >= 0 && (e & (POLLOUT | POLLERR)))
                conn_send(w, c, now);
            if (c->fd >= 0 && (e & (POLLIN | POLLERR | POLLHUP)))
                conn_recv(w, c);
        }
    }
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
    ek_hist_reset(&w->hist);
    if (b->cfg.rate > 0 && w->n > 0) {
        /* This worker's share of the rate: n of the conns. */
        double per_worker = (double)b->cfg.rate * w->n / b->made;
        w->interval_ns = (int64_t)(1e9 / per_worker);
        if (w->interval_ns < 1)
            w->interval_ns = 1;
    }
    for (uint32_t i = 0; i < w->n && err == 0; i++)
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
        int fd = ek_socket(cfg->target.ss.ss_family, SOCK_DGRAM,
                           O_NONBLOCK | O_CLOEXEC);
        if (fd >= 0 && connect(fd, (const struct sockaddr *)&cfg->target.ss,
                               cfg->target.len) < 0) {
            int err = -errno;
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
            int fd = ek_net_connect_start(&cfg->target, &done);
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
    int err = connect_all(b, &fds);
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
        for (uint32_t i = 0; i < w->n; i++)
            w->conns[i].fd = -1;
    }
    /* Connection i goes to worker i % nworkers, as its slot i / nworkers. */
    for (uint32_t i = 0; i < b->made; i++) {
        struct worker *w = &b->workers[i % b->nworkers];
        struct bconn *c = &w->conns[i / b->nworkers];
        c->fd = fds[i];
        c->key = i;
        c->slot = i / b->nworkers;
        fds[i] = -1;
        if (cfg->udp) {
            c->stamps = calloc(udp_slots(b), sizeof(*c->stamps));
            c->inflight = calloc(udp_slots(b), sizeof(*c->inflight));
            if (c->stamps == NULL || c->inflight == NULL)
                goto fail;
        } else if (cfg->mode == EK_BENCH_RR && cfg->rate == 0) {
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

void ek_bench_finish(struct ek_bench *b, struct ek_bench_result *r)
{
    memset(r, 0, sizeof(*r));
    ek_hist_reset(&r->latency);
    r->conns_made = b->made;
    r->conns_failed = b->failed;
    for (uint32_t t = 0; t < b->nworkers; t++) {
        struct worker *w = &b->workers[t];
        if (b->running)
            pthread_join(w->tid, NULL);
        if (b->cfg.mode != EK_BENCH_IDLE)
            count_silent(w);
        r->msgs += w->msgs;
        r->bytes += w->bytes;
        r->mismatches += w->mismatches;
        r->resets += w->resets;
        r->closed += w->closed;
        r->timeouts += w->timeouts;
        r->lost += w->lost;
        r->reordered += w->reordered;
        r->duplicates += w->duplicates;
        ek_hist_merge(&r->latency, &w->hist);
        if (r->first_error[0] == '\0' && w->first_error[0] != '\0')
            memcpy(r->first_error, w->first_error, sizeof(r->first_error));
    }
    if (r->first_error[0] == '\0' && b->failed > 0)
        snprintf(r->first_error, sizeof(r->first_error),
                 "%u of %u connections could not be made; the first: %s",
                 b->failed, b->cfg.conns, b->connect_error);
    b->running = false;
}

void ek_bench_free(struct ek_bench *b)
{
    if (b == NULL)
        return;
    for (uint32_t t = 0; b->workers != NULL && t < b->nworkers; t++) {
        struct worker *w = &b->workers[t];
        for (uint32_t i = 0; w->conns != NULL && i < w->n; i++) {
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
    free(b);
}
