/*
 * model_process: a forked child per connection, blocking-style I/O.
 *
 * The parent accepts, forks, closes its copy of the connection and goes
 * back to accepting; SIGCHLD (through the self-pipe) makes it reap, so no
 * zombie outlives a loop iteration. --max-conns bounds live children.
 *
 * A child ignores SIGINT/SIGTERM (a ^C in the terminal reaches the whole
 * process group; the parent alone decides), serves its one connection and
 * _exits, without running atexit handlers or flushing the parent's stdio.
 * At the drain deadline the parent fires the cut pipe, which every child
 * polls beside its socket. Counters are in shared memory (ek_stats.h).
 */
#include "ek_blocking.h"
#include "ek_admit.h"
#include "ek_model.h"
#include "ek_platform.h"
#include "ek_server.h"
#include "ek_signal.h"
#include "ek_supervisor.h"
#include "ek_listen.h"
#include "ek_stats.h"

#include <errno.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define EK_PROCESS_BUF (16 * 1024)

static _Noreturn void child_main(struct ek_server *srv, struct ek_cut_pipe *cut,
                                 int fd, const struct ek_transport *tp)
{
    char buf[EK_PROCESS_BUF];
    struct ek_blocking b;

    /* Nothing of the parent's is ours: not the listeners (closing them
     * here does not unlink unix socket files), the pidfile and its lock,
     * the /metrics listener and its clients, the cut pipe's write end nor
     * the signal pipe. A child that outlived a killed parent would hold
     * them, and a new server could not take the port or the pidfile. Only
     * stdio, our client and the cut pipe's read end stay. */
    const int keep[] = {fd, cut->rd};
    ek_close_all_but(keep, sizeof(keep) / sizeof(keep[0]));

    int rc = ek_blocking_open(&b, srv, fd, tp, buf, sizeof(buf));
    if (rc == 0)
        rc = ek_echo_blocking(fd, &b, cut->rd, -1);
    /* The parent counts the end when it reaps; an error is ours to count. */
    int err = ek_blocking_close(&b, fd, rc);
    if (err < 0)
        ek_stat_add(&srv->stats->conn_errors, 1);
    _exit(err < 0 ? 1 : 0);
}

static void start_child(struct ek_server *srv, void *ctx, int fd,
                        const struct ek_transport *tp)
{
    struct ek_cut_pipe *cut = ctx;
    sigset_t saved;

    /* Signals blocked across fork: a signal arriving in the child before
     * its handlers are reset must not run the parent's handler there. */
    ek_signal_block_all(&saved);
    pid_t pid = fork();
    if (pid == 0) {
        ek_signal_child_reset();
        ek_signal_restore(&saved);
        child_main(srv, cut, fd, tp);
    }
    int err = errno;
    ek_signal_restore(&saved);
    close(fd);
    if (pid < 0) {
        ek_log(EK_LOG_ERROR, "fork: %s", strerror(err));
        ek_admit_conn_done(srv, -err);
    }
}

/* Reaps every child that has exited. The count of active connections
 * drops here, in the parent, so it never includes a dead child. */
static void reap_children(struct ek_server *srv, void *ctx)
{
    (void)ctx;
    for (;;) {
        int status;
        pid_t pid = waitpid(-1, &status, WNOHANG);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid <= 0)
            return;
        /* The child counted its own errors; only a crash is news here. */
        if (WIFSIGNALED(status))
            ek_log(EK_LOG_ERROR, "child %d killed by signal %d", (int)pid,
                   WTERMSIG(status));
        ek_admit_conn_done(srv, 0);
    }
}

static void cut_children(struct ek_server *srv, void *ctx)
{
    (void)srv;
    ek_cut_pipe_fire(ctx);
}

int ek_run_process(struct ek_server *srv, const struct ek_model *self)
{
    struct ek_cut_pipe cut;
    (void)self;

    int err = ek_signal_watch_children();
    if (err == 0)
        err = ek_cut_pipe_open(&cut);
    if (err < 0) {
        ek_log(EK_LOG_ERROR, "process: %s", strerror(-err));
        return err;
    }
    struct ek_supervisor_ops ops = {.start = start_child,
                                    .reap = reap_children,
                                    .cut = cut_children,
                                    .ctx = &cut};
    int status = ek_supervise(srv, &ops);
    reap_children(srv, NULL);
    ek_cut_pipe_close(&cut);
    return status;
}
