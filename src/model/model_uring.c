/*
 * model_uring: --io uring, completion-based, on io_uring (liburing).
 *
 * Nothing here asks "is this socket ready?". Each listener has one
 * multishot accept; each connection has one receive in flight that takes
 * its buffer from a ring of provided buffers shared by the loop, so an
 * idle connection holds no receive buffer at all. The chassis (ek_loop.h)
 * keeps the slots, sockets, sweep and accounting, the connection layer
 * (ek_conn.h) the queue, the room under --max-queue and the PROXY header;
 * this file keeps the submissions and completions.
 *
 * A connection's requests and states, the whole state machine (struct
 * uconn; at most one receive and one send in flight per connection):
 *
 *   receive  U_ARMED: a receive is in flight, for at most the room the
 *              connection has left under --max-queue (what is queued and
 *              what a send from a provided buffer may still put there
 *              counted), one buffer per completion. So, as in the
 *              readiness loop, the server never reads more than it may
 *              hold (an uncapped multishot receive would go on filling
 *              buffers for a connection until a cancel reached it,
 *              megabytes per connection). With more room than a buffer,
 *              and where the kernel caps a multishot receive's total
 *              (probed), the receive is multishot, capped so that its last
 *              completion cannot pass the room (arm_recv), and ends (no
 *              IORING_CQE_F_MORE) when the cap is used up; otherwise it is
 *              one-shot, for the room, which costs a poll arming per
 *              message (15% more server CPU at 64 B, bench/PERFORMANCE.md).
 *              When it has ended and nothing holds it back, the next is
 *              armed (recv_next).
 *            U_STARVED: waiting in line for a buffer: its receive ended
 *              with ENOBUFS, or it could receive again while others were
 *              already waiting. feed_starved arms receives from the head
 *              of the line once per turn, as many as there are free
 *              buffers, so every connection gets its turn and one whose
 *              data keeps coming cannot overtake the ones that wait. While
 *              some wait and buffers are free, a turn does not block.
 *            U_PAUSED: no room (the queue holds --max-queue): no receive
 *              is armed until sends make room (maybe_unpause).
 *   send     U_SEND: one send in flight, from one of two places:
 *              - a provided buffer (send_bid >= 0): bytes that arrived
 *                while nothing was queued, echoed from where they landed
 *                with MSG_DONTWAIT, so the send completes at once, whole,
 *                short or -EAGAIN; what it did not send is copied to the
 *                front of the queue and the buffer goes back to the ring.
 *                A client that does not read can hold a buffer for one
 *                turn, never longer, so slow readers cannot starve the
 *                others of buffers;
 *              - the queue's first chunk (send_bid == -1): waits for the
 *                socket like any send, holding only the connection's own
 *                memory, which --max-queue bounds.
 *              What arrives while a send is in flight is queued behind it
 *              and sent, in order, when it completes.
 *   end      EK_CONN_PEER_CLOSED (the stream ended): the queue drains,
 *              then the connection closes (TLS: after its close_notify,
 *              queued and sent, EK_CONN_FINISHING).
 *            U_FAILING (TLS failed; PEER_CLOSED too: nothing more is
 *              read): the queue, which ends with OpenSSL's alert, is sent
 *              with MSG_DONTWAIT, as far as the socket takes it at once;
 *              then the connection closes with the error.
 *            EK_CONN_CLOSING: shutdown(2) ends what is in flight (the
 *              receive completes with 0, a send with an error) and the
 *              receive is cancelled; the fd is closed only when nothing is
 *              in flight (maybe_finish), so it cannot be reused while a
 *              late completion may still name it.
 *
 * TLS (tls: listeners, ek_transport_tls_mem): the ring receives and sends
 * the records; OpenSSL reads them from the provided buffer they landed
 * in, lent for the call (ek_tls_mem_lend), and every record it makes
 * (handshake, echo, alerts) joins the connection's queue, which sends as
 * above (never from a provided buffer: the bytes that go out are not the
 * bytes that came in). So each receive's buffer goes back to the ring at
 * once, and a connection keeps no TLS buffer of its own; what OpenSSL
 * decrypts is encrypted back at once. The receive cap is the room under
 * --max-queue as for plain TCP, so the queue holds at most --max-queue
 * plus the records' overhead and the handshake's flight. The payload is
 * counted as OpenSSL takes it, the records sent are not, and only they
 * move during the handshake, whose clock stays at the accept. A failed
 * handshake's alert goes out if the socket takes it at once
 * (U_FAILING), then the connection closes.
 *
 * One io_uring_submit_and_wait per turn submits everything the previous
 * turn prepared and reaps every completion that is ready: that is the
 * batching. The ring is single-issuer with deferred task work (Linux 6.1+;
 * without those flags where the kernel refuses them), so completions are
 * processed when the loop asks, not in interrupts of its work.
 */
#include "ek_conn.h"
#include "ek_admit.h"
#include "ek_group.h"
#include "ek_loop.h"
#include "ek_model.h"
#include "ek_platform.h"
#include "ek_tls.h"
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
#include <fcntl.h>

