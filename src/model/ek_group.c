#include "ek_group.h"
#include "ek_net.h"
#include "ek_platform.h"
#include "ek_signal.h"
#include "ek_util.h"
#include "ek_listen.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct member {
    struct ek_group *group;
    unsigned index;
    void *loop;                  /* ops->size bytes */
    int control[2];              /* loops > 0: wake pipe */
    struct ek_acceptor acceptor; /* loops > 0 */
    bool stopped_accepting;
    pthread_t tid;
};

struct ek_group {
    struct ek_server *srv;
    const struct ek_loop_ops *ops;
    const char *name;
    _Atomic int phase;   /* enum ek_server_phase, as loop 0 published */
    atomic_uint running; /* loops > 0 whose thread has not ended */
    struct member *members;
    unsigned started; /* members initialised (and, past 0, running) */
};

struct ek_server *ek_group_server(struct ek_group *g)
{
    return g->srv;
}

int ek_group_wake_fd(struct ek_group *g, unsigned index)
{
    return index == 0 ? g->srv->sig_fd : g->members[index].control[0];
}

struct ek_acceptor *ek_group_acceptor(struct ek_group *g, unsigned index)
{
    return index == 0 ? &g->srv->acceptor : &g->members[index].acceptor;
}

enum ek_server_phase ek_group_phase(struct ek_group *g, unsigned index)
{
    /* Loop 0 alone watches the drain deadline: it logs what is cut and
     * publishes EK_STOPPING, which wakes the others. */
    if (index == 0)
        return g->srv->phase;
    return (enum ek_server_phase)atomic_load_explicit(&g->phase,
                                                      memory_order_acquire);
}

/* Loop 0: tells the other loops the server's phase, if it changed. */
static void publish_phase(struct ek_group *g)
{
    enum ek_server_phase p = g->srv->phase;
    if (atomic_load_explicit(&g->phase, memory_order_relaxed) == (int)p)
        return;
    atomic_store_explicit(&g->phase, p, memory_order_release);
    for (unsigned i = 1; i < g->started; i++) {
        char byte = 1;
        (void)!write(g->members[i].control[1], &byte, 1);
    }
}

void ek_group_woken(struct ek_group *g, unsigned index)
{
    if (index == 0) {
        ek_server_read_signals(g->srv);
        publish_phase(g);
        return;
    }
    char buf[64];
    while (read(g->members[index].control[0], buf, sizeof(buf)) > 0)
        ;
}

/* SO_REUSEPORT copies (or, for sockets systemd passed, duplicates) of
 * the server's listeners of one kind. */
static int open_copies(struct ek_group *g, int *fds, uint8_t *tps, bool udp)
{
    const struct ek_server *srv = g->srv;
    int n = 0;
    for (size_t i = 0; i < srv->nlisteners; i++) {
        const struct ek_listener *l = &srv->listeners[i];
        if (l->udp != udp || l->addr.ss.ss_family == AF_UNIX)
            continue; /* no SO_REUSEPORT for unix sockets: loop 0's */
        /* A socket systemd passed may lack SO_REUSEPORT: every loop then
         * takes from the same socket, through a descriptor of its own. */
        int fd = l->inherited ? fcntl(l->fd, F_DUPFD_CLOEXEC, 3)
                 : udp        ? ek_net_bind_udp(&l->addr, true)
                       : ek_net_listen(&l->addr, EK_LISTEN_BACKLOG, true);
        if (fd < 0 && l->inherited)
            fd = -errno;
        if (fd < 0) {
            while (n > 0)
                close(fds[--n]);
            return fd;
        }
        if (tps != NULL)
            tps[n] = (uint8_t)l->tp->id;
        fds[n++] = fd;
    }
    return n;
}

int ek_group_loop_sockets(struct ek_group *g, unsigned index, int *tcp,
                          uint8_t *tcp_tp, size_t *ntcp, int *udp, size_t *nudp,
                          bool *own)
{
    const struct ek_server *srv = g->srv;
    *ntcp = *nudp = 0;
    *own = index != 0;
    if (index == 0) {
        for (size_t i = 0; i < srv->nlisteners; i++) {
            if (srv->listeners[i].udp) {
                udp[(*nudp)++] = srv->listeners[i].fd;
            } else {
                tcp_tp[*ntcp] = (uint8_t)srv->listeners[i].tp->id;
                tcp[(*ntcp)++] = srv->listeners[i].fd;
            }
        }
        return 0;
    }
    int n = open_copies(g, tcp, tcp_tp, false);
    if (n < 0)
        return n;
    *ntcp = (size_t)n;
    n = open_copies(g, udp, NULL, true);
    if (n < 0) {
        while (*ntcp > 0)
            close(tcp[--*ntcp]);
        return n;
    }
    *nudp = (size_t)n;
    return 0;
}

/* Once per loop, when the drain starts. */
static void stop_accepting(struct member *m)
{
    if (m->stopped_accepting)
        return;
    m->stopped_accepting = true;
    m->group->ops->stop_accepting(m->loop);
}

