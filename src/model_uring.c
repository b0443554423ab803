/*
 * model_uring: --io uring, completion-based, on io_uring (liburing).
 *
 * Nothing here asks "is this socket ready?". Each listener has one
 * multishot accept; each connection has one multishot receive that takes
 * its buffers from a ring of provided buffers, so an idle connection holds
 * no receive buffer at all. The echo of what arrives is sent straight from
 * the provided buffer, which returns to the ring when the send completes.
 * At most one send is in flight per connection: what arrives meanwhile is
 * copied into the connection's queue (ek_queue.h) and sent, in order, when
 * the send completes; a short send is resubmitted for the rest. When the
 * queue reaches --max-queue the receive is cancelled (backpressure), and
 * re-armed once it drains.
 *
 * One io_uring_submit_and_wait per turn submits everything the previous
 * turn prepared and reaps every completion that is ready: that is the
 * batching. The ring is single-issuer with deferred task work (Linux 6.1+;
 * without those flags where the kernel refuses them), so completions are
 * processed when the loop asks, not in interrupts of its work.
 *
 * A connection is closed only when no request on it is in flight: until
 * then its fd stays open and cannot be reused, so a late completion can
 * never be taken for another connection's.
 */
#include "ek_conn.h"
#include "ek_group.h"
#include "ek_model.h"
#include "ek_net.h"
#include "ek_proxy.h"
#include "ek_server.h"
#include "ek_util.h"

#include <errno.h>
#include <liburing.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#define URING_SQ_ENTRIES 1024
#define URING_CQ_ENTRIES 16384
/* Provided receive buffers, shared by all connections of a loop: 64 x 64
 * KiB of address space, of which only what receives touch is resident
 * (about 134 B per connection at 5000 idle connections that each echoed
 * once). Measured (bench/PERFORMANCE.md): 16 KiB buffers cost bulk echo
 * 0.65 s of server CPU per GiB against 0.52; 32 buffers starved 1000
 * connections of 4 KiB messages until the re-arming went round robin, and
 * 64 leave headroom. A buffer is held only between a receive and the end
 * of the send that echoes it. */
#define URING_BUFS 64 /* a power of two */
#define URING_BUF_SIZE ((size_t)64 * 1024)
#define URING_BGID 0
/* After a stop, how long outstanding requests may take to complete. */
#define URING_CLOSE_GRACE_MS 1000

enum uop { U_ACCEPT = 1, U_RECV, U_SEND, U_WAKE, U_CANCEL, U_UDP };

static uint64_t udata(enum uop op, unsigned index)
{
    return (uint64_t)op | ((uint64_t)index << 8);
}

enum {
    UC_OPEN = 1,        /* the slot is a connection */
    UC_RECV_ARMED = 2,  /* a multishot receive is in flight */
    UC_SEND = 4,        /* a send is in flight */
    UC_PEER_CLOSED = 8, /* the client sent FIN */
    UC_PAUSED = 16,     /* receive cancelled: the queue is full */
    UC_STARVED = 32,    /* receive ended: no provided buffer was free */
    UC_CLOSING = 64,    /* waiting for in-flight requests, then close */
    UC_PROXY = 128,     /* its PROXY header is still being read */
};

/* A connection, indexed by fd. */
struct uconn {
    struct ek_queue queue; /* arrived while a send was in flight */
    uint32_t send_len;     /* bytes of the send in flight */
    uint32_t send_done;    /* of them, already sent (short sends) */
    int16_t send_bid;      /* provided buffer being sent; -1: the queue */
    uint8_t state;         /* UC_* */
    int err;               /* why it closes (-errno), 0 for a clean end */
    uint32_t active_tick;  /* the loop's idle clock when bytes last moved */
};

struct uloop {
    struct ek_group *group;
    struct ek_server *srv;
    unsigned index;
    struct io_uring ring;
    bool ring_ok, ring_disabled, wake_armed;
    struct io_uring_buf_ring *br;
    char *bufs;                     /* URING_BUFS x URING_BUF_SIZE */
    unsigned bufs_free;             /* provided buffers the kernel may fill */
    struct uconn *conns;            /* by fd */
    struct ek_proxy_parser **proxy; /* by fd, --proxy-protocol only */
    size_t nslots, nconns;
    size_t nstarved;      /* connections with UC_STARVED */
    size_t starve_cursor; /* where feed_starved looks next */
    int *listeners;
    bool *accept_armed;
    size_t nlisteners;
    bool own_listeners, listeners_closed, accepting;
    int *udp_fds;                  /* UDP sockets this loop serves */
    struct ek_sockaddr *udp_local; /* their addresses */
    size_t nudp;
    bool udp_armed;    /* their polls were submitted (first turn) */
    size_t udp_polls;  /* polls in flight */
    bool closing;      /* uloop_free: arm nothing more */
    struct ek_udp udp; /* buffers and rate state, when nudp > 0 */
    struct ek_acceptor *acc;
    struct ek_idle_clock idle;
    struct ek_counters *counters; /* this loop's, in the shared stats */
    size_t max_queue;
};