#define URING_SQ_ENTRIES 1024
#define URING_CQ_ENTRIES 16384
/* Provided receive buffers, shared by all connections of a loop: 64 x 64
 * KiB of address space, of which only what receives touch is resident
 * (about 134 B per connection at 5000 idle connections that each echoed
 * once). Measured (bench/PERFORMANCE.md): 16 KiB buffers cost bulk echo
 * 0.65 s of server CPU per GiB against 0.52; 32 buffers starved 1000
 * connections of 4 KiB messages until the re-arming went round robin, and
 * 64 leave headroom. A buffer is held from a receive to the end of the
 * MSG_DONTWAIT send that echoes it: one turn. */
#define URING_BUFS 64 /* a power of two */
#define URING_BUF_SIZE ((size_t)64 * 1024)
#define URING_BGID 0
/* After a stop, how long outstanding requests may take to complete. */
#define URING_CLOSE_GRACE_MS 1000

enum uop { OP_ACCEPT = 1, OP_RECV, OP_SEND, OP_WAKE, OP_CANCEL, OP_UDP };

static uint64_t udata(enum uop op, unsigned index)
{
    return (uint64_t)op | ((uint64_t)index << 8);
}

/* The engine's states of a connection (see the top of this file). */
enum {
    U_ARMED = 1,    /* a receive is in flight */
    U_SEND = 2,     /* a send is in flight */
    U_PAUSED = 4,   /* no receive: the queue is full */
    U_STARVED = 8,  /* receive ended: no provided buffer was free */
    U_FAILING = 16, /* TLS failed: its last records go, then it closes */
};

/* A connection's slot. */
struct uconn {
    struct ek_conn c;   /* first: the connection layer's */
    uint32_t send_len;  /* bytes of the send in flight */
    uint32_t send_done; /* of them, already sent (short sends) */
    int err;            /* why it closes (-errno), 0 for a clean end */
    int line_prev;      /* U_STARVED: the fds before and after it in the */
    int line_next;      /*   line waiting for a buffer (-1: none) */
    int16_t send_bid;   /* provided buffer being sent; -1: the queue */
    uint8_t state;      /* U_* */
};

struct uloop {
    struct ek_loop base; /* first: the chassis */
    struct io_uring ring;
    bool ring_ok, ring_disabled, wake_armed;
    struct io_uring_buf_ring *br;
    char *bufs;         /* URING_BUFS x URING_BUF_SIZE */
    unsigned bufs_free; /* provided buffers the kernel may fill */
    int line_head;      /* the line of U_STARVED connections: the fd */
    int line_tail;      /*   waiting longest, the last to join (-1: none) */
    bool *accept_armed; /* per listener */
    bool udp_armed;     /* their polls were submitted (first turn) */
    size_t udp_polls;   /* polls in flight */
    bool closing;       /* uloop_free: arm nothing more */
    char *plain;        /* TLS: what OpenSSL decrypted, to encrypt back;
                           and base.env.buf: the records made (ek_tls.h) */
};

static struct uconn *uconn(struct uloop *lp, int fd)
{
    return (struct uconn *)(void *)ek_loop_conn(&lp->base, fd);
}

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

/* Whether the kernel caps a multishot receive's total (Linux 6.x): the
 * limit goes in the SQE field its uapi now calls optlen, a member of the
 * union liburing 2.3 names file_index; an older kernel refuses the SQE
 * with EINVAL or ignores the cap. Probed once. */
static bool capped_multishot;

/* One receive on a socket pair holding "xyz", into a provided buffer ring:
 * plain, or multishot with a cap of 2 bytes per completion and in all.
 * Copies its first completion into *out; returns 0 or -errno. */
static int probe_recv(struct io_uring *ring, bool capped,
                      struct io_uring_cqe *out)
{
    static char buf[4096];
    int sv[2], err;
    struct io_uring_buf_ring *br = buf_ring_new(ring, buf, 1, 4096, &err);
    if (br == NULL)
        return err;
    err = ek_socketpair(AF_UNIX, SOCK_STREAM, O_CLOEXEC, sv);
    if (err == 0) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
        if (capped) {
            io_uring_prep_recv_multishot(sqe, sv[0], NULL, 2, 0);
            sqe->file_index = 2; /* optlen: the total */
        } else {
            io_uring_prep_recv(sqe, sv[0], NULL, 4096, 0);
        }
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = URING_BGID;
        (void)!write(sv[1], "xyz", 3);
        struct io_uring_cqe *cqe;
        struct __kernel_timespec ts = {.tv_sec = 1};
        err = io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
        if (err >= 0) {
            *out = *cqe;
            io_uring_cqe_seen(ring, cqe);
            err = 0;
        }
        close(sv[0]);
        close(sv[1]);
        /* A multishot left armed ends with the socket; reap it, if any,
         * before the buffer ring goes. */
        if (capped && err == 0 && (out->flags & IORING_CQE_F_MORE)) {
            struct __kernel_timespec brief = {.tv_nsec = 100000000};
            if (io_uring_wait_cqe_timeout(ring, &cqe, &brief) == 0)
                io_uring_cqe_seen(ring, cqe);
        }
    }
    buf_ring_free(ring, br, 1);
    return err;
}

