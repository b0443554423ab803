/*
 * model_thread: a thread per connection, blocking-style I/O.
 *
 * The supervisor accepts; each admitted connection gets a detached thread
 * with a small stack that echoes through a 16 KiB buffer until the client
 * closes. --max-conns bounds the number of threads.
 *
 * Threads start with every signal blocked, so signals reach only the main
 * thread's self-pipe. A finished thread wakes the main thread (an fd is
 * free again). At the drain deadline the main thread fires the cut pipe,
 * which every worker polls beside its socket.
 */
#include "ek_conn.h"
#include "ek_model.h"
#include "ek_server.h"
#include "ek_signal.h"
#include "ek_supervisor.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#define EK_THREAD_BUF (16 * 1024)
/* Enough for the buffer, libc and sanitizers; only touched pages cost. */
#define EK_THREAD_STACK (256 * 1024)

struct thread_model {
    struct ek_cut_pipe cut;
    pthread_attr_t attr;
};

struct worker {
    struct ek_server *srv;
    struct thread_model *tm;
    int fd;
};

static void *worker_main(void *arg)
{
    struct worker w = *(struct worker *)arg;
    char buf[EK_THREAD_BUF];
    struct ek_blocking b = {.buf = buf, .size = sizeof(buf)};

    free(arg);
    int rc = ek_echo_blocking(w.fd, &b, w.tm->cut.rd, -1, w.srv->stats);
    close(w.fd);
    ek_server_conn_done(w.srv, rc < 0 ? rc : 0);
    ek_signal_wake();
    return NULL;
}

static void start_thread(struct ek_server *srv, void *ctx, int fd)
{
    struct thread_model *tm = ctx;
    struct worker *w = malloc(sizeof(*w));
    int err = ENOMEM;

    if (w != NULL) {
        pthread_t tid;
        sigset_t saved;
        *w = (struct worker){.srv = srv, .tm = tm, .fd = fd};
        ek_signal_block_all(&saved);
        err = pthread_create(&tid, &tm->attr, worker_main, w);
        ek_signal_restore(&saved);
        if (err == 0)
            return;
        free(w);
    }
    ek_log(EK_LOG_ERROR, "cannot start a thread: %s", strerror(err));
    close(fd);
    ek_server_conn_done(srv, -err);
}

static void cut_threads(struct ek_server *srv, void *ctx)
{
    struct thread_model *tm = ctx;
    (void)srv;
    ek_cut_pipe_fire(&tm->cut);
}

int ek_run_thread(struct ek_server *srv, const struct ek_model *self)
{
    struct thread_model tm;
    (void)self;

    int err = ek_cut_pipe_open(&tm.cut);
    if (err < 0) {
        ek_log(EK_LOG_ERROR, "thread: %s", strerror(-err));
        return EX_OSERR;
    }
    pthread_attr_init(&tm.attr);
    pthread_attr_setdetachstate(&tm.attr, PTHREAD_CREATE_DETACHED);
    size_t stack = EK_THREAD_STACK;
    if (stack < (size_t)PTHREAD_STACK_MIN)
        stack = (size_t)PTHREAD_STACK_MIN;
    pthread_attr_setstacksize(&tm.attr, stack);

    struct ek_supervisor_ops ops = {
        .start = start_thread, .cut = cut_threads, .ctx = &tm};
    int status = ek_supervise(srv, &ops);

    /* Threads still running (a forced exit) may use the cut pipe until the
     * process exits: leave it open. */
    if (ek_stat_get(&srv->stats->active) == 0)
        ek_cut_pipe_close(&tm.cut);
    pthread_attr_destroy(&tm.attr);
    return status;
}