/* ---- the kernel: probe once ------------------------------------------ */

static char probe_reason[200];

static const char *probe_ring(struct io_uring *ring)
{
    struct io_uring_probe *p = io_uring_get_probe_ring(ring);
    static const int needed[] = {IORING_OP_ACCEPT, IORING_OP_RECV,
                                 IORING_OP_SEND, IORING_OP_POLL_ADD,
                                 IORING_OP_ASYNC_CANCEL};
    const char *why = NULL;
    if (p == NULL)
        return "the kernel cannot say which io_uring operations it has";
    for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++)
        if (!io_uring_opcode_supported(p, needed[i]))
            why = "the kernel lacks io_uring accept, recv, send, poll or "
                  "cancel";
    io_uring_free_probe(p);
    return why;
}

/* Registers a ring of n provided buffers of size bytes at base. */
static struct io_uring_buf_ring *buf_ring_new(struct io_uring *ring, char *base,
                                              unsigned n, unsigned size,
                                              int *err)
{
    size_t len = n * sizeof(struct io_uring_buf);
    void *mem = mmap(NULL, len, PROT_READ | PROT_WRITE,
                     MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (mem == MAP_FAILED) {
        *err = -errno;
        return NULL;
    }
    struct io_uring_buf_ring *br = mem;
    struct io_uring_buf_reg reg = {
        .ring_addr = (unsigned long)mem, .ring_entries = n, .bgid = URING_BGID};
    *err = io_uring_register_buf_ring(ring, &reg, 0);
    if (*err < 0) {
        munmap(mem, len);
        return NULL;
    }
    io_uring_buf_ring_init(br);
    for (unsigned i = 0; i < n; i++)
        io_uring_buf_ring_add(br, base + (size_t)i * size, size,
                              (unsigned short)i, io_uring_buf_ring_mask(n),
                              (int)i);
    io_uring_buf_ring_advance(br, (int)n);
    return br;
}

static void buf_ring_free(struct io_uring *ring, struct io_uring_buf_ring *br,
                          unsigned n)
{
    io_uring_unregister_buf_ring(ring, URING_BGID);
    munmap(br, n * sizeof(struct io_uring_buf));
}

/* The whole path this model relies on, tried on a socket pair: a
 * multishot receive into a provided buffer ring (Linux 6.0). */
static const char *probe_multishot(struct io_uring *ring)
{
    static char buf[4096];
    int sv[2], err;
    const char *why = NULL;
    struct io_uring_buf_ring *br = buf_ring_new(ring, buf, 1, 4096, &err);
    if (br == NULL) {
        snprintf(probe_reason, sizeof(probe_reason),
                 "the kernel has no provided buffer rings (Linux 5.19+ "
                 "needed): %s",
                 strerror(-err));
        return probe_reason;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        buf_ring_free(ring, br, 1);
        return "cannot create a socket pair to probe io_uring";
    }
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = URING_BGID;
    (void)!write(sv[1], "x", 1);
    struct io_uring_cqe *cqe;
    struct __kernel_timespec ts = {.tv_sec = 1};
    int rc = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
    if (rc < 0 || cqe->res != 1 || !(cqe->flags & IORING_CQE_F_MORE)) {
        snprintf(probe_reason, sizeof(probe_reason),
                 "the kernel has no multishot receive (Linux 6.0+ needed): "
                 "%s",
                 strerror(rc < 0         ? -rc
                          : cqe->res < 0 ? -cqe->res
                                         : EINVAL));
        why = probe_reason;
    }
    close(sv[0]);
    close(sv[1]);
    buf_ring_free(ring, br, 1);
    return why;
}

static const char *probe(void)
{
    struct io_uring ring;
    int rc = io_uring_queue_init(8, &ring, 0);
    if (rc < 0) {
        snprintf(probe_reason, sizeof(probe_reason),
                 "io_uring is not usable here: io_uring_setup: %s%s",
                 strerror(-rc),
                 rc == -EPERM || rc == -EACCES
                     ? " (kernel.io_uring_disabled, or a seccomp profile)"
                 : rc == -ENOSYS ? " (a kernel without io_uring)"
                                 : "");
        return probe_reason;
    }
    const char *why = probe_ring(&ring);
    if (why == NULL)
        why = probe_multishot(&ring);
    io_uring_queue_exit(&ring);
    return why;
}

const char *ek_uring_unavailable(void)
{
    static bool probed;
    static const char *why;
    if (!probed) {
        why = probe();
        probed = true;
    }
    return why;
}

/* ---- submissions ------------------------------------------------------ */

/* An SQE, flushing the submission queue first if it is full. */
static struct io_uring_sqe *get_sqe(struct uloop *lp)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&lp->ring);
    if (sqe == NULL) {
        io_uring_submit(&lp->ring);
        sqe = io_uring_get_sqe(&lp->ring);
    }
    return sqe;
}

