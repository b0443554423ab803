/*
 * model_loop: the event loop behind --io select|poll|epoll|kqueue.
 *
 * One thread, non-blocking sockets, one backend (ek_backend.h) deciding how
 * to wait. Per descriptor the loop keeps a struct ek_conn in an array
 * indexed by fd (descriptors are small dense integers), so finding the
 * state for an event is an index, and a connection costs 32 bytes plus its
 * queue, which is empty unless a send would block.
 *
 * Interest is level-triggered everywhere: a connection wants READ while its
 * queue has room and WRITE while it holds bytes. In the usual case (the
 * echo goes out in the same call it came in) interest never changes, so
 * level triggering costs no extra syscalls over edge triggering, and it
 * gives fairness for free: one read per connection per wakeup, so a client
 * that floods cannot starve the others.
 */
#include "ek_backend.h"
#include "ek_conn.h"
#include "ek_model.h"
#include "ek_net.h"
#include "ek_server.h"
#include "ek_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

/* Read buffer shared by all connections of the loop: one large read per
 * event keeps syscalls per byte low for bulk streams. */
#define EK_LOOP_READ_BUF (64 * 1024)
/* Events taken per wait, and connections accepted per listener event
 * (bounded so that a connection storm cannot starve open connections). */
#define EK_LOOP_EVENTS 256
#define EK_LOOP_ACCEPTS 64

enum slot_kind { SLOT_FREE = 0, SLOT_LISTENER, SLOT_SIGNAL, SLOT_CONN };

struct loop {
    struct ek_server *srv;
    const struct ek_backend *be;
    void *state;           /* the backend's */
    struct ek_conn *slots; /* indexed by fd */
    size_t nslots;
    size_t nconns;  /* slots of kind SLOT_CONN */
    bool listening; /* listeners registered with the backend */
    struct ek_echo_ctx echo;
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
        struct ek_conn *grown = realloc(lp->slots, n * sizeof(*grown));
        if (grown == NULL)
            return NULL;
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
    for (size_t i = 0; i < lp->srv->nlisteners; i++) {
        int fd = lp->srv->listeners[i].fd;
        if (fd < 0)
            continue;
        int err = watch(lp, fd, on ? EK_EV_READ : 0);
        if (err < 0)
            ek_log(EK_LOG_ERROR, "%s: cannot %s %s: %s", lp->be->name,
                   on ? "watch" : "unwatch", lp->srv->listeners[i].name,
                   strerror(-err));
    }
    lp->listening = on;
}

static void conn_close(struct loop *lp, int fd, int err)
{
    struct ek_conn *c = &lp->slots[fd];
    watch(lp, fd, 0); /* before close: poll/select/libkqueue keep state */
    ek_conn_release(c);
    c->tag = SLOT_FREE;
    close(fd);
    lp->nconns--;
    ek_server_conn_done(lp->srv, err);
    /* A descriptor is free again: if fd exhaustion paused accepting, try
     * again now rather than at the end of the pause. */
    ek_server_accept_resume(lp->srv);
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
    lp->nconns++;
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
            if (ek_server_accept_failed(srv, fd)) {
                set_listening(lp, false);
                return;
            }
            continue;
        }
        if (fd >= lp->be->fd_limit) {
            char why[96];
            snprintf(why, sizeof(why), "fd %d is beyond %s's limit of %d", fd,
                     lp->be->name, lp->be->fd_limit);
            ek_server_refuse(srv, fd, why);
            continue;
        }
        if (ek_server_admit(srv, fd))
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
    if (rc != EK_CONN_KEEP) {
        conn_close(lp, fd, rc < 0 ? rc : 0);
        return;
    }
    unsigned want = ek_conn_want(c, lp->echo.max_queue);
    int err = want == 0 ? 0 : watch(lp, fd, want);
    if (want == 0 || err < 0)
        conn_close(lp, fd, err);
}

static void begin_drain(struct loop *lp)
{
    set_listening(lp, false);
    for (size_t i = 0; i < lp->srv->nlisteners; i++) {
        int fd = lp->srv->listeners[i].fd;
        if (fd >= 0)
            lp->slots[fd].tag = SLOT_FREE;
    }
    ek_server_close_listeners(lp->srv);
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
        if (lp->listening && lp->srv->phase == EK_RUNNING)
            accept_some(lp, ev->fd);
        break;
    case SLOT_SIGNAL:
        if (ek_server_read_signals(lp->srv) & EK_NEWS_DRAIN)
            begin_drain(lp);
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

static int loop_init(struct loop *lp, struct ek_server *srv,
                     const struct ek_backend *be)
{
    memset(lp, 0, sizeof(*lp));
    lp->srv = srv;
    lp->be = be;
    lp->echo.max_queue = srv->cfg->max_queue;
    lp->echo.buf_size = EK_LOOP_READ_BUF < srv->cfg->max_queue
                            ? EK_LOOP_READ_BUF
                            : srv->cfg->max_queue;
    lp->echo.stats = srv->stats;
    lp->echo.buf = malloc(lp->echo.buf_size);
    lp->state = be->create();
    if (lp->echo.buf == NULL || lp->state == NULL)
        return -(errno ? errno : ENOMEM);

    int err = register_fixed(lp, srv->sig_fd, SLOT_SIGNAL);
    for (size_t i = 0; err == 0 && i < srv->nlisteners; i++)
        err = register_fixed(lp, srv->listeners[i].fd, SLOT_LISTENER);
    if (err == 0)
        set_listening(lp, true);
    return err;
}

static void loop_free(struct loop *lp)
{
    for (size_t fd = 0; fd < lp->nslots; fd++)
        if (lp->slots[fd].tag == SLOT_CONN)
            conn_close(lp, (int)fd, 0);
    if (lp->state != NULL)
        lp->be->destroy(lp->state);
    free(lp->slots);
    free(lp->echo.buf);
}

/* Resumes accepting once an fd-exhaustion pause is over. */
static void maybe_resume_accepts(struct loop *lp)
{
    if (!lp->listening && lp->srv->phase == EK_RUNNING &&
        !ek_server_accept_paused(lp->srv))
        set_listening(lp, true);
}

int ek_run_loop(struct ek_server *srv, const struct ek_model *self)
{
    struct loop lp;
    int err = loop_init(&lp, srv, self->backend);
    if (err < 0) {
        ek_log(EK_LOG_ERROR, "%s: cannot start: %s", self->name,
               strerror(-err));
        loop_free(&lp);
        return EX_OSERR;
    }

    int status = 0;
    while (!ek_server_should_stop(srv)) {
        if (srv->phase == EK_DRAINING && lp.nconns == 0)
            break;
        maybe_resume_accepts(&lp);
        int n = lp.be->wait(lp.state, lp.events, EK_LOOP_EVENTS,
                            ek_server_timeout(srv));
        if (n == -EINTR)
            continue;
        if (n < 0) {
            ek_log(EK_LOG_ERROR, "%s: wait failed: %s", self->name,
                   strerror(-n));
            status = EX_OSERR;
            break;
        }
        for (int i = 0; i < n; i++)
            dispatch(&lp, &lp.events[i]);
    }
    loop_free(&lp);
    return status != 0 ? status : ek_server_exit_status(srv);
}
