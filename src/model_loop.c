/*
 * model_loop: the event loop behind --io select|poll|epoll|kqueue.
 *
 * One thread per loop, non-blocking sockets, one backend (ek_backend.h)
 * deciding how to wait. Per descriptor a loop keeps a struct ek_conn in an
 * array indexed by fd (descriptors are small dense integers), so finding
 * the state for an event is an index, and a connection costs 32 bytes plus
 * its queue, which is empty unless a send would block.
 *
 * Interest is level-triggered everywhere: a connection wants READ while its
 * queue has room and WRITE while it holds bytes. In the usual case (the
 * echo goes out in the same call it came in) interest never changes, so
 * level triggering costs no extra syscalls over edge triggering, and it
 * gives fairness for free: one read per connection per wakeup, so a client
 * that floods cannot starve the others.
 *
 * --threads N runs N such loops through ek_group (ek_group.h), sharing
 * nothing on the echo path.
 */
#include "ek_backend.h"
#include "ek_conn.h"
#include "ek_group.h"
#include "ek_model.h"
#include "ek_net.h"
#include "ek_proxy.h"
#include "ek_server.h"
#include "ek_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

/* Read buffer shared by all connections of a loop: one large read per
 * event keeps syscalls per byte low for bulk streams. */
#define EK_LOOP_READ_BUF ((size_t)64 * 1024)
/* Events taken per wait, and connections accepted per listener event
 * (bounded so that a connection storm cannot starve open connections). */
#define EK_LOOP_EVENTS 256
#define EK_LOOP_ACCEPTS 64

enum slot_kind {
    SLOT_FREE = 0,
    SLOT_LISTENER,
    SLOT_WAKE, /* the group's wake fd: signals (loop 0), phase (others) */
    SLOT_CONN,
    SLOT_UDP /* a UDP socket: datagrams echoed in batches (ek_udp.h) */
};

struct loop {
    struct ek_group *group;
    struct ek_server *srv;
    unsigned index; /* 0: the main thread's loop */
    const struct ek_backend *be;
    void *state;           /* the backend's */
    struct ek_conn *slots; /* indexed by fd */
    size_t nslots;
    size_t nconns;  /* slots of kind SLOT_CONN */
    int *listeners; /* fds this loop accepts on */
    size_t nlisteners;
    bool own_listeners; /* opened by this loop (SO_REUSEPORT copies) */
    int *udp_fds;       /* UDP sockets this loop serves */
    struct ek_sockaddr *udp_local; /* their addresses */
    size_t nudp;
    struct ek_udp udp; /* buffers and rate state, when nudp > 0 */
    bool listening;    /* listeners registered with the backend */
    struct ek_acceptor *acc;
    struct ek_idle_clock idle;
    struct ek_echo_ctx echo;
    pthread_t tid;
    struct ek_event events[EK_LOOP_EVENTS];
};

/* The slot for fd, growing the table as needed (NULL: out of memory). The
 * table may move: never hold a slot pointer across a call that opens a
 * descriptor. */
static struct ek_conn *slot_get(struct loop *lp, int fd)
{
    if ((size_t)fd >= lp->nslots) {
        size_t n = lp->nslots ? lp->nslots : 64;
        while (n <= (size_t)fd)
            n *= 2;
        if (lp->echo.proxy != NULL) { /* --proxy-protocol: a parser slot */
            struct ek_proxy_parser **more =
                realloc(lp->echo.proxy, n * sizeof(struct ek_proxy_parser *));
            if (more == NULL)
                return NULL;
            memset(more + lp->nslots, 0,
                   (n - lp->nslots) * sizeof(struct ek_proxy_parser *));
            lp->echo.proxy = more;
        }
        struct ek_conn *grown = realloc(lp->slots, n * sizeof(*grown));
        if (grown == NULL)
            return NULL; /* the parser table may be larger: harmless */
        memset(grown + lp->nslots, 0, (n - lp->nslots) * sizeof(*grown));
        lp->slots = grown;
        lp->nslots = n;
    }
    return &lp->slots[fd];
}

/* Brings fd's registered interest to `want`. */
static int watch(struct loop *lp, int fd, unsigned want)
{
    struct ek_conn *c = &lp->slots[fd];
    if (c->interest == want)
        return 0;
    int err = lp->be->modify(lp->state, fd, c->interest, want);
    if (err == 0)
        c->interest = (uint8_t)want;
    return err;
}