static void arm_accept(struct uloop *lp, size_t i)
{
    struct io_uring_sqe *sqe = get_sqe(lp);
    if (sqe == NULL)
        return; /* retried next turn */
    io_uring_prep_multishot_accept(sqe, lp->listeners[i], NULL, NULL,
                                   SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, udata(U_ACCEPT, (unsigned)i));
    lp->accept_armed[i] = true;
}

static void set_starved(struct uloop *lp, struct uconn *c, bool on)
{
    if (on == !!(c->state & UC_STARVED))
        return;
    if (on) {
        c->state |= UC_STARVED;
        lp->nstarved++;
    } else {
        c->state &= (uint8_t)~UC_STARVED;
        lp->nstarved--;
    }
}

static void arm_recv(struct uloop *lp, int fd)
{
    struct uconn *c = &lp->conns[fd];
    struct io_uring_sqe *sqe = get_sqe(lp);
    if (sqe == NULL) {
        set_starved(lp, c, true); /* retried with the starved ones */
        return;
    }
    io_uring_prep_recv_multishot(sqe, fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = URING_BGID;
    io_uring_sqe_set_data64(sqe, udata(U_RECV, (unsigned)fd));
    c->state |= UC_RECV_ARMED;
    set_starved(lp, c, false);
}

static void cancel(struct uloop *lp, uint64_t target)
{
    struct io_uring_sqe *sqe = get_sqe(lp);
    if (sqe == NULL)
        return;
    io_uring_prep_cancel64(sqe, target, 0);
    io_uring_sqe_set_data64(sqe, udata(U_CANCEL, 0));
}

static void arm_wake(struct uloop *lp)
{
    struct io_uring_sqe *sqe = get_sqe(lp);
    if (sqe == NULL)
        return;
    io_uring_prep_poll_multishot(sqe, ek_group_wake_fd(lp->group, lp->index),
                                 POLLIN);
    io_uring_sqe_set_data64(sqe, udata(U_WAKE, 0));
}

/* UDP: a one-shot poll per socket, armed again after each batch. One shot
 * is level-triggered (a poll armed on a socket with datagrams waiting
 * completes at once), so datagrams left after a batch are never stranded,
 * and each socket gets one batch per turn like everything else. */
static void arm_udp(struct uloop *lp, size_t i)
{
    struct io_uring_sqe *sqe = get_sqe(lp);
    if (sqe == NULL) {
        ek_log(EK_LOG_ERROR,
               "uring: submission queue full; udp fd %d no "
               "longer served",
               lp->udp_fds[i]);
        return;
    }
    io_uring_prep_poll_add(sqe, lp->udp_fds[i], POLLIN);
    io_uring_sqe_set_data64(sqe, udata(U_UDP, (unsigned)i));
    lp->udp_polls++;
}

static void on_udp(struct uloop *lp, size_t i, const struct io_uring_cqe *cqe)
{
    lp->udp_polls--;
    if (cqe->res == -ECANCELED || lp->closing || i >= lp->nudp)
        return;
    int rc = ek_udp_service(&lp->udp, lp->udp_fds[i], &lp->udp_local[i]);
    if (rc < 0)
        ek_log(EK_LOG_ERROR, "udp fd %d: %s", lp->udp_fds[i], strerror(-rc));
    arm_udp(lp, i);
}

static char *buf_of(struct uloop *lp, int bid)
{
    return lp->bufs + (size_t)bid * URING_BUF_SIZE;
}

static void recycle(struct uloop *lp, int bid)
{
    io_uring_buf_ring_add(lp->br, buf_of(lp, bid), URING_BUF_SIZE,
                          (unsigned short)bid,
                          io_uring_buf_ring_mask(URING_BUFS), 0);
    io_uring_buf_ring_advance(lp->br, 1);
    lp->bufs_free++;
}

static void conn_close(struct uloop *lp, int fd, int err);

/* Sends c's current piece (send_len bytes from data), from send_done on. */
static void submit_send(struct uloop *lp, int fd, const char *data)
{
    struct uconn *c = &lp->conns[fd];
    struct io_uring_sqe *sqe = get_sqe(lp);
    if (sqe == NULL) { /* a full queue even after a submit: give up */
        if (c->send_bid >= 0)
            recycle(lp, c->send_bid);
        c->send_bid = -1;
        conn_close(lp, fd, -EBUSY);
        return;
    }
    io_uring_prep_send(sqe, fd, data + c->send_done, c->send_len - c->send_done,
                       MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, udata(U_SEND, (unsigned)fd));
    c->state |= UC_SEND;
}

/* Sends the oldest queued piece (a chunk of the queue). */
static void send_from_queue(struct uloop *lp, int fd)
{
    struct uconn *c = &lp->conns[fd];
    struct iovec iov;
    ek_queue_peek(&c->queue, &iov, 1);
    c->send_bid = -1;
    c->send_len = (uint32_t)iov.iov_len;
    c->send_done = 0;
    submit_send(lp, fd, iov.iov_base);
}

/* ---- connections ------------------------------------------------------ */

static struct uconn *slot_get(struct uloop *lp, int fd)
{
    if ((size_t)fd >= lp->nslots) {
        size_t n = lp->nslots ? lp->nslots : 64;
        while (n <= (size_t)fd)
            n *= 2;
        if (lp->srv->cfg->proxy_protocol) { /* a parser slot per fd too */
            struct ek_proxy_parser **more =
                realloc(lp->proxy, n * sizeof(struct ek_proxy_parser *));
            if (more == NULL)
                return NULL;
            memset(more + lp->nslots, 0,
                   (n - lp->nslots) * sizeof(struct ek_proxy_parser *));
            lp->proxy = more;
        }
        struct uconn *grown = realloc(lp->conns, n * sizeof(*grown));
        if (grown == NULL)
            return NULL; /* the parser table may be larger: harmless */
        memset(grown + lp->nslots, 0, (n - lp->nslots) * sizeof(*grown));
        lp->conns = grown;
        lp->nslots = n;
    }
    return &lp->conns[fd];
}

/* Closes c once nothing is in flight on it. */
static void maybe_finish(struct uloop *lp, int fd)
{
    struct uconn *c = &lp->conns[fd];
    if (!(c->state & UC_CLOSING) || (c->state & (UC_RECV_ARMED | UC_SEND)))
        return;
    set_starved(lp, c, false);
    ek_queue_clear(&c->queue);
    if (c->state & UC_PROXY) { /* closed before its header ended */
        free(lp->proxy[fd]);
        lp->proxy[fd] = NULL;
    }
    int err = c->err;
    memset(c, 0, sizeof(*c));
    close(fd);
    lp->nconns--;
    ek_server_conn_done(lp->srv, err);
    ek_accept_resume(lp->acc); /* an fd is free again */
}

static void conn_close(struct uloop *lp, int fd, int err)
{
    struct uconn *c = &lp->conns[fd];
    if (c->state & UC_CLOSING)
        return;
    c->state |= UC_CLOSING;
    if (c->err == 0)
        c->err = err;
    /* Requests in flight end when the socket shuts down: the receive
     * completes with 0, a send with an error. */
    if (c->state & (UC_RECV_ARMED | UC_SEND))
        shutdown(fd, SHUT_RDWR);
    if (c->state & UC_RECV_ARMED)
        cancel(lp, udata(U_RECV, (unsigned)fd));
    maybe_finish(lp, fd);
}

static void conn_open(struct uloop *lp, int fd)
{
    struct uconn *c = slot_get(lp, fd);
    if (c == NULL) {
        close(fd);
        ek_server_conn_done(lp->srv, -ENOMEM);
        return;
    }
    memset(c, 0, sizeof(*c));
    c->state = UC_OPEN;
    c->active_tick = lp->idle.now;
    if (lp->srv->cfg->proxy_protocol) {
        lp->proxy[fd] = calloc(1, sizeof(struct ek_proxy_parser));
        if (lp->proxy[fd] == NULL) {
            memset(c, 0, sizeof(*c));
            close(fd);
            ek_server_conn_done(lp->srv, -ENOMEM);
            return;
        }
        c->state |= UC_PROXY;
    }
    lp->nconns++;
    arm_recv(lp, fd);
}

/* Receives again once the queue has room and the cancelled receive has
 * ended. Both orders happen: the last send that drains the queue may
 * complete before or after the cancel; whichever comes second unpauses. */
static void maybe_unpause(struct uloop *lp, int fd)
{
    struct uconn *c = &lp->conns[fd];
    if ((c->state & UC_PAUSED) && ek_queue_len(&c->queue) < lp->max_queue &&
        !(c->state & (UC_RECV_ARMED | UC_CLOSING))) {
        c->state &= (uint8_t)~UC_PAUSED;
        arm_recv(lp, fd);
    }
}

/* The queue is full: stop receiving until it drains. */
static void pause_recv(struct uloop *lp, int fd)
{
    struct uconn *c = &lp->conns[fd];
    ek_count(&lp->counters->queue_full, 1);
    c->state |= UC_PAUSED;
    set_starved(lp, c, false); /* the unpause re-arms, not the feeder */
    if (c->state & UC_RECV_ARMED)
        cancel(lp, udata(U_RECV, (unsigned)fd));
}

/* --proxy-protocol: feeds a received buffer to the header parser. Returns
 * true when data follows the header in this buffer (*skip: the header's
 * bytes in it), to be echoed as usual; false when the buffer was all
 * header (recycled) or the connection is refused (closing). */
static bool proxy_received(struct uloop *lp, int fd, int bid,
                           const struct io_uring_cqe *cqe, uint32_t *skip)
{
    struct uconn *c = &lp->conns[fd];
    struct ek_proxy_result res;
    const char *why = "";
    size_t used;
    int rc = ek_proxy_feed(lp->proxy[fd], buf_of(lp, bid), (size_t)cqe->res,
                           &used, &res, &why);
    if (rc == EK_PROXY_MORE) {
        recycle(lp, bid);
        return false;
    }
    free(lp->proxy[fd]);
    lp->proxy[fd] = NULL;
    c->state &= (uint8_t)~UC_PROXY;
    c->active_tick = lp->idle.now;
    bool ok = rc == EK_PROXY_DONE;
    if (!ok)
        ek_server_proxy_failed(lp->srv, lp->acc, fd, why);
    else
        ok = ek_server_proxy_admit(lp->srv, lp->acc, fd, &res);
    if (!ok || used == (size_t)cqe->res) {
        recycle(lp, bid);
        if (!ok)
            conn_close(lp, fd, 0);
        return false;
    }
    *skip = (uint32_t)used;
    return true;
}

static void on_recv(struct uloop *lp, int fd, const struct io_uring_cqe *cqe)
{
    struct uconn *c = &lp->conns[fd];
    int bid = (cqe->flags & IORING_CQE_F_BUFFER)
                  ? (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT)
                  : -1;
    if (!(cqe->flags & IORING_CQE_F_MORE))
        c->state &= (uint8_t)~UC_RECV_ARMED;
    if (bid >= 0)
        lp->bufs_free--; /* the kernel picked it: ours until recycled */
    if (bid >= 0 && cqe->res <= 0) {
        /* A completion can carry a buffer and no data (the end of the
         * stream seen after a buffer was picked): give it back, or the
         * ring drains one buffer at a time until every receive starves. */
        recycle(lp, bid);
        bid = -1;
    }

    uint32_t skip = 0;     /* PROXY header bytes at the start of the buffer */
    bool consumed = false; /* by the header (or refused with it) */
    if (cqe->res > 0 && bid >= 0 && (c->state & UC_PROXY) &&
        !(c->state & UC_CLOSING))
        consumed = !proxy_received(lp, fd, bid, cqe, &skip);

    if (consumed) {
        /* nothing to echo from this buffer */
    } else if (cqe->res > 0 && bid < 0) {
        conn_close(lp, fd, -EPROTO); /* data without a buffer: cannot be */
    } else if (cqe->res > 0) {
        uint32_t len = (uint32_t)cqe->res - skip;
        ek_count(&lp->counters->bytes_in, len);
        c->active_tick = lp->idle.now;
        if (c->state & UC_CLOSING) {
            recycle(lp, bid);
        } else if (!(c->state & UC_SEND) && ek_queue_len(&c->queue) == 0) {
            c->send_bid = (int16_t)bid; /* echo straight from the ring */
            c->send_len = (uint32_t)cqe->res;
            c->send_done = skip;
            submit_send(lp, fd, buf_of(lp, bid));
        } else {
            int err = ek_queue_append(&c->queue, buf_of(lp, bid) + skip, len);
            recycle(lp, bid);
            if (err < 0)
                conn_close(lp, fd, err);
            else if (ek_queue_len(&c->queue) >= lp->max_queue)
                pause_recv(lp, fd);
        }
    } else if (cqe->res == 0) {
        c->state |= UC_PEER_CLOSED;
        if (!(c->state & UC_SEND) && ek_queue_len(&c->queue) == 0)
            conn_close(lp, fd, 0);
    } else if (cqe->res == -ENOBUFS) {
        set_starved(lp, c, true); /* re-armed when buffers come back */
    } else if (cqe->res != -ECANCELED) {
        conn_close(lp, fd, cqe->res);
    }
    /* The queue may have drained while the cancelled receive was still
     * completing: the send that drained it could not unpause then. */
    maybe_unpause(lp, fd);
    /* A multishot receive may end on its own (buffers ran out mid-way, a
     * cancel that raced with an unpause): start another unless something
     * holds it back. */
    if ((c->state & UC_OPEN) &&
        !(c->state & (UC_RECV_ARMED | UC_CLOSING | UC_PAUSED | UC_PEER_CLOSED |
                      UC_STARVED)))
        arm_recv(lp, fd);
    maybe_finish(lp, fd);
}

static void on_send(struct uloop *lp, int fd, const struct io_uring_cqe *cqe)
{
    struct uconn *c = &lp->conns[fd];
    c->state &= (uint8_t)~UC_SEND;
    if (cqe->res < 0) {
        if (c->send_bid >= 0)
            recycle(lp, c->send_bid);
        c->send_bid = -1;
        conn_close(lp, fd, cqe->res);
        maybe_finish(lp, fd);
        return;
    }
    ek_count(&lp->counters->bytes_out, (uint64_t)cqe->res);
    c->active_tick = lp->idle.now;
    c->send_done += (uint32_t)cqe->res;
    const char *src = c->send_bid >= 0 ? buf_of(lp, c->send_bid) : NULL;
    if (c->send_done < c->send_len && !(c->state & UC_CLOSING)) {
        if (src == NULL) { /* the queue's first chunk, still in place */
            struct iovec iov;
            ek_queue_peek(&c->queue, &iov, 1);
            src = iov.iov_base;
        }
        submit_send(lp, fd, src); /* short send: the rest */
        return;
    }
    if (c->send_bid >= 0)
        recycle(lp, c->send_bid);
    else
        ek_queue_consume(&c->queue, c->send_len);
    c->send_bid = -1;
    if (c->state & UC_CLOSING) {
        maybe_finish(lp, fd);
        return;
    }
    if (ek_queue_len(&c->queue) > 0)
        send_from_queue(lp, fd);
    else if (c->state & UC_PEER_CLOSED)
        conn_close(lp, fd, 0);
    maybe_unpause(lp, fd);
}

/* ---- accepting -------------------------------------------------------- */

static void on_accept(struct uloop *lp, size_t i,
                      const struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE))
        lp->accept_armed[i] = false;
    if (cqe->res >= 0) {
        int fd = cqe->res;
        if (!lp->accepting)
            close(fd); /* the drain began after the kernel accepted it */
        else if (ek_server_admit(lp->srv, lp->acc, fd))
            conn_open(lp, fd);
        return;
    }
    if (cqe->res == -ECANCELED)
        return;
    if (ek_server_accept_failed(lp->srv, lp->acc, cqe->res) &&
        lp->accept_armed[i]) {
        cancel(lp, udata(U_ACCEPT, (unsigned)i)); /* re-armed after pause */
    }
}

