#include "ek_loop.h"
#include "ek_admit.h"
#include "ek_listen.h"
#include "ek_group.h"
#include "ek_log.h"
#include "ek_util.h"
#include "ek_proxy.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The UDP side of a loop: buffers, and each socket's own address (the
 * echo must not answer datagrams claiming to come from it). */
static int open_udp(struct ek_loop *lp)
{
    int err = ek_udp_local_addrs(lp->udp_fds, lp->nudp, &lp->udp_local);
    if (err < 0)
        return err;
    return ek_udp_init(&lp->udp, lp->srv, lp->env.counters,
                       lp->srv->cfg->threads);
}

int ek_loop_init(struct ek_loop *lp, struct ek_group *g, unsigned index,
                 size_t slot_size,
                 void (*close_conn)(struct ek_loop *lp, int fd, int err))
{
    struct ek_server *srv = ek_group_server(g);
    const struct ek_config *cfg = srv->cfg;
    lp->group = g;
    lp->srv = srv;
    lp->index = index;
    lp->acc = ek_group_acceptor(g, index);
    lp->slot_size = slot_size;
    lp->close_conn = close_conn;
    ek_idle_init(&lp->idle, cfg->idle_timeout_ms,
                 cfg->proxy_protocol ? EK_PROXY_HEADER_MS : 0,
                 cfg->tls != NULL ? cfg->handshake_timeout_ms : 0);
    /* pipe first, so that freeing after an early failure closes no fd 0 */
    lp->env = (struct ek_conn_env){.pipe = {-1, -1},
                                   .srv = srv,
                                   .acc = lp->acc,
                                   .proxy = &ek_admit_proxy_verdicts,
                                   .counters = &srv->stats->loop[index],
                                   .idle_now = &lp->idle.now,
                                   .max_queue = cfg->max_queue};
    lp->listeners = calloc(srv->nlisteners + 1, sizeof(*lp->listeners));
    lp->listener_tps = calloc(srv->nlisteners + 1, sizeof(*lp->listener_tps));
    lp->udp_fds = calloc(srv->nlisteners + 1, sizeof(*lp->udp_fds));
    if (lp->listeners == NULL || lp->listener_tps == NULL ||
        lp->udp_fds == NULL)
        return -ENOMEM;
    int err = ek_group_loop_sockets(g, index, lp->listeners, lp->listener_tps,
                                    &lp->nlisteners, lp->udp_fds, &lp->nudp,
                                    &lp->own_listeners);
    if (err == 0 && lp->nudp > 0)
        err = open_udp(lp);
    return err;
}

void ek_loop_free(struct ek_loop *lp)
{
    if (lp->own_listeners) {
        for (size_t i = 0; i < lp->nlisteners && !lp->listeners_closed; i++)
            close(lp->listeners[i]);
        for (size_t i = 0; i < lp->nudp; i++)
            close(lp->udp_fds[i]);
    }
    ek_udp_free(&lp->udp);
    free(lp->udp_fds);
    free(lp->udp_local);
    free(lp->listeners);
    free(lp->listener_tps);
    free(lp->slots);
}

struct ek_conn *ek_loop_slot(struct ek_loop *lp, int fd)
{
    if ((size_t)fd >= lp->nslots) {
        size_t n = lp->nslots ? lp->nslots : 64;
        while (n <= (size_t)fd)
            n *= 2;
        char *grown = realloc(lp->slots, n * lp->slot_size);
        if (grown == NULL)
            return NULL;
        memset(grown + lp->nslots * lp->slot_size, 0,
               (n - lp->nslots) * lp->slot_size);
        lp->slots = grown;
        lp->nslots = n;
    }
    return ek_loop_conn(lp, fd);
}

const struct ek_transport *ek_loop_listener_tp(const struct ek_loop *lp,
                                               int listen_fd)
{
    for (size_t i = 0; i < lp->nlisteners; i++)
        if (lp->listeners[i] == listen_fd)
            return ek_transports[lp->listener_tps[i]];
    return &ek_transport_socket; /* not reached: events name our listeners */
}