/* Frees what a member's loop holds; called by the loop's own thread. */
static void end_loop(struct member *m)
{
    if (m->loop != NULL)
        m->group->ops->free(m->loop);
}

/* Frees the member itself; called by the main thread once the loop's
 * thread is joined, so that loop 0 never writes to a closed wake pipe
 * (whose fd number a new connection could have taken). */
static void free_member(struct member *m)
{
    for (int i = 0; i < 2; i++)
        if (m->control[i] >= 0)
            close(m->control[i]);
    free(m->loop);
    m->loop = NULL;
}

/* A loop other than 0: serves until the published phase says stop, or
 * until its connections are gone once draining. */
static void *member_main(void *arg)
{
    struct member *m = arg;
    struct ek_group *g = m->group;
    for (;;) {
        enum ek_server_phase p = ek_group_phase(g, m->index);
        if (p == EK_STOPPING || p == EK_FORCED)
            break;
        if (p == EK_DRAINING) {
            stop_accepting(m);
            if (g->ops->conns(m->loop) == 0)
                break;
        }
        int err = g->ops->turn(m->loop, -1);
        if (err < 0) {
            ek_log(EK_LOG_ERROR, "%s loop %u: %s", g->name, m->index,
                   strerror(-err));
            break;
        }
    }
    end_loop(m);
    atomic_fetch_sub_explicit(&g->running, 1, memory_order_release);
    ek_signal_wake(); /* loop 0 waits for the count to reach 0 */
    return NULL;
}

static int init_member(struct ek_group *g, unsigned index)
{
    struct member *m = &g->members[index];
    m->group = g;
    m->index = index;
    m->control[0] = m->control[1] = -1;
    m->loop = calloc(1, g->ops->size);
    if (m->loop == NULL)
        return -ENOMEM;
    int err = index > 0 ? ek_pipe(m->control, O_CLOEXEC | O_NONBLOCK) : 0;
    if (err < 0) {
        /* ops->free is for what ops->init began: not for this zeroed
         * loop, whose zero fds it would close. */
        free(m->loop);
        m->loop = NULL;
        return err;
    }
    return g->ops->init(m->loop, g, index);
}

static int start_members(struct ek_group *g, unsigned wanted)
{
    sigset_t saved;
    ek_signal_block_all(&saved); /* signals stay with loop 0 */
    int err = 0;
    for (unsigned i = 1; i < wanted && err == 0; i++) {
        struct member *m = &g->members[i];
        err = init_member(g, i);
        atomic_fetch_add_explicit(&g->running, 1, memory_order_relaxed);
        if (err == 0)
            err = -pthread_create(&m->tid, NULL, member_main, m);
        if (err < 0) {
            end_loop(m);
            free_member(m);
            atomic_fetch_sub_explicit(&g->running, 1, memory_order_relaxed);
        } else {
            g->started = i + 1;
        }
    }
    ek_signal_restore(&saved);
    return err;
}

/* Loop 0: runs until the server stops and every other loop has ended. */
static int run_loop0(struct ek_group *g)
{
    struct member *m = &g->members[0];
    struct ek_server *srv = g->srv;
    while (!ek_server_should_stop(srv)) {
        publish_phase(g);
        if (srv->phase == EK_DRAINING) {
            stop_accepting(m);
            if (g->ops->conns(m->loop) == 0 &&
                atomic_load_explicit(&g->running, memory_order_acquire) == 0)
                break;
        }
        int timeout = srv->phase == EK_DRAINING
                          ? ek_timeout_until(srv->drain_deadline_ms)
                          : -1;
        int err = g->ops->turn(m->loop, timeout);
        if (err < 0) {
            ek_log(EK_LOG_ERROR, "%s: %s", g->name, strerror(-err));
            srv->phase = EK_STOPPING;
            publish_phase(g);
            return err;
        }
    }
    publish_phase(g); /* STOPPING or FORCED: the others close and end */
    return 0;
}

int ek_group_run(struct ek_server *srv, const struct ek_loop_ops *ops,
                 const char *name)
{
    unsigned wanted = srv->cfg->threads ? srv->cfg->threads : 1;
    struct ek_group g = {.srv = srv, .ops = ops, .name = name, .started = 1};
    atomic_init(&g.phase, EK_RUNNING);
    atomic_init(&g.running, 0);
    g.members = calloc(wanted, sizeof(*g.members));
    if (g.members == NULL) {
        ek_log(EK_LOG_ERROR, "out of memory");
        return -ENOMEM;
    }

    int status;
    int err = init_member(&g, 0);
    if (err == 0 && wanted > 1)
        err = start_members(&g, wanted);
    if (err < 0) {
        ek_log(EK_LOG_ERROR, "%s: cannot start: %s", name, strerror(-err));
        srv->phase = EK_STOPPING;
        publish_phase(&g);
        status = err;
    } else {
        status = run_loop0(&g);
    }
    for (unsigned i = 1; i < g.started; i++) {
        pthread_join(g.members[i].tid, NULL);
        free_member(&g.members[i]);
    }
    end_loop(&g.members[0]);
    free_member(&g.members[0]);
    free(g.members);
    return status;
}