/* Keeps one multishot accept per listener while accepting and not paused. */
static void keep_accepting(struct uloop *lp)
{
    if (!lp->accepting || ek_accept_paused(lp->acc))
        return;
    for (size_t i = 0; i < lp->nlisteners; i++)
        if (!lp->accept_armed[i])
            arm_accept(lp, i);
}

/* Re-arms receives that ended for want of buffers, as many as there are
 * free buffers, taking the starved connections round robin from where the
 * last pass stopped: re-arming all of them would only earn ENOBUFS again,
 * and always starting at fd 0 would starve the high ones. */
static void feed_starved(struct uloop *lp)
{
    unsigned budget = lp->bufs_free;
    for (size_t k = 0; k < lp->nslots && lp->nstarved > 0 && budget > 0; k++) {
        size_t fd = (lp->starve_cursor + k) % lp->nslots;
        struct uconn *c = &lp->conns[fd];
        if ((c->state & UC_STARVED) && !(c->state & (UC_CLOSING | UC_PAUSED))) {
            arm_recv(lp, (int)fd);
            budget--;
            lp->starve_cursor = fd + 1;
        }
    }
}

/* ---- the loop --------------------------------------------------------- */

static void on_cqe(struct uloop *lp, const struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    unsigned index = (unsigned)(ud >> 8);
    switch ((enum uop)(ud & 0xff)) {
    case U_ACCEPT:
        on_accept(lp, index, cqe);
        break;
    case U_RECV:
        on_recv(lp, (int)index, cqe);
        break;
    case U_SEND:
        on_send(lp, (int)index, cqe);
        break;
    case U_WAKE:
        ek_group_woken(lp->group, lp->index);
        if (!(cqe->flags & IORING_CQE_F_MORE))
            arm_wake(lp);
        break;
    case U_UDP:
        on_udp(lp, index, cqe);
        break;
    case U_CANCEL:
        break;
    }
}