/* The whole path this model relies on: a receive into a provided buffer
 * ring (Linux 5.19); then whether multishot receives can be capped. */
static const char *probe_receive(struct io_uring *ring)
{
    struct io_uring_cqe cqe = {0};
    int err = probe_recv(ring, false, &cqe);
    if (err == 0 && (cqe.res != 3 || !(cqe.flags & IORING_CQE_F_BUFFER)))
        err = cqe.res < 0 ? cqe.res : -EINVAL;
    if (err < 0) {
        snprintf(probe_reason, sizeof(probe_reason),
                 "the kernel cannot receive into a provided buffer ring "
                 "(Linux 5.19+ needed): %s",
                 strerror(-err));
        return probe_reason;
    }
    /* EK_URING_ONESHOT: the older kernels' way, for tests and
     * measurements. */
    struct io_uring_cqe capped = {0};
    capped_multishot = getenv("EK_URING_ONESHOT") == NULL &&
                       probe_recv(ring, true, &capped) == 0 &&
                       capped.res == 2 && !(capped.flags & IORING_CQE_F_MORE);
    return NULL;
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
        why = probe_receive(&ring);
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
    io_uring_prep_multishot_accept(sqe, lp->base.listeners[i], NULL, NULL,
                                   SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, udata(OP_ACCEPT, (unsigned)i));
    lp->accept_armed[i] = true;
}

/* Puts connection fd at the end of the line waiting for a buffer (on), or
 * takes it out, wherever it stands (off). */
static void set_starved(struct uloop *lp, int fd, bool on)
{
    struct uconn *u = uconn(lp, fd);
    if (on == !!(u->state & U_STARVED))
        return;
    if (on) {
        u->state |= U_STARVED;
        u->line_prev = lp->line_tail;
        u->line_next = -1;
        if (lp->line_tail >= 0)
            uconn(lp, lp->line_tail)->line_next = fd;
        else
            lp->line_head = fd;
        lp->line_tail = fd;
        return;
    }
    u->state &= (uint8_t)~U_STARVED;
    if (u->line_prev >= 0)
        uconn(lp, u->line_prev)->line_next = u->line_next;
    else
        lp->line_head = u->line_next;
    if (u->line_next >= 0)
        uconn(lp, u->line_next)->line_prev = u->line_prev;
    else
        lp->line_tail = u->line_prev;
}

/* Bytes the connection has taken on to echo: what is queued, and what a
 * send from a provided buffer has not sent yet (the queue's if the socket
 * does not take it). */
static size_t committed(const struct uconn *u)
{
    size_t n = ek_queue_len(&u->c.queue);
    if ((u->state & U_SEND) && u->send_bid >= 0)
        n += u->send_len - u->send_done;
    return n;
}

/* What the connection may still read under --max-queue. */
static size_t room_left(const struct uloop *lp, const struct uconn *u)
{
    size_t max = lp->base.env.max_queue, used = committed(u);
    return used < max ? max - used : 0;
}

/* Arms a receive for the room the connection has left (> 0). A multishot
 * receive ends when its total cap is used up, but the kernel checks the
 * cap only after each completion, and a completion can fill a whole
 * buffer (len): with the cap at room - len + 1, the last completion
 * starts with at most room - len read and ends with at most room. With
 * less room than a buffer, a one-shot receive of the room. */
static void arm_recv(struct uloop *lp, int fd, size_t room)
{
    struct uconn *u = uconn(lp, fd);
    struct io_uring_sqe *sqe = get_sqe(lp);
    if (sqe == NULL) {
        set_starved(lp, fd, true); /* retried with the starved ones */
        return;
    }
    if (capped_multishot && room > URING_BUF_SIZE) {
        size_t cap = room - URING_BUF_SIZE + 1;
        io_uring_prep_recv_multishot(sqe, fd, NULL, URING_BUF_SIZE, 0);
        sqe->file_index = /* optlen: the total */
            (uint32_t)(cap < UINT32_MAX ? cap : UINT32_MAX);
    } else {
        io_uring_prep_recv(sqe, fd, NULL,
                           room < URING_BUF_SIZE ? room : URING_BUF_SIZE, 0);
    }
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = URING_BGID;
    io_uring_sqe_set_data64(sqe, udata(OP_RECV, (unsigned)fd));
    u->state |= U_ARMED;
}

/* The connection may receive again: paused if it has no room; else armed,
 * unless others wait for a buffer: then it joins the end of their line,
 * so that connections whose data keeps coming cannot take every buffer
 * the moment it returns, ahead of the ones that waited (feed_starved). */
static void recv_next(struct uloop *lp, int fd)
{
    struct uconn *u = uconn(lp, fd);
    size_t room = room_left(lp, u);
    u->state &= (uint8_t)~U_PAUSED;
    if (room == 0)
        u->state |= U_PAUSED;
    else if (lp->line_head >= 0) /* others wait */
        set_starved(lp, fd, true);
    else
        arm_recv(lp, fd, room);
}

static void cancel(struct uloop *lp, uint64_t target)
{
    struct io_uring_sqe *sqe = get_sqe(lp);
    if (sqe == NULL)
        return;
    io_uring_prep_cancel64(sqe, target, 0);
    io_uring_sqe_set_data64(sqe, udata(OP_CANCEL, 0));
}

