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
#include "ek_blocking.h"
#include "ek_admit.h"
#include "ek_model.h"
#include "ek_server.h"
#include "ek_signal.h"
#include "ek_supervisor.h"
#include "ek_tls.h"
#include "ek_util.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EK_THREAD_BUF (16 * 1024)
/* Enough for the buffer, libc and sanitizers; only touched pages cost. */
#define EK_THREAD_STACK ((size_t)256 * 1024)

/* How long, after the supervisor returns, threads may take to finish
 * touching shared state (they have been cut, so this is milliseconds). */
#define EK_THREAD_EXIT_GRACE_MS 2000

struct thread_model {
    struct ek_cut_pipe cut;
    pthread_attr_t attr;
    /* Threads that may still touch the server, the cut pipe or the signal
     * pipe. A worker's last act is to decrement it (release), so once the
     * main thread reads 0 (acquire) it may close and free all of them. */
    atomic_uint running;
};

struct worker {
    struct ek_server *srv;
    struct thread_model *tm;
    const struct ek_transport *tp;
    int fd;
};

static void *worker_main(void *arg)
{
    struct worker w = *(struct worker *)arg;
    char buf[EK_THREAD_BUF];
    struct ek_blocking b;

    free(arg);
    int rc = ek_blocking_open(&b, w.srv, w.fd, w.tp, buf, sizeof(buf));
    if (rc == 0)
        rc = ek_echo_blocking(w.fd, &b, w.tm->cut.rd, -1);
    ek_admit_conn_done(w.srv, ek_blocking_close(&b, w.fd, rc));
    ek_tls_thread_end(); /* before the last act, not in its destructors */
    ek_signal_wake();    /* a slot is free: the main thread re-checks */
    atomic_fetch_sub_explicit(&w.tm->running, 1, memory_order_release);
    return NULL;
}

static void start_thread(struct ek_server *srv, void *ctx, int fd,
                         const struct ek_transport *tp)
{
    struct thread_model *tm = ctx;
    struct worker *w = malloc(sizeof(*w));
    int err = ENOMEM;

    if (w != NULL) {
        pthread_t tid;
        sigset_t saved;
        *w = (struct worker){.srv = srv, .tm = tm, .tp = tp, .fd = fd};
        atomic_fetch_add_explicit(&tm->running, 1, memory_order_relaxed);
        ek_signal_block_all(&saved);
        err = pthread_create(&tid, &tm->attr, worker_main, w);
        ek_signal_restore(&saved);
        if (err == 0)
            return;
        atomic_fetch_sub_explicit(&tm->running, 1, memory_order_relaxed);
        free(w);
    }
    ek_log(EK_LOG_ERROR, "cannot start a thread: %s", strerror(err));
    close(fd);
    ek_admit_conn_done(srv, -err);
}

static void cut_threads(struct ek_server *srv, void *ctx)
{
    struct thread_model *tm = ctx;
    (void)srv;
    ek_cut_pipe_fire(&tm->cut);
}

/* Waits until no worker can touch shared state any more. */
static bool wait_for_threads(struct thread_model *tm)
{
    int64_t until = ek_now_ms() + EK_THREAD_EXIT_GRACE_MS;
    while (atomic_load_explicit(&tm->running, memory_order_acquire) > 0) {
        if (ek_now_ms() >= until)
            return false;
        ek_cut_pipe_fire(&tm->cut); /* idempotent: make sure they know */
        usleep(1000);
    }
    return true;
}

int ek_run_thread(struct ek_server *srv, const struct ek_model *self)
{
    (void)self;
    /* On the heap: left to the process exit if threads outlive the run. */
    struct thread_model *tm = calloc(1, sizeof(*tm));
    if (tm == NULL)
        return -ENOMEM;
    atomic_init(&tm->running, 0);
    int err = ek_cut_pipe_open(&tm->cut);
    if (err < 0) {
        ek_log(EK_LOG_ERROR, "thread: %s", strerror(-err));
        free(tm);
        return err;
    }
    pthread_attr_init(&tm->attr);
    pthread_attr_setdetachstate(&tm->attr, PTHREAD_CREATE_DETACHED);
    size_t stack = EK_THREAD_STACK;
    if (stack < (size_t)PTHREAD_STACK_MIN)
        stack = (size_t)PTHREAD_STACK_MIN;
    pthread_attr_setstacksize(&tm->attr, stack);

    struct ek_supervisor_ops ops = {
        .start = start_thread, .cut = cut_threads, .ctx = tm};
    err = ek_supervise(srv, &ops);

    if (!wait_for_threads(tm)) {
        /* Cut and still running: freeing what they use would be a
         * use-after-free. Leave it all to the process exit. */
        ek_log(EK_LOG_ERROR,
               "%u threads did not stop; exiting without "
               "cleanup",
               atomic_load(&tm->running));
        srv->abandoned = true;
        return -EBUSY;
    }
    ek_cut_pipe_close(&tm->cut);
    pthread_attr_destroy(&tm->attr);
    free(tm);
    return err;
}