/* Makes the ring and its buffers, at start (so that running out of
 * descriptors later cannot cost a loop its ring). A single-issuer ring
 * belongs to the task that enables it: a loop on another thread gets its
 * ring disabled here and enables it on its first turn. */
static int setup_ring(struct uloop *lp, bool disabled)
{
    unsigned base =
        IORING_SETUP_CQSIZE | (disabled ? IORING_SETUP_R_DISABLED : 0);
    struct io_uring_params p = {
        .flags = base | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER |
                 IORING_SETUP_DEFER_TASKRUN,
        .cq_entries = URING_CQ_ENTRIES,
    };
    int rc = io_uring_queue_init_params(URING_SQ_ENTRIES, &lp->ring, &p);
    if (rc == -EINVAL) { /* before Linux 6.1: plain completions */
        memset(&p, 0, sizeof(p));
        p.flags = base;
        p.cq_entries = URING_CQ_ENTRIES;
        rc = io_uring_queue_init_params(URING_SQ_ENTRIES, &lp->ring, &p);
    }
    if (rc < 0)
        return rc;
    lp->ring_ok = true;
    lp->ring_disabled = disabled;
    lp->bufs = aligned_alloc(4096, (size_t)URING_BUFS * URING_BUF_SIZE);
    if (lp->bufs == NULL)
        return -ENOMEM;
    lp->br = buf_ring_new(&lp->ring, lp->bufs, URING_BUFS, URING_BUF_SIZE, &rc);
    lp->bufs_free = URING_BUFS;
    return lp->br == NULL ? rc : 0;
}