static void arm_wake(struct uloop *lp)
{
    struct io_uring_sqe *sqe = get_sqe(lp);
    if (sqe == NULL)
        return;
    io_uring_prep_poll_multishot(
        sqe, ek_group_wake_fd(lp->base.group, lp->base.index), POLLIN);
    io_uring_sqe_set_data64(sqe, udata(OP_WAKE, 0));
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
               lp->base.udp_fds[i]);
        return;
    }
    io_uring_prep_poll_add(sqe, lp->base.udp_fds[i], POLLIN);
    io_uring_sqe_set_data64(sqe, udata(OP_UDP, (unsigned)i));
    lp->udp_polls++;
}

static void on_udp(struct uloop *lp, size_t i, const struct io_uring_cqe *cqe)
{
    lp->udp_polls--;
    if (cqe->res == -ECANCELED || lp->closing || i >= lp->base.nudp)
        return;
    ek_loop_serve_udp(&lp->base, i);
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

static void conn_close(struct ek_loop *base, int fd, int err);

/* Sends the connection's current piece (send_len bytes from data), from
 * send_done on. */
static void submit_send(struct uloop *lp, int fd, const char *data, int flags)
{
    struct uconn *u = uconn(lp, fd);
    struct io_uring_sqe *sqe = get_sqe(lp);
    if (sqe == NULL) { /* a full queue even after a submit: give up */
        if (u->send_bid >= 0)
            recycle(lp, u->send_bid);
        u->send_bid = -1;
        conn_close(&lp->base, fd, -EBUSY);
        return;
    }
    io_uring_prep_send(sqe, fd, data + u->send_done, u->send_len - u->send_done,
                       EK_MSG_NOSIGNAL | flags);
    io_uring_sqe_set_data64(sqe, udata(OP_SEND, (unsigned)fd));
    u->state |= U_SEND;
}

/* Sends the oldest queued piece (a chunk of the queue); after a TLS
 * failure only what the socket takes at once (tls_failed). */
static void send_from_queue(struct uloop *lp, int fd)
{
    struct uconn *u = uconn(lp, fd);
    struct iovec iov;
    ek_queue_peek(&u->c.queue, &iov, 1);
    u->send_bid = -1;
    u->send_len = (uint32_t)iov.iov_len;
    u->send_done = 0;
    submit_send(lp, fd, iov.iov_base,
                (u->state & U_FAILING) ? MSG_DONTWAIT : 0);
}

/* ---- connections ------------------------------------------------------ */

/* Closes the connection once nothing is in flight on it. */
static void maybe_finish(struct uloop *lp, int fd)
{
    struct uconn *u = uconn(lp, fd);
    if (!(u->c.flags & EK_CONN_CLOSING) || (u->state & (U_ARMED | U_SEND)))
        return;
    set_starved(lp, fd, false);
    ek_loop_conn_closed(&lp->base, fd, u->err);
}

static void conn_close(struct ek_loop *base, int fd, int err)
{
    struct uloop *lp = (struct uloop *)base;
    struct uconn *u = uconn(lp, fd);
    if (u->c.flags & EK_CONN_CLOSING)
        return;
    u->c.flags |= EK_CONN_CLOSING;
    if (u->err == 0)
        u->err = err;
    /* Requests in flight end when the socket shuts down: the receive
     * completes with 0, a send with an error. */
    if (u->state & (U_ARMED | U_SEND))
        shutdown(fd, SHUT_RDWR);
    if (u->state & U_ARMED)
        cancel(lp, udata(OP_RECV, (unsigned)fd));
    maybe_finish(lp, fd);
}

/* A connection accepted on a listener whose connections speak tp: TLS
 * goes through memory here (see the top of this file). */
static void conn_open(struct uloop *lp, int fd, const struct ek_transport *tp)
{
#ifdef EK_HAVE_TLS
    if (tp == &ek_transport_tls)
        tp = &ek_transport_tls_mem;
#endif
    if (ek_loop_conn_open(&lp->base, fd, tp) != NULL)
        recv_next(lp, fd);
}

#ifdef EK_HAVE_TLS
/* Whether the connection's bytes go through OpenSSL. */
static bool is_tls(const struct uconn *u)
{
    return u->c.tp != EK_TP_SOCKET;
}

/* TLS: n received bytes go to OpenSSL (none: it just goes on, after the
 * end of the stream); what it decrypts is encrypted back at once, and
 * every record it makes (handshake, echo, alerts) goes straight into the
 * queue. The payload is counted here, once: the records sent are not
 * (on_send). Returns 0 or -errno (a failed handshake was counted by the
 * transport; its alert may be queued: tls_failed). */
static int tls_pump(struct uloop *lp, int fd, const char *data, size_t n)
{
    struct uconn *u = uconn(lp, fd);
    struct ek_conn *c = &u->c;
    const struct ek_transport *tp = ek_conn_tp(c);
    const struct ek_conn_env *env = &lp->base.env;
    int err = 0;
    bool handshaking = tp->handshaking(c);
    ek_tls_mem_lend(c, env, data, n);
    while (!(c->flags & EK_CONN_PEER_CLOSED)) {
        ssize_t k = tp->read(c, fd, lp->plain, URING_BUF_SIZE);
        if (k == -EAGAIN)
            break;
        if (k <= 0) { /* 0: close_notify, or the end of the stream */
            if (k == 0)
                c->flags |= EK_CONN_PEER_CLOSED;
            err = (int)k;
            break;
        }
        ek_conn_received(c, env, (size_t)k);
        struct iovec iov = {.iov_base = lp->plain, .iov_len = (size_t)k};
        ssize_t w = tp->writev(c, fd, &iov, 1); /* into the queue: all */
        if (w != k) {
            err = w < 0 ? (int)w : -EIO;
            break;
        }
        ek_conn_sent(c, env, (size_t)w); /* committed to the queue */
    }
    /* OpenSSL stops reading before the end of what it was lent only at
     * the end of the stream or on an error: anything else would lose
     * bytes, so it would be an error too (not reached). */
    ssize_t left = ek_tls_mem_done(c);
    if (left < 0 && err == 0)
        err = (int)left;
    else if (left > 0 && err == 0 && !(c->flags & EK_CONN_PEER_CLOSED))
        err = -EIO;
    /* The handshake had its own deadline; --idle-timeout counts from its
     * end (as ek_conn_event does for the other loops), whether or not the
     * server sends anything after it (no tickets under mTLS, none on a
     * resumed session). */
    if (err == 0 && handshaking && !tp->handshaking(c))
        ek_conn_touch(c, env);
    return err;
}

/* TLS failed with err, counted by the transport. What OpenSSL said last
 * (its fatal alert: "unknown ca", "certificate required"...) is at the end
 * of the queue: it goes out if the socket takes it now, as OpenSSL's own
 * writes do on the other engines (sends with MSG_DONTWAIT, never waited
 * for), so that the client learns why; then the connection closes. */
static void tls_failed(struct uloop *lp, int fd, int err)
{
    struct uconn *u = uconn(lp, fd);
    if (ek_queue_len(&u->c.queue) == 0 || err == -ENOMEM) {
        conn_close(&lp->base, fd, err);
        return;
    }
    u->err = err;
    u->state |= U_FAILING;
    u->c.flags |= EK_CONN_PEER_CLOSED; /* nothing more is read */
    if (!(u->state & U_SEND))
        send_from_queue(lp, fd);
}
#endif

/* The client's stream ended and everything went back: the connection
 * closes; TLS first says close_notify (queued, sent, then this again). */
static void conn_end(struct uloop *lp, int fd)
{
#ifdef EK_HAVE_TLS
    struct uconn *u = uconn(lp, fd);
    if (u->state & U_FAILING) {
        conn_close(&lp->base, fd, u->err); /* its last words went */
        return;
    }
    if (is_tls(u) && !(u->c.flags & EK_CONN_FINISHING)) {
        u->c.flags |= EK_CONN_FINISHING;
        ek_tls_mem_lend(&u->c, &lp->base.env, NULL, 0);
        int err = ek_conn_tp(&u->c)->finish(&u->c, fd); /* into the queue */
        ssize_t done = ek_tls_mem_done(&u->c);
        err = err < 0 ? err : done < 0 ? (int)done : 0;
        if (err == 0 && ek_queue_len(&u->c.queue) > 0) {
            send_from_queue(lp, fd);
            return;
        }
    }
#endif
    conn_close(&lp->base, fd, 0);
}

#ifdef EK_HAVE_TLS
/* TLS, after OpenSSL had its turn: what it made goes out, or, once the
 * client's stream ended and all is sent, the connection ends. */
static void tls_went_on(struct uloop *lp, int fd)
{
    struct uconn *u = uconn(lp, fd);
    if (u->state & U_SEND)
        return; /* its completion sends the rest, or ends */
    if (ek_queue_len(&u->c.queue) > 0)
        send_from_queue(lp, fd);
    else if (u->c.flags & EK_CONN_PEER_CLOSED)
        conn_end(lp, fd);
}
#endif

/* Receives again once sends made room. */
static void maybe_unpause(struct uloop *lp, int fd)
{
    struct uconn *u = uconn(lp, fd);
    if ((u->state & U_PAUSED) && !(u->state & U_ARMED) &&
        !(u->c.flags & (EK_CONN_CLOSING | EK_CONN_PEER_CLOSED)))
        recv_next(lp, fd);
}

/* n bytes arrived in buffer bid: the PROXY header first, then the echo,
 * straight from the buffer when nothing is queued or in flight. */
static void received(struct uloop *lp, int fd, int bid, uint32_t n)
{
    struct uconn *u = uconn(lp, fd);
    const struct ek_conn_env *env = &lp->base.env;
    uint32_t skip = 0; /* header bytes at the start of the buffer */
    if (u->c.proxy != NULL) {
        size_t used;
        int v = ek_conn_header_input(&u->c, fd, env, buf_of(lp, bid), n, &used);
        if (v != EK_HEADER_DONE || used == n) {
            recycle(lp, bid);
            if (v == EK_HEADER_REFUSED)
                conn_close(&lp->base, fd, 0);
            return;
        }
        skip = (uint32_t)used;
    }
#ifdef EK_HAVE_TLS
    if (is_tls(u)) {
        int err = tls_pump(lp, fd, buf_of(lp, bid) + skip, n - skip);
        recycle(lp, bid);
        if (err < 0)
            tls_failed(lp, fd, err);
        else
            tls_went_on(lp, fd);
        return;
    }
#endif
    ek_conn_received(&u->c, env, n - skip);
    if (!(u->state & U_SEND) && ek_queue_len(&u->c.queue) == 0) {
        u->send_bid = (int16_t)bid;
        u->send_len = n;
        u->send_done = skip;
        submit_send(lp, fd, buf_of(lp, bid), MSG_DONTWAIT);
        return;
    }
    int err =
        ek_conn_queue(&u->c, env, buf_of(lp, bid) + skip, n - skip, false);
    recycle(lp, bid);
    if (err < 0)
        conn_close(&lp->base, fd, err);
}

static void on_recv(struct uloop *lp, int fd, const struct io_uring_cqe *cqe)
{
    struct uconn *u = uconn(lp, fd);
    int bid = (cqe->flags & IORING_CQE_F_BUFFER)
                  ? (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT)
                  : -1;
    if (!(cqe->flags & IORING_CQE_F_MORE))
        u->state &= (uint8_t)~U_ARMED;
    if (bid >= 0)
        lp->bufs_free--; /* the kernel picked it: ours until recycled */
    if (bid >= 0 && cqe->res <= 0) {
        /* A completion can carry a buffer and no data (the end of the
         * stream seen after a buffer was picked): give it back, or the
         * ring drains one buffer at a time until every receive starves. */
        recycle(lp, bid);
        bid = -1;
    }

    if (cqe->res > 0 && bid < 0) {
        conn_close(&lp->base, fd, -EPROTO); /* data without a buffer */
    } else if (cqe->res > 0 &&
               ((u->c.flags & EK_CONN_CLOSING) || (u->state & U_FAILING))) {
        recycle(lp, bid);
    } else if (cqe->res > 0) {
        received(lp, fd, bid, (uint32_t)cqe->res);
    } else if (cqe->res <= 0 && cqe->res != -ENOBUFS &&
               cqe->res != -ECANCELED && u->c.proxy != NULL &&
               !(u->c.flags & EK_CONN_CLOSING)) {
        ek_conn_header_failed(&u->c, fd, &lp->base.env,
                              ek_conn_header_cut(cqe->res));
        conn_close(&lp->base, fd, 0);
#ifdef EK_HAVE_TLS
    } else if (cqe->res == 0 && is_tls(u) && !(u->state & U_FAILING)) {
        /* (Failing: the end of the stream changes nothing, below.) */
        ek_tls_mem_eof(&u->c); /* OpenSSL reads the end of the stream */
        int err = tls_pump(lp, fd, NULL, 0);
        u->c.flags |= EK_CONN_PEER_CLOSED;
        if (err < 0)
            tls_failed(lp, fd, err);
        else
            tls_went_on(lp, fd);
#endif
    } else if (cqe->res == 0) {
        u->c.flags |= EK_CONN_PEER_CLOSED;
        if (!(u->state & U_SEND) && ek_queue_len(&u->c.queue) == 0)
            conn_close(&lp->base, fd, 0);
    } else if (cqe->res == -ENOBUFS) {
        set_starved(lp, fd, true); /* re-armed when buffers come back */
    } else if (cqe->res != -ECANCELED) {
        conn_close(&lp->base, fd, cqe->res);
    }
    /* The next receive, for the room left (none: paused), unless the
     * stream ended, the connection is closing or waits for a buffer. */
    if (u->c.kind == EK_SLOT_CONN &&
        !(u->c.flags & (EK_CONN_CLOSING | EK_CONN_PEER_CLOSED)) &&
        !(u->state & (U_ARMED | U_STARVED)))
        recv_next(lp, fd);
    maybe_finish(lp, fd);
}

/* A send from a provided buffer completed (MSG_DONTWAIT: at once, whole,
 * short, or -EAGAIN on a full socket): what it did not send goes to the
 * front of the queue (unless the connection is ending), and the buffer
 * back to the ring. Returns 0 or -ENOMEM. */
static int ring_send_done(struct uloop *lp, int fd, bool keep_rest)
{
    struct uconn *u = uconn(lp, fd);
    int err = 0;
    if (keep_rest && u->send_done < u->send_len)
        err = ek_conn_queue(&u->c, &lp->base.env,
                            buf_of(lp, u->send_bid) + u->send_done,
                            u->send_len - u->send_done, true);
    recycle(lp, u->send_bid);
    u->send_bid = -1;
    return err;
}

/* n bytes went out. Plain TCP: the payload, counted. TLS: records, whose
 * payload was counted as OpenSSL took it (tls_pump); they only show that
 * the connection is alive, once past the handshake, whose deadline counts
 * from the accept (ek_idle.h), as on the other engines. */
static void sent_on_wire(struct uloop *lp, struct uconn *u, size_t n)
{
#ifdef EK_HAVE_TLS
    if (is_tls(u)) {
        if (!ek_conn_tp(&u->c)->handshaking(&u->c))
            ek_conn_touch(&u->c, &lp->base.env);
        return;
    }
#endif
    ek_conn_sent(&u->c, &lp->base.env, n);
}

static void on_send(struct uloop *lp, int fd, const struct io_uring_cqe *cqe)
{
    struct uconn *u = uconn(lp, fd);
    bool from_ring = u->send_bid >= 0;
    int err = cqe->res == -EAGAIN && from_ring ? 0 : cqe->res;
    u->state &= (uint8_t)~U_SEND;
    if (err > 0) {
        sent_on_wire(lp, u, (size_t)err);
        u->send_done += (uint32_t)err;
        err = 0;
    }
    bool ending = err < 0 || (u->c.flags & EK_CONN_CLOSING);
    if ((u->state & U_FAILING) && !ending && u->send_done < u->send_len) {
        ending = true; /* the socket took no more at once */
        err = -EAGAIN;
    }
    if (from_ring) {
        int qerr = ring_send_done(lp, fd, !ending);
        err = err < 0 ? err : qerr;
    } else if (!ending && u->send_done < u->send_len) {
        struct iovec iov; /* the queue's first chunk, still in place */
        ek_queue_peek(&u->c.queue, &iov, 1);
        submit_send(lp, fd, iov.iov_base, 0); /* short send: the rest */
        return;
    } else if (!ending) {
        ek_queue_consume(&u->c.queue, u->send_len);
    }
    if (err < 0)
        conn_close(&lp->base, fd, err);
    if (err < 0 || (u->c.flags & EK_CONN_CLOSING)) {
        maybe_finish(lp, fd);
        return;
    }
    if (ek_queue_len(&u->c.queue) > 0) {
        send_from_queue(lp, fd);
        maybe_unpause(lp, fd);
    } else if (u->c.flags & EK_CONN_PEER_CLOSED) {
        conn_end(lp, fd);
    } else {
        maybe_unpause(lp, fd);
    }
}

/* ---- accepting -------------------------------------------------------- */

static bool accepting(const struct uloop *lp)
{
    return !lp->base.listeners_closed && !lp->closing;
}

static void on_accept(struct uloop *lp, size_t i,
                      const struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE))
        lp->accept_armed[i] = false;
    if (cqe->res >= 0) {
        int fd = cqe->res;
        if (!accepting(lp))
            close(fd); /* the drain began after the kernel accepted it */
        else if (ek_admit_conn(lp->base.srv, lp->base.acc, fd))
            conn_open(lp, fd,
                      ek_loop_listener_tp(&lp->base, lp->base.listeners[i]));
        return;
    }
    if (cqe->res == -ECANCELED)
        return;
    if (ek_admit_accept_failed(lp->base.srv, lp->base.acc, cqe->res) &&
        lp->accept_armed[i]) {
        cancel(lp, udata(OP_ACCEPT, (unsigned)i)); /* re-armed after pause */
    }
}

