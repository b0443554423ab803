#include "ek_supervisor.h"
#include "ek_admit.h"
#include "ek_net.h"
#include "ek_platform.h"
#include "ek_server.h"
#include "ek_util.h"
#include "ek_listen.h"
#include "ek_stats.h"
#include "ek_udp.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* After a cut, how long to wait for workers to report that they ended. */
#define EK_CUT_GRACE_MS 2000

static void handle_signals(struct ek_server *srv,
                           const struct ek_supervisor_ops *ops)
{
    unsigned news = ek_server_read_signals(srv);
    /* The pipe also carries "a worker ended" (threads write a wake byte,
     * children send SIGCHLD): an fd may be free again, so end an accept
     * pause now. At worst one accept fails again and re-pauses. */
    ek_acceptor_resume(&srv->acceptor);
    if ((news & EK_NEWS_CHILD) && ops->reap != NULL)
        ops->reap(srv, ops->ctx);
    if (news & EK_NEWS_DRAIN)
        ek_listeners_close(srv, false);
}

static void accept_some(struct ek_server *srv,
                        const struct ek_supervisor_ops *ops,
                        const struct ek_listener *l)
{
    /* start() may serve inline and handle a drain meanwhile, which closes
     * the listener: re-check before every accept. */
    while (srv->phase == EK_RUNNING && l->fd >= 0 &&
           !ek_acceptor_paused(&srv->acceptor)) {
        int fd = ek_net_accept(l->fd, false);
        if (fd == -EAGAIN)
            return;
        if (fd < 0) {
            if (ek_admit_accept_failed(srv, &srv->acceptor, fd))
                return;
            continue;
        }
        if (ek_admit_conn(srv, &srv->acceptor, fd))
            ops->start(srv, ops->ctx, fd, l->tp);
    }
}

/* Waits, reading the signal pipe, until every connection has reported
 * done or the grace period ends. */
static void wait_for_workers(struct ek_server *srv,
                             const struct ek_supervisor_ops *ops)
{
    int64_t until = ek_now_ms() + EK_CUT_GRACE_MS;
    while (ek_stat_get(&srv->stats->active) > 0 && ek_now_ms() < until) {
        struct pollfd p = {.fd = srv->sig_fd, .events = POLLIN};
        if (poll(&p, 1, ek_timeout_until(until)) > 0)
            handle_signals(srv, ops);
    }
    uint64_t left = ek_stat_get(&srv->stats->active);
    if (left > 0)
        ek_log(EK_LOG_WARN, "%llu connection%s did not end in time",
               (unsigned long long)left, left == 1 ? "" : "s");
}

int ek_supervise(struct ek_server *srv, const struct ek_supervisor_ops *ops)
{
    struct pollfd *pfd = calloc(srv->nlisteners + 1, sizeof(*pfd));
    struct ek_listener **which =
        calloc(srv->nlisteners + 1, sizeof(struct ek_listener *));
    struct ek_udp_thread *udp = NULL;
    int err = pfd == NULL || which == NULL ? -ENOMEM : 0;
    /* UDP has no connection to hand to a thread or child: one thread of
     * its own echoes the datagrams of every UDP socket. */
    if (err == 0)
        err = ek_udp_thread_start(srv, &udp);
    if (err < 0) {
        ek_log(EK_LOG_ERROR, "cannot start serving: %s", strerror(-err));
        free(pfd);
        free(which);
        return err;
    }

    int status = 0;
    for (;;) {
        if (ek_server_should_stop(srv)) {
            if (ops->cut != NULL) {
                ops->cut(srv, ops->ctx);
                wait_for_workers(srv, ops);
            }
            break;
        }
        if (srv->phase == EK_DRAINING && ek_stat_get(&srv->stats->active) == 0)
            break;

        nfds_t n = 0;
        pfd[n++] = (struct pollfd){.fd = srv->sig_fd, .events = POLLIN};
        bool accepting =
            srv->phase == EK_RUNNING && !ek_acceptor_paused(&srv->acceptor);
        for (size_t i = 0; accepting && i < srv->nlisteners; i++) {
            if (srv->listeners[i].udp)
                continue;
            which[n] = &srv->listeners[i];
            pfd[n++] =
                (struct pollfd){.fd = srv->listeners[i].fd, .events = POLLIN};
        }

        int rc = poll(pfd, n, ek_server_timeout(srv));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0) {
            status = -errno;
            ek_log(EK_LOG_ERROR, "poll: %s", strerror(-status));
            break;
        }
        if (pfd[0].revents & POLLIN)
            handle_signals(srv, ops);
        for (nfds_t i = 1; i < n; i++)
            if (pfd[i].revents & POLLIN)
                accept_some(srv, ops, which[i]);
    }
    ek_udp_thread_stop(udp);
    free(pfd);
    free(which);
    return status;
}

int ek_cut_pipe_open(struct ek_cut_pipe *p)
{
    int fds[2];
    int err = ek_pipe(fds, O_CLOEXEC | O_NONBLOCK);
    if (err < 0)
        return err;
    p->rd = fds[0];
    p->wr = fds[1];
    return 0;
}

void ek_cut_pipe_fire(struct ek_cut_pipe *p)
{
    char byte = 1;
    /* Nobody reads it: one byte keeps the read end readable for all. */
    if (p->wr >= 0)
        (void)!write(p->wr, &byte, 1);
}

void ek_cut_pipe_close(struct ek_cut_pipe *p)
{
    if (p->rd >= 0)
        close(p->rd);
    if (p->wr >= 0)
        close(p->wr);
    p->rd = p->wr = -1;
}