/* --idle-timeout: closes the connections on which nothing moved. */
static void sweep_idle(struct uloop *lp)
{
    for (size_t fd = 0; fd < lp->nslots; fd++) {
        struct uconn *c = &lp->conns[fd];
        if ((c->state & UC_OPEN) && !(c->state & UC_CLOSING) &&
            ek_idle_sweep_closes(lp->srv, lp->acc, &lp->idle, (int)fd,
                                 c->active_tick, c->state & UC_PROXY))
            conn_close(lp, (int)fd, 0);
    }
}

static int uloop_turn(void *arg, int timeout_ms)
{
    struct uloop *lp = arg;
    if (lp->ring_disabled) { /* first turn, on this loop's own thread */
        /* IORING_REGISTER_ENABLE_RINGS: liburing 2.3 declares
         * io_uring_enable_rings but does not export it. */
        int err = io_uring_register((unsigned)lp->ring.ring_fd,
                                    IORING_REGISTER_ENABLE_RINGS, NULL, 0);
        if (err < 0)
            return err;
        lp->ring_disabled = false;
    }
    if (!lp->wake_armed) {
        arm_wake(lp);
        lp->wake_armed = true;
    }
    if (!lp->udp_armed) {
        for (size_t i = 0; i < lp->nudp; i++)
            arm_udp(lp, i);
        lp->udp_armed = true;
    }
    keep_accepting(lp);
    feed_starved(lp);

    timeout_ms = ek_timeout_min(timeout_ms, ek_accept_timeout(lp->acc));
    timeout_ms = ek_timeout_min(timeout_ms, ek_idle_timeout(&lp->idle));
#ifdef EK_TSAN
    /* ThreadSanitizer runs a signal handler only at the next libc call it
     * intercepts, and liburing enters the kernel without libc: a signal
     * that arrives while this loop computes would wait for the next
     * completion. In such builds only, wait at most 100 ms and make an
     * intercepted call each turn, so the handler gets to write its byte. */
    timeout_ms = ek_timeout_min(timeout_ms, 100);
    (void)poll(NULL, 0, 0);
#endif
    struct __kernel_timespec ts = {.tv_sec = timeout_ms / 1000,
                                   .tv_nsec = (timeout_ms % 1000) * 1000000L};
    struct io_uring_cqe *cqe;
    int rc = io_uring_submit_and_wait_timeout(
        &lp->ring, &cqe, 1, timeout_ms >= 0 ? &ts : NULL, NULL);
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY)
        return rc;

    unsigned head, n = 0;
    ek_idle_tick(&lp->idle);
    io_uring_for_each_cqe(&lp->ring, head, cqe)
    {
        on_cqe(lp, cqe);
        n++;
    }
    io_uring_cq_advance(&lp->ring, n);
    if (ek_idle_sweep_due(&lp->idle))
        sweep_idle(lp);
    return 0;
}