/* Keeps one multishot accept per listener while accepting and not paused. */
static void keep_accepting(struct uloop *lp)
{
    if (lp->closing || !ek_loop_may_accept(&lp->base))
        return;
    for (size_t i = 0; i < lp->base.nlisteners; i++)
        if (!lp->accept_armed[i])
            arm_accept(lp, i);
}

/* Re-arms receives that ended for want of buffers, first come first
 * served, as many as there are free buffers: re-arming all of them would
 * only earn ENOBUFS again. A connection whose receive ends for want of a
 * buffer again goes to the end of the line. */
static void feed_starved(struct uloop *lp)
{
    for (unsigned budget = lp->bufs_free; budget > 0 && lp->line_head >= 0;) {
        int fd = lp->line_head;
        struct uconn *u = uconn(lp, fd);
        set_starved(lp, fd, false);
        if (u->c.flags & (EK_CONN_CLOSING | EK_CONN_PEER_CLOSED))
            continue; /* ends once its requests complete (maybe_finish) */
        size_t room = room_left(lp, u);
        if (room == 0) {
            u->state |= U_PAUSED;
            continue;
        }
        arm_recv(lp, fd, room);
        budget--;
    }
}

/* ---- the loop --------------------------------------------------------- */

static void on_cqe(struct uloop *lp, const struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    unsigned index = (unsigned)(ud >> 8);
    switch ((enum uop)(ud & 0xff)) {
    case OP_ACCEPT:
        on_accept(lp, index, cqe);
        break;
    case OP_RECV:
        on_recv(lp, (int)index, cqe);
        break;
    case OP_SEND:
        on_send(lp, (int)index, cqe);
        break;
    case OP_WAKE:
        ek_group_woken(lp->base.group, lp->base.index);
        if (!(cqe->flags & IORING_CQE_F_MORE))
            arm_wake(lp);
        break;
    case OP_UDP:
        on_udp(lp, index, cqe);
        break;
    case OP_CANCEL:
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
    if (lp->base.srv->cfg->tls != NULL) {
        lp->plain = malloc(URING_BUF_SIZE);
        lp->base.env.buf = malloc(URING_BUF_SIZE);
        lp->base.env.buf_size = URING_BUF_SIZE;
    }
    if (lp->bufs == NULL || (lp->base.srv->cfg->tls != NULL &&
                             (lp->plain == NULL || lp->base.env.buf == NULL)))
        return -ENOMEM;
    lp->br = buf_ring_new(&lp->ring, lp->bufs, URING_BUFS, URING_BUF_SIZE, &rc);
    lp->bufs_free = URING_BUFS;
    return lp->br == NULL ? rc : 0;
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
        for (size_t i = 0; i < lp->base.nudp; i++)
            arm_udp(lp, i);
        lp->udp_armed = true;
    }
    keep_accepting(lp);
    feed_starved(lp);

    timeout_ms = ek_loop_timeout(&lp->base, timeout_ms);
    /* Connections still in line while buffers are free: the receives just
     * armed may find no data (a newcomer, a client gone quiet), take no
     * buffer and complete never, so waiting for a completion could leave
     * the rest of the line, data waiting, until some unrelated event. Come
     * straight back to arm the next ones instead. It cannot spin: each such
     * turn shortens the line, and only completions bring connections back
     * to it. */
    if (lp->line_head >= 0 && lp->bufs_free > 0)
        timeout_ms = 0;
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
    ek_loop_tick(&lp->base);
    io_uring_for_each_cqe(&lp->ring, head, cqe)
    {
        on_cqe(lp, cqe);
        n++;
    }
    io_uring_cq_advance(&lp->ring, n);
    ek_loop_sweep(&lp->base);
    return 0;
}