static void set_listening(struct loop *lp, bool on)
{
    if (lp->listening == on)
        return;
    for (size_t i = 0; i < lp->nlisteners; i++) {
        int err = watch(lp, lp->listeners[i], on ? EK_EV_READ : 0);
        if (err < 0)
            ek_log(EK_LOG_ERROR, "%s: cannot %s listener fd %d: %s",
                   lp->be->name, on ? "watch" : "unwatch", lp->listeners[i],
                   strerror(-err));
    }
    lp->listening = on;
}

/* Stops accepting for good (drain): unwatches the listeners and closes
 * them (loop 0 through the server, which also removes unix socket files).
 */
static void loop_stop_accepting(void *arg)
{
    struct loop *lp = arg;
    set_listening(lp, false);
    for (size_t i = 0; i < lp->nlisteners; i++) {
        lp->slots[lp->listeners[i]].tag = SLOT_FREE;
        if (lp->own_listeners)
            close(lp->listeners[i]);
    }
    lp->nlisteners = 0;
    if (lp->index == 0)
        ek_server_close_listeners(lp->srv);
}

static void conn_close(struct loop *lp, int fd, int err)
{
    struct ek_conn *c = &lp->slots[fd];
    if ((c->flags & EK_CONN_PROXY) && lp->echo.proxy != NULL) {
        /* closed before its header ended */
        free(lp->echo.proxy[fd]);
        lp->echo.proxy[fd] = NULL;
    }
    watch(lp, fd, 0); /* before close: poll/select/libkqueue keep state */
    ek_conn_release(c);
    c->tag = SLOT_FREE;
    close(fd);
    lp->nconns--;
    ek_server_conn_done(lp->srv, err);
    /* A descriptor is free again: if fd exhaustion paused accepting, try
     * again now rather than at the end of the pause. */
    ek_accept_resume(lp->acc);
}

static void conn_open(struct loop *lp, int fd)
{
    struct ek_conn *c = slot_get(lp, fd);
    if (c == NULL) {
        ek_log(EK_LOG_ERROR, "out of memory for fd %d", fd);
        close(fd);
        ek_server_conn_done(lp->srv, -ENOMEM);
        return;
    }
    memset(c, 0, sizeof(*c));
    c->tag = SLOT_CONN;
    c->active_tick = lp->idle.now;
    lp->nconns++;
    if (lp->echo.proxy != NULL) {
        lp->echo.proxy[fd] = calloc(1, sizeof(struct ek_proxy_parser));
        if (lp->echo.proxy[fd] == NULL) {
            ek_log(EK_LOG_ERROR, "out of memory for fd %d", fd);
            conn_close(lp, fd, -ENOMEM);
            return;
        }
        c->flags |= EK_CONN_PROXY;
    }
    int err = watch(lp, fd, EK_EV_READ);
    if (err < 0) {
        ek_log(EK_LOG_ERROR, "%s: cannot watch fd %d: %s", lp->be->name, fd,
               strerror(-err));
        conn_close(lp, fd, err);
    }
}

static void accept_some(struct loop *lp, int listen_fd)
{
    struct ek_server *srv = lp->srv;
    for (int i = 0; i < EK_LOOP_ACCEPTS; i++) {
        int fd = ek_net_accept(listen_fd, true);
        if (fd == -EAGAIN)
            return;
        if (fd < 0) {
            if (ek_server_accept_failed(srv, lp->acc, fd)) {
                set_listening(lp, false);
                return;
            }
            continue;
        }
        if (fd >= lp->be->fd_limit) {
            char why[96];
            snprintf(why, sizeof(why), "fd %d is beyond %s's limit of %d", fd,
                     lp->be->name, lp->be->fd_limit);
            ek_server_refuse(srv, lp->acc, fd, why);
            continue;
        }
        if (ek_server_admit(srv, lp->acc, fd))
            conn_open(lp, fd);
    }
}

