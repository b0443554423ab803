/*
 * model_iterative: the tutorial's blocking server. One client at a time;
 * the next ones wait in the listen backlog until the current one closes.
 *
 * The connection is served inline by the supervisor's accept loop. While
 * it is served, the wait includes the signal pipe, so SIGTERM still starts
 * a drain (the listeners close, clients in the backlog are reset) and the
 * drain deadline still cuts the connection.
 */
#include "ek_blocking.h"
#include "ek_admit.h"
#include "ek_listen.h"
#include "ek_model.h"
#include "ek_server.h"
#include "ek_supervisor.h"

#include <stdbool.h>
#include <unistd.h>

#define EK_ITERATIVE_BUF (64 * 1024)

struct iterative {
    char buf[EK_ITERATIVE_BUF];
};

static void serve_inline(struct ek_server *srv, void *ctx, int fd,
                         const struct ek_transport *tp)
{
    struct iterative *it = ctx;
    struct ek_blocking b;
    int rc = ek_blocking_open(&b, srv, fd, tp, it->buf, sizeof(it->buf));

    for (bool again = rc == 0; again;) {
        int64_t deadline =
            srv->phase == EK_DRAINING ? srv->drain_deadline_ms : -1;
        rc = ek_echo_blocking(fd, &b, srv->sig_fd, deadline);
        if (rc == EK_ECHO_WOKEN) {
            if (ek_server_read_signals(srv) & EK_NEWS_DRAIN)
                ek_listeners_close(srv, false);
            again = srv->phase != EK_FORCED;
        } else {
            again = rc == EK_ECHO_TIMEOUT && !ek_server_should_stop(srv);
        }
    }
    ek_admit_conn_done(srv, ek_blocking_close(&b, fd, rc));
}

int ek_run_iterative(struct ek_server *srv, const struct ek_model *self)
{
    (void)self;
    static struct iterative it; /* 64 KiB: not on the stack */
    struct ek_supervisor_ops ops = {.start = serve_inline, .ctx = &it};
    return ek_supervise(srv, &ops);
}