static int uloop_init(void *arg, struct ek_group *g, unsigned index)
{
    struct uloop *lp = arg;
    int err =
        ek_loop_init(&lp->base, g, index, sizeof(struct uconn), conn_close);
    if (err < 0)
        return err;
    lp->line_head = lp->line_tail = -1;
    lp->accept_armed = calloc(lp->base.nlisteners + 1, sizeof(bool));
    if (lp->accept_armed == NULL)
        return -ENOMEM;
    if (index == 0 && ek_uring_unavailable() == NULL) /* probed: cached */
        ek_log(EK_LOG_DEBUG, "uring: receives are %s",
               capped_multishot
                   ? "multishot, capped within the room under --max-queue "
                     "(one-shot when the room is less than a buffer)"
                   : "one-shot, each for the room under --max-queue (the "
                     "kernel cannot cap a multishot receive's total, or "
                     "EK_URING_ONESHOT is set)");
    return setup_ring(lp, index != 0);
}

static void uloop_stop_accepting(void *arg)
{
    struct uloop *lp = arg;
    for (size_t i = 0; i < lp->base.nlisteners; i++)
        if (lp->accept_armed[i])
            cancel(lp, udata(OP_ACCEPT, (unsigned)i));
    ek_loop_close_listeners(&lp->base);
    if (!lp->ring_disabled)
        io_uring_submit(&lp->ring); /* the cancels now, not next turn */
}

