/*
 * model_loop: the event loop behind --io select|poll|epoll|kqueue.
 *
 * One thread per loop, non-blocking sockets, one backend (ek_backend.h)
 * deciding how to wait. The loop's chassis (ek_loop.h) keeps a slot per
 * descriptor, so finding the state for an event is an index; this file
 * keeps only the readiness dispatch. The echo itself is the connection
 * layer's (ek_conn.h): a connection costs its 48-byte slot plus its
 * queue, which is empty unless a send would block.
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
#include "ek_admit.h"
#include "ek_conn.h"
#include "ek_group.h"
#include "ek_loop.h"
#include "ek_model.h"
#include "ek_net.h"
#include "ek_platform.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Read buffer shared by all connections of a loop: one large read per
 * event keeps syscalls per byte low for bulk streams. */
#define EK_LOOP_READ_BUF ((size_t)64 * 1024)
/* Events taken per wait, and connections accepted per listener event
 * (bounded so that a connection storm cannot starve open connections). */
#define EK_LOOP_EVENTS 256
#define EK_LOOP_ACCEPTS 64

struct loop {
    struct ek_loop base; /* first: the chassis */
    const struct ek_backend *be;
    void *state;    /* the backend's */
    bool listening; /* listeners registered with the backend */
    struct ek_event events[EK_LOOP_EVENTS];
    /* Connections to read again without waiting: their transport holds
     * bytes already (TLS records read ahead), which no readiness event
     * would announce. Each is here at most once (EK_CONN_AGAIN). */
    int *again;
    size_t nagain, again_cap;
};

/* Brings fd's registered interest to `want`. */
static int watch(struct loop *lp, int fd, unsigned want)
{
    struct ek_conn *c = ek_loop_conn(&lp->base, fd);
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
    for (size_t i = 0; i < lp->base.nlisteners; i++) {
        int err = watch(lp, lp->base.listeners[i], on ? EK_EV_READ : 0);
        if (err < 0)
            ek_log(EK_LOG_ERROR, "%s: cannot %s listener fd %d: %s",
                   lp->be->name, on ? "watch" : "unwatch",
                   lp->base.listeners[i], strerror(-err));
    }
    lp->listening = on;
}

/* Stops accepting for good (drain). */
static void loop_stop_accepting(void *arg)
{
    struct loop *lp = arg;
    set_listening(lp, false);
    ek_loop_close_listeners(&lp->base);
}

static void conn_close(struct ek_loop *base, int fd, int err)
{
    watch((struct loop *)base, fd, 0); /* before close: poll/select/libkqueue
                                          keep state */
    ek_loop_conn_closed(base, fd, err);
}

static void conn_open(struct loop *lp, int fd, const struct ek_transport *tp)
{
    if (ek_loop_conn_open(&lp->base, fd, tp) == NULL)
        return;
    int err = watch(lp, fd, EK_EV_READ);
    if (err < 0) {
        ek_log(EK_LOG_ERROR, "%s: cannot watch fd %d: %s", lp->be->name, fd,
               strerror(-err));
        conn_close(&lp->base, fd, err);
    }
}

static void accept_some(struct loop *lp, int listen_fd)
{
    struct ek_server *srv = lp->base.srv;
    const struct ek_transport *tp = ek_loop_listener_tp(&lp->base, listen_fd);
    for (int i = 0; i < EK_LOOP_ACCEPTS; i++) {
        int fd = ek_net_accept(listen_fd, true);
        if (fd == -EAGAIN)
            return;
        if (fd < 0) {
            if (ek_admit_accept_failed(srv, lp->base.acc, fd)) {
                set_listening(lp, false);
                return;
            }
            continue;
        }
        if (fd >= lp->be->fd_limit) {
            char why[96];
            snprintf(why, sizeof(why), "fd %d is beyond %s's limit of %d", fd,
                     lp->be->name, lp->be->fd_limit);
            ek_admit_refuse(srv, lp->base.acc, fd, why);
            continue;
        }
        if (ek_admit_conn(srv, lp->base.acc, fd))
            conn_open(lp, fd, tp);
    }
}

/* Puts fd on the list of connections to read again this turn. Without
 * memory for it the connection is closed: its bytes would wait forever. */
static int read_again(struct loop *lp, int fd, struct ek_conn *c)
{
    if (c->flags & EK_CONN_AGAIN)
        return 0;
    if (lp->nagain == lp->again_cap) {
        size_t cap = lp->again_cap ? 2 * lp->again_cap : 64;
        int *grown = realloc(lp->again, cap * sizeof(*grown));
        if (grown == NULL)
            return -ENOMEM;
        lp->again = grown;
        lp->again_cap = cap;
    }
    lp->again[lp->nagain++] = fd;
    c->flags |= EK_CONN_AGAIN;
    return 0;
}

static void conn_event(struct loop *lp, int fd, unsigned events)
{
    struct ek_conn *c = ek_loop_conn(&lp->base, fd);
    const struct ek_conn_env *env = &lp->base.env;

    int rc = ek_conn_event(c, fd, env, events);
    if (rc != EK_CONN_KEEP) {
        conn_close(&lp->base, fd, rc < 0 ? rc : 0);
        return;
    }
    unsigned want = ek_conn_want(c, env->max_queue);
    int err = want == 0 ? 0 : watch(lp, fd, want);
    if (err == 0 && want != 0 && ek_conn_read_pending(c, env->max_queue))
        err = read_again(lp, fd, c);
    if (want == 0 || err < 0)
        conn_close(&lp->base, fd, err);
}