static void conn_event(struct loop *lp, int fd, unsigned events)
{
    struct ek_conn *c = &lp->slots[fd];
    int rc = EK_CONN_KEEP;

    /* Write first: draining the queue makes room for the read. */
    if (events & EK_EV_WRITE)
        rc = ek_conn_writable(c, fd, &lp->echo);
    if (rc == EK_CONN_KEEP && (events & EK_EV_READ))
        rc = ek_conn_readable(c, fd, &lp->echo);
    /* Level-triggered: an event means bytes moved. While the PROXY header
     * is read the stamp stays at the accept, so that a header sent a byte
     * at a time still has EK_PROXY_HEADER_MS in all. */
    if (!(c->flags & EK_CONN_PROXY))
        c->active_tick = lp->idle.now;
    if (rc != EK_CONN_KEEP) {
        conn_close(lp, fd, rc < 0 ? rc : 0);
        return;
    }
    unsigned want = ek_conn_want(c, lp->echo.max_queue);
    int err = want == 0 ? 0 : watch(lp, fd, want);
    if (want == 0 || err < 0)
        conn_close(lp, fd, err);
}

/* One batch of datagrams per event: level-triggered, the next wait comes
 * back at once if more are queued, and connections get their turn. */
static void serve_udp(struct loop *lp, int fd)
{
    for (size_t i = 0; i < lp->nudp; i++)
        if (lp->udp_fds[i] == fd) {
            int rc = ek_udp_service(&lp->udp, fd, &lp->udp_local[i]);
            if (rc < 0)
                ek_log(EK_LOG_ERROR, "udp fd %d: %s", fd, strerror(-rc));
            return;
        }
}

static void dispatch(struct loop *lp, const struct ek_event *ev)
{
    /* A stale event (for a descriptor closed earlier in this batch, maybe
     * already reused by an accept) is harmless: handlers treat events as
     * hints and meet EAGAIN. */
    if ((size_t)ev->fd >= lp->nslots)
        return;
    switch (lp->slots[ev->fd].tag) {
    case SLOT_CONN:
        conn_event(lp, ev->fd, ev->events);
        break;
    case SLOT_LISTENER:
        if (lp->listening && ek_group_phase(lp->group, lp->index) == EK_RUNNING)
            accept_some(lp, ev->fd);
        break;
    case SLOT_WAKE:
        ek_group_woken(lp->group, lp->index);
        break;
    case SLOT_UDP:
        serve_udp(lp, ev->fd);
        break;
    default:
        break;
    }
}

static int register_fixed(struct loop *lp, int fd, enum slot_kind kind)
{
    struct ek_conn *c = slot_get(lp, fd);
    if (c == NULL)
        return -ENOMEM;
    c->tag = (uint8_t)kind;
    return watch(lp, fd, kind == SLOT_LISTENER ? 0 : EK_EV_READ);
}

/* The UDP side of a loop: buffers, and each socket's own address (the
 * echo must not answer datagrams claiming to come from it). */
static int open_udp(struct loop *lp)
{
    int err = ek_udp_local_addrs(lp->udp_fds, lp->nudp, &lp->udp_local);
    if (err < 0)
        return err;
    return ek_udp_init(&lp->udp, lp->srv, &lp->srv->stats->loop[lp->index],
                       lp->srv->cfg->threads);
}