struct ek_conn *ek_loop_conn_open(struct ek_loop *lp, int fd,
                                  const struct ek_transport *tp)
{
    struct ek_conn *c = ek_loop_slot(lp, fd);
    if (c != NULL)
        memset(c, 0, lp->slot_size); /* the engine's part too */
    int err = c == NULL ? -ENOMEM : ek_conn_open(c, fd, tp, &lp->srv->conn);
    if (err < 0) {
        if (err != -EBUSY) /* else refused (--max-handshakes): counted */
            ek_log(EK_LOG_ERROR, "out of memory for fd %d", fd);
        close(fd);
        ek_admit_conn_done(lp->srv, err == -EBUSY ? 0 : err);
        return NULL;
    }
    c->kind = EK_SLOT_CONN;
    c->active_tick = lp->idle.now;
    lp->nconns++;
    return c;
}

void ek_loop_conn_closed(struct ek_loop *lp, int fd, int err)
{
    struct ek_conn *c = ek_loop_conn(lp, fd);
    ek_conn_release(c);
    memset(c, 0, lp->slot_size);
    close(fd);
    lp->nconns--;
    ek_admit_conn_done(lp->srv, err);
    /* A descriptor is free again: if fd exhaustion paused accepting, try
     * again now rather than at the end of the pause. */
    ek_acceptor_resume(lp->acc);
}

/* Closes, through the engine, every connection `closes` picks. */
static void close_where(struct ek_loop *lp,
                        bool (*closes)(struct ek_loop *lp, int fd,
                                       const struct ek_conn *c))
{
    for (size_t fd = 0; fd < lp->nslots; fd++) {
        const struct ek_conn *c = ek_loop_conn(lp, (int)fd);
        if (c->kind == EK_SLOT_CONN && !(c->flags & EK_CONN_CLOSING) &&
            closes(lp, (int)fd, c))
            lp->close_conn(lp, (int)fd, 0);
    }
}

static bool always(struct ek_loop *lp, int fd, const struct ek_conn *c)
{
    (void)lp;
    (void)fd;
    (void)c;
    return true;
}

void ek_loop_close_all(struct ek_loop *lp)
{
    close_where(lp, always);
}

bool ek_loop_may_accept(struct ek_loop *lp)
{
    return lp->nlisteners > 0 && !lp->listeners_closed &&
           ek_group_phase(lp->group, lp->index) == EK_RUNNING &&
           !ek_acceptor_paused(lp->acc);
}

void ek_loop_close_listeners(struct ek_loop *lp)
{
    if (lp->listeners_closed)
        return;
    lp->listeners_closed = true;
    for (size_t i = 0; i < lp->nlisteners; i++) {
        if (ek_loop_has_slot(lp, lp->listeners[i]))
            ek_loop_conn(lp, lp->listeners[i])->kind = EK_SLOT_FREE;
        if (lp->own_listeners)
            close(lp->listeners[i]);
    }
    if (lp->index == 0)
        ek_listeners_close(lp->srv, false);
}

int ek_loop_timeout(const struct ek_loop *lp, int timeout_ms)
{
    timeout_ms = ek_timeout_min(timeout_ms, ek_acceptor_timeout(lp->acc));
    return ek_timeout_min(timeout_ms, ek_idle_timeout(&lp->idle));
}

void ek_loop_tick(struct ek_loop *lp)
{
    ek_idle_tick(&lp->idle);
}

static bool idle_closes(struct ek_loop *lp, int fd, const struct ek_conn *c)
{
    return ek_idle_sweep_closes(lp->srv, lp->acc, &lp->idle, fd, c->active_tick,
                                c->proxy != NULL,
                                ek_conn_tp(c)->handshaking(c));
}

void ek_loop_sweep(struct ek_loop *lp)
{
    if (ek_idle_sweep_due(&lp->idle))
        close_where(lp, idle_closes);
}

void ek_loop_serve_udp(struct ek_loop *lp, size_t i)
{
    int rc = ek_udp_service(&lp->udp, lp->udp_fds[i], &lp->udp_local[i]);
    if (rc < 0)
        ek_log(EK_LOG_ERROR, "udp fd %d: %s", lp->udp_fds[i], strerror(-rc));
}

size_t ek_loop_conns(void *loop)
{
    return ((struct ek_loop *)loop)->nconns;
}