/* The connections whose transport held bytes at the end of their last
 * event: one read each, as if an event had come (those it leaves with
 * bytes still held go on the list for the next turn). */
static void serve_again(struct loop *lp)
{
    size_t n = lp->nagain;
    if (n == 0)
        return;
    for (size_t i = 0; i < n; i++) {
        int fd = lp->again[i];
        struct ek_conn *c = ek_loop_conn(&lp->base, fd);
        c->flags &= (uint8_t)~EK_CONN_AGAIN;
        /* Closed meanwhile, maybe reused by an accept: then a hint only. */
        if (c->kind == EK_SLOT_CONN)
            conn_event(lp, fd, EK_EV_READ);
    }
    lp->nagain -= n;
    memmove(lp->again, lp->again + n, lp->nagain * sizeof(*lp->again));
}

/* One batch of datagrams per event: level-triggered, the next wait comes
 * back at once if more are queued, and connections get their turn. */
static void serve_udp(struct loop *lp, int fd)
{
    for (size_t i = 0; i < lp->base.nudp; i++)
        if (lp->base.udp_fds[i] == fd)
            ek_loop_serve_udp(&lp->base, i);
}

static void dispatch(struct loop *lp, const struct ek_event *ev)
{
    /* A stale event (for a descriptor closed earlier in this batch, maybe
     * already reused by an accept) is harmless: handlers treat events as
     * hints and meet EAGAIN. */
    if (!ek_loop_has_slot(&lp->base, ev->fd))
        return;
    switch (ek_loop_conn(&lp->base, ev->fd)->kind) {
    case EK_SLOT_CONN:
        conn_event(lp, ev->fd, ev->events);
        break;
    case EK_SLOT_LISTENER:
        if (lp->listening &&
            ek_group_phase(lp->base.group, lp->base.index) == EK_RUNNING)
            accept_some(lp, ev->fd);
        break;
    case EK_SLOT_WAKE:
        ek_group_woken(lp->base.group, lp->base.index);
        break;
    case EK_SLOT_UDP:
        serve_udp(lp, ev->fd);
        break;
    default:
        break;
    }
}

static int register_fixed(struct loop *lp, int fd, enum ek_slot_kind kind)
{
    struct ek_conn *c = ek_loop_slot(&lp->base, fd);
    if (c == NULL)
        return -ENOMEM;
    c->kind = (uint8_t)kind;
    return watch(lp, fd, kind == EK_SLOT_LISTENER ? 0 : EK_EV_READ);
}

static int loop_init(void *arg, struct ek_group *g, unsigned index)
{
    struct loop *lp = arg;
    int err =
        ek_loop_init(&lp->base, g, index, sizeof(struct ek_conn), conn_close);
    if (err < 0)
        return err;
    struct ek_conn_env *env = &lp->base.env;
    lp->be = lp->base.srv->cfg->model->backend;
    env->buf_size =
        EK_LOOP_READ_BUF < env->max_queue ? EK_LOOP_READ_BUF : env->max_queue;
#ifdef EK_HAVE_SPLICE
    /* For connections that stream (ek_conn.h); without it they copy. */
    if (getenv("EK_NO_SPLICE") == NULL &&
        ek_pipe(env->pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        env->pipe[0] = env->pipe[1] = -1;
#endif
    env->buf = malloc(env->buf_size);
    if (env->buf == NULL)
        return -ENOMEM;
    err = lp->be->create(&lp->state);
    if (err < 0)
        return err;

    err = register_fixed(lp, ek_group_wake_fd(g, index), EK_SLOT_WAKE);
    for (size_t i = 0; err == 0 && i < lp->base.nlisteners; i++)
        err = register_fixed(lp, lp->base.listeners[i], EK_SLOT_LISTENER);
    for (size_t i = 0; err == 0 && i < lp->base.nudp; i++)
        err = register_fixed(lp, lp->base.udp_fds[i], EK_SLOT_UDP);
    if (err == 0)
        set_listening(lp, true);
    return err;
}

static void loop_free(void *arg)
{
    struct loop *lp = arg;
    struct ek_conn_env *env = &lp->base.env;
    if (lp->state != NULL)
        ek_loop_close_all(&lp->base);
    ek_loop_free(&lp->base);
    if (lp->state != NULL)
        lp->be->destroy(lp->state);
    for (int i = 0; i < 2; i++)
        if (env->pipe[i] >= 0)
            close(env->pipe[i]);
    free(env->buf);
    free(lp->again);
}

static int loop_turn(void *arg, int timeout_ms)
{
    struct loop *lp = arg;
    /* Resumes accepting once an fd-exhaustion pause is over. */
    if (!lp->listening && ek_loop_may_accept(&lp->base))
        set_listening(lp, true);
    timeout_ms = lp->nagain > 0 ? 0 : ek_loop_timeout(&lp->base, timeout_ms);
    int n = lp->be->wait(lp->state, lp->events, EK_LOOP_EVENTS, timeout_ms);
    if (n == -EINTR)
        return 0;
    if (n < 0)
        return n;
    ek_loop_tick(&lp->base);
    for (int i = 0; i < n; i++)
        dispatch(lp, &lp->events[i]);
    serve_again(lp);
    ek_loop_sweep(&lp->base);
    return 0;
}

static const struct ek_loop_ops loop_ops = {
    .size = sizeof(struct loop),
    .init = loop_init,
    .turn = loop_turn,
    .conns = ek_loop_conns,
    .stop_accepting = loop_stop_accepting,
    .free = loop_free,
};

int ek_run_loop(struct ek_server *srv, const struct ek_model *self)
{
    return ek_group_run(srv, &loop_ops, self->name);
}