/* The UDP side of a loop: buffers, and each socket's own address. */
static int open_udp(struct uloop *lp)
{
    int err = ek_udp_local_addrs(lp->udp_fds, lp->nudp, &lp->udp_local);
    if (err < 0)
        return err;
    return ek_udp_init(&lp->udp, lp->srv, lp->counters, lp->srv->cfg->threads);
}

static int uloop_init(void *arg, struct ek_group *g, unsigned index)
{
    struct uloop *lp = arg;
    struct ek_server *srv = ek_group_server(g);
    lp->group = g;
    lp->srv = srv;
    lp->index = index;
    lp->counters = &srv->stats->loop[index];
    ek_idle_init(&lp->idle, srv->cfg->idle_timeout_ms,
                 srv->cfg->proxy_protocol ? EK_PROXY_HEADER_MS : 0);
    lp->acc = ek_group_acceptor(g, index);
    lp->max_queue = srv->cfg->max_queue;
    lp->accepting = true;
    lp->listeners = calloc(srv->nlisteners + 1, sizeof(*lp->listeners));
    lp->accept_armed = calloc(srv->nlisteners + 1, sizeof(bool));
    if (lp->listeners == NULL || lp->accept_armed == NULL)
        return -ENOMEM;
    lp->udp_fds = calloc(srv->nlisteners + 1, sizeof(*lp->udp_fds));
    if (lp->udp_fds == NULL)
        return -ENOMEM;
    int err = setup_ring(lp, index != 0);
    if (err == 0)
        err = ek_group_loop_sockets(g, index, lp->listeners, &lp->nlisteners,
                                    lp->udp_fds, &lp->nudp, &lp->own_listeners);
    if (err == 0 && lp->nudp > 0)
        err = open_udp(lp);
    return err;
}