static int loop_init(void *arg, struct ek_group *g, unsigned index)
{
    struct loop *lp = arg;
    struct ek_server *srv = ek_group_server(g);
    /* First, so that loop_free after an early failure closes no fd 0. */
    lp->echo.pipe[0] = lp->echo.pipe[1] = -1;
    lp->group = g;
    lp->srv = srv;
    lp->index = index;
    lp->be = srv->cfg->model->backend;
    lp->acc = ek_group_acceptor(g, index);
    ek_idle_init(&lp->idle, srv->cfg->idle_timeout_ms,
                 srv->cfg->proxy_protocol ? EK_PROXY_HEADER_MS : 0);
    lp->echo.srv = srv;
    lp->echo.acc = lp->acc;
    if (srv->cfg->proxy_protocol) {
        lp->echo.proxy = calloc(64, sizeof(struct ek_proxy_parser *));
        if (lp->echo.proxy == NULL)
            return -ENOMEM;
        if (slot_get(lp, 63) == NULL) /* both tables start at 64 */
            return -ENOMEM;
    }
    lp->echo.max_queue = srv->cfg->max_queue;
    lp->echo.buf_size = EK_LOOP_READ_BUF < srv->cfg->max_queue
                            ? EK_LOOP_READ_BUF
                            : srv->cfg->max_queue;
    lp->echo.counters = &lp->srv->stats->loop[index];
#ifdef __linux__
    /* For connections that stream (ek_conn.h); without it they copy. */
    if (getenv("EK_NO_SPLICE") == NULL &&
        pipe2(lp->echo.pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        lp->echo.pipe[0] = lp->echo.pipe[1] = -1;
#endif
    lp->echo.buf = malloc(lp->echo.buf_size);
    lp->listeners = calloc(srv->nlisteners + 1, sizeof(*lp->listeners));
    lp->state = lp->be->create();
    if (lp->echo.buf == NULL || lp->listeners == NULL || lp->state == NULL)
        return -(errno ? errno : ENOMEM);

    lp->udp_fds = calloc(srv->nlisteners + 1, sizeof(*lp->udp_fds));
    if (lp->udp_fds == NULL)
        return -ENOMEM;
    int err = ek_group_loop_sockets(g, index, lp->listeners, &lp->nlisteners,
                                    lp->udp_fds, &lp->nudp, &lp->own_listeners);
    if (err == 0 && lp->nudp > 0)
        err = open_udp(lp);
    if (err == 0)
        err = register_fixed(lp, ek_group_wake_fd(g, index), SLOT_WAKE);
    for (size_t i = 0; err == 0 && i < lp->nlisteners; i++)
        err = register_fixed(lp, lp->listeners[i], SLOT_LISTENER);
    for (size_t i = 0; err == 0 && i < lp->nudp; i++)
        err = register_fixed(lp, lp->udp_fds[i], SLOT_UDP);
    if (err == 0)
        set_listening(lp, true);
    return err;
}

static void loop_free(void *arg)
{
    struct loop *lp = arg;
    for (size_t fd = 0; fd < lp->nslots; fd++)
        if (lp->slots[fd].tag == SLOT_CONN)
            conn_close(lp, (int)fd, 0);
    if (lp->own_listeners) {
        for (size_t i = 0; i < lp->nlisteners; i++)
            close(lp->listeners[i]);
        for (size_t i = 0; i < lp->nudp; i++)
            close(lp->udp_fds[i]);
    }
    ek_udp_free(&lp->udp);
    free(lp->udp_fds);
    free(lp->udp_local);
    if (lp->state != NULL)
        lp->be->destroy(lp->state);
    for (int i = 0; i < 2; i++)
        if (lp->echo.pipe[i] >= 0)
            close(lp->echo.pipe[i]);
    free(lp->slots);
    free(lp->echo.proxy);
    free(lp->listeners);
    free(lp->echo.buf);
}

/* Resumes accepting once an fd-exhaustion pause is over. */
static void maybe_resume_accepts(struct loop *lp)
{
    if (!lp->listening && lp->nlisteners > 0 &&
        ek_group_phase(lp->group, lp->index) == EK_RUNNING &&
        !ek_accept_paused(lp->acc))
        set_listening(lp, true);
}

/* --idle-timeout: closes the connections on which nothing moved. */
static void sweep_idle(struct loop *lp)
{
    for (size_t fd = 0; fd < lp->nslots; fd++) {
        struct ek_conn *c = &lp->slots[fd];
        if (c->tag == SLOT_CONN &&
            ek_idle_sweep_closes(lp->srv, lp->acc, &lp->idle, (int)fd,
                                 c->active_tick, c->flags & EK_CONN_PROXY))
            conn_close(lp, (int)fd, 0);
    }
}

static int loop_turn(void *arg, int timeout_ms)
{
    struct loop *lp = arg;
    maybe_resume_accepts(lp);
    timeout_ms = ek_timeout_min(timeout_ms, ek_accept_timeout(lp->acc));
    timeout_ms = ek_timeout_min(timeout_ms, ek_idle_timeout(&lp->idle));
    int n = lp->be->wait(lp->state, lp->events, EK_LOOP_EVENTS, timeout_ms);
    if (n == -EINTR)
        return 0;
    if (n < 0)
        return n;
    ek_idle_tick(&lp->idle);
    for (int i = 0; i < n; i++)
        dispatch(lp, &lp->events[i]);
    if (ek_idle_sweep_due(&lp->idle))
        sweep_idle(lp);
    return 0;
}

static size_t loop_conns(void *arg)
{
    return ((struct loop *)arg)->nconns;
}

static const struct ek_loop_ops loop_ops = {
    .size = sizeof(struct loop),
    .init = loop_init,
    .turn = loop_turn,
    .conns = loop_conns,
    .stop_accepting = loop_stop_accepting,
    .free = loop_free,
};

int ek_run_loop(struct ek_server *srv, const struct ek_model *self)
{
    return ek_group_run(srv, &loop_ops, self->name);
}
