/*
 * model_iterative: the tutorial's blocking server. One client at a time;
 * the next ones wait in the listen backlog until the current one closes.
 *
 * The connection is served inline by the supervisor's accept loop. While
 * it is served, the wait includes the signal pipe, so SIGTERM still starts
 * a drain (the listeners close, clients in the backlog are reset) and the
 * drain deadline still cuts the connection.
 */
#include "ek_conn.h"
#include "ek_model.h"
#include "ek_server.h"
#include "ek_supervisor.h"

#include <sysexits.h>
#include <unistd.h>

#define EK_ITERATIVE_BUF (64 * 1024)

struct iterative {
    char buf[EK_ITERATIVE_BUF];
};

static void serve_inline(struct ek_server *srv, void *ctx, int fd)
{
    struct iterative *it = ctx;
    struct ek_proxy_parser header = {0};
    struct ek_blocking b = {.buf = it->buf,
                            .size = sizeof(it->buf),
                            .idle_ms = srv->cfg->idle_timeout_ms,
                            .srv = srv,
                            .proxy = srv->cfg->proxy_protocol ? &header : NULL};
    int rc;

    for (;;) {
        int64_t deadline =
            srv->phase == EK_DRAINING ? srv->drain_deadline_ms : -1;
        rc = ek_echo_blocking(fd, &b, srv->sig_fd, deadline,
                              &srv->stats->shared);
        if (rc == EK_ECHO_WOKEN) {
            if (ek_server_read_signals(srv) & EK_NEWS_DRAIN)
                ek_server_close_listeners(srv);
            if (srv->phase == EK_FORCED)
                break;
            continue;
        }
        if (rc == EK_ECHO_TIMEOUT && !ek_server_should_stop(srv))
            continue;
        break;
    }
    close(fd);
    if (rc == EK_ECHO_IDLE)
        ek_stat_add(&srv->stats->idle_closed, 1);
    ek_server_conn_done(srv, rc < 0 ? rc : 0);
}

int ek_run_iterative(struct ek_server *srv, const struct ek_model *self)
{
    (void)self;
    static struct iterative it; /* 64 KiB: not on the stack */
    struct ek_supervisor_ops ops = {.start = serve_inline, .ctx = &it};
    return ek_supervise(srv, &ops);
}