static size_t uloop_conns(void *arg)
{
    return ((struct uloop *)arg)->nconns;
}

static void uloop_stop_accepting(void *arg)
{
    struct uloop *lp = arg;
    lp->accepting = false;
    lp->listeners_closed = true;
    for (size_t i = 0; i < lp->nlisteners; i++) {
        if (lp->accept_armed[i])
            cancel(lp, udata(U_ACCEPT, (unsigned)i));
        if (lp->own_listeners)
            close(lp->listeners[i]);
    }
    if (lp->index == 0)
        ek_server_close_listeners(lp->srv);
    if (!lp->ring_disabled)
        io_uring_submit(&lp->ring); /* the cancels now, not next turn */
}

static bool accepts_armed(const struct uloop *lp)
{
    for (size_t i = 0; i < lp->nlisteners; i++)
        if (lp->accept_armed[i])
            return true;
    return false;
}

/* Ends every connection and the accepts, and waits (briefly) for their
 * requests to complete. A listener is really closed only when the last
 * request holding it completes: leaving that to the ring's teardown, which
 * runs after the process has gone, would keep the port accepting (and
 * taken) for a moment after echokit exits. */
static void close_all(struct uloop *lp)
{
    for (size_t fd = 0; fd < lp->nslots; fd++)
        if (lp->conns[fd].state & UC_OPEN)
            conn_close(lp, (int)fd, 0);
    for (size_t i = 0; i < lp->nlisteners; i++)
        if (lp->accept_armed[i])
            cancel(lp, udata(U_ACCEPT, (unsigned)i));
    lp->closing = true; /* UDP polls too hold their sockets open */
    for (size_t i = 0; i < lp->nudp && lp->udp_polls > 0; i++)
        cancel(lp, udata(U_UDP, (unsigned)i));
    int64_t until = ek_now_ms() + URING_CLOSE_GRACE_MS;
    while ((lp->nconns > 0 || accepts_armed(lp) || lp->udp_polls > 0) &&
           ek_now_ms() < until)
        if (uloop_turn(lp, ek_timeout_until(until)) < 0)
            break;
    for (size_t fd = 0; fd < lp->nslots; fd++)
        if (lp->conns[fd].state & UC_OPEN) { /* gave up waiting */
            ek_queue_clear(&lp->conns[fd].queue);
            close((int)fd);
            ek_server_conn_done(lp->srv, lp->conns[fd].err);
        }
}

static void uloop_free(void *arg)
{
    struct uloop *lp = arg;
    if (lp->ring_ok) {
        lp->accepting = false;
        if (!lp->ring_disabled) /* else nothing ever ran on it */
            close_all(lp);
        if (lp->br != NULL)
            buf_ring_free(&lp->ring, lp->br, URING_BUFS);
        io_uring_queue_exit(&lp->ring);
    }
    if (lp->own_listeners && !lp->listeners_closed)
        for (size_t i = 0; i < lp->nlisteners; i++)
            close(lp->listeners[i]);
    if (lp->own_listeners) /* after the ring: no poll is left on them */
        for (size_t i = 0; i < lp->nudp; i++)
            close(lp->udp_fds[i]);
    ek_udp_free(&lp->udp);
    free(lp->udp_fds);
    free(lp->udp_local);
    free(lp->bufs);
    free(lp->conns);
    free(lp->proxy);
    free(lp->listeners);
    free(lp->accept_armed);
}

static const struct ek_loop_ops uring_ops = {
    .size = sizeof(struct uloop),
    .init = uloop_init,
    .turn = uloop_turn,
    .conns = uloop_conns,
    .stop_accepting = uloop_stop_accepting,
    .free = uloop_free,
};

int ek_run_uring(struct ek_server *srv, const struct ek_model *self)
{
    return ek_group_run(srv, &uring_ops, self->name);
}