static bool accepts_armed(const struct uloop *lp)
{
    for (size_t i = 0; i < lp->base.nlisteners; i++)
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
    ek_loop_close_all(&lp->base);
    for (size_t i = 0; i < lp->base.nlisteners; i++)
        if (lp->accept_armed[i])
            cancel(lp, udata(OP_ACCEPT, (unsigned)i));
    for (size_t i = 0; i < lp->base.nudp && lp->udp_polls > 0; i++)
        cancel(lp, udata(OP_UDP, (unsigned)i));
    int64_t until = ek_now_ms() + URING_CLOSE_GRACE_MS;
    while ((lp->base.nconns > 0 || accepts_armed(lp) || lp->udp_polls > 0) &&
           ek_now_ms() < until)
        if (uloop_turn(lp, ek_timeout_until(until)) < 0)
            break;
    for (size_t fd = 0; fd < lp->base.nslots; fd++)
        if (uconn(lp, (int)fd)->c.kind == EK_SLOT_CONN) { /* gave up waiting */
            set_starved(lp, (int)fd, false);
            ek_loop_conn_closed(&lp->base, (int)fd, uconn(lp, (int)fd)->err);
        }
}

static void uloop_free(void *arg)
{
    struct uloop *lp = arg;
    if (lp->ring_ok) {
        lp->closing = true;     /* arm nothing more; UDP polls end too */
        if (!lp->ring_disabled) /* else nothing ever ran on it */
            close_all(lp);
        if (lp->br != NULL)
            buf_ring_free(&lp->ring, lp->br, URING_BUFS);
        io_uring_queue_exit(&lp->ring);
    }
    ek_loop_free(&lp->base); /* after the ring: no request is left on the
                                sockets it closes */
    free(lp->bufs);
    free(lp->plain);
    free(lp->base.env.buf);
    free(lp->accept_armed);
}

static const struct ek_loop_ops uring_ops = {
    .size = sizeof(struct uloop),
    .init = uloop_init,
    .turn = uloop_turn,
    .conns = ek_loop_conns,
    .stop_accepting = uloop_stop_accepting,
    .free = uloop_free,
};

int ek_run_uring(struct ek_server *srv, const struct ek_model *self)
{
    return ek_group_run(srv, &uring_ops, self->name);
}
