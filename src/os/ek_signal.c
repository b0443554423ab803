#include "ek_signal.h"
#include "ek_platform.h"
#include "ek_util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

static int pipe_fds[2] = {-1, -1};
static atomic_uint term_count;
static atomic_int last_term;
static atomic_bool child_flag;
static atomic_bool usr1_flag;
static atomic_bool hup_flag;
static bool handles_sigchld, handles_sighup;

/* Lock-free atomics and write(2) are async-signal-safe. errno is saved
 * because the interrupted code may be about to read it. */
static void on_signal(int signo)
{
    int saved = errno;
    char byte = (char)signo;
    if (signo == SIGCHLD) {
        atomic_store(&child_flag, true);
    } else if (signo == SIGUSR1) {
        atomic_store(&usr1_flag, true);
    } else if (signo == SIGHUP) {
        atomic_store(&hup_flag, true);
    } else {
        atomic_store(&last_term, signo);
        atomic_fetch_add(&term_count, 1);
    }
    if (pipe_fds[1] >= 0)
        (void)!write(pipe_fds[1], &byte, 1);
    errno = saved;
}

static int set_handler(int signo, void (*handler)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: a wait that a signal interrupts returns EINTR, and
     * the loop looks at the news. io_uring_enter would otherwise be
     * restarted in the kernel, and under ThreadSanitizer (which runs the
     * handler late, see model_uring.c) never learn of the signal. Every
     * call that can block here retries EINTR itself. */
    sa.sa_flags = signo == SIGCHLD ? SA_NOCLDSTOP : 0;
    return sigaction(signo, &sa, NULL) < 0 ? -errno : 0;
}

int ek_signal_open(void)
{
#ifdef EK_TSAN
    /* ThreadSanitizer (gcc 12's runtime) allocates a thread's signal
     * context on the first blocking call it intercepts, without guarding
     * against a signal that arrives meanwhile: that signal lands in a
     * second context, which the first then overwrites, and the handler
     * never runs. SIGTERM just after start-up was lost so (1 start in ~50
     * under load). A blocking call before any handler exists makes the
     * context while no signal can reach it. (LLVM later made this a CAS.) */
    (void)poll(NULL, 0, 0);
#endif
    int perr = ek_pipe(pipe_fds, O_NONBLOCK | O_CLOEXEC);
    if (perr < 0)
        return perr;
    atomic_store(&term_count, 0);
    atomic_store(&child_flag, false);
    atomic_store(&usr1_flag, false);
    atomic_store(&hup_flag, false);
    int err = set_handler(SIGPIPE, SIG_IGN);
    if (err == 0)
        err = set_handler(SIGINT, on_signal);
    if (err == 0)
        err = set_handler(SIGTERM, on_signal);
    if (err == 0)
        err = set_handler(SIGUSR1, on_signal);
    if (err < 0) {
        ek_signal_close();
        return err;
    }
    return pipe_fds[0];
}

int ek_signal_watch_children(void)
{
    handles_sigchld = true;
    return set_handler(SIGCHLD, on_signal);
}

int ek_signal_watch_reload(void)
{
    handles_sighup = true;
    return set_handler(SIGHUP, on_signal);
}

void ek_signal_close(void)
{
    set_handler(SIGINT, SIG_DFL);
    set_handler(SIGTERM, SIG_DFL);
    set_handler(SIGUSR1, SIG_DFL);
    if (handles_sigchld)
        set_handler(SIGCHLD, SIG_DFL);
    if (handles_sighup)
        set_handler(SIGHUP, SIG_DFL);
    handles_sigchld = handles_sighup = false;
    for (int i = 0; i < 2; i++)
        if (pipe_fds[i] >= 0) {
            close(pipe_fds[i]);
            pipe_fds[i] = -1;
        }
}

void ek_signal_read(int fd, struct ek_signal_news *news)
{
    char buf[256];
    for (;;) { /* the counters carry the news; the bytes only wake us */
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n > 0 || (n < 0 && errno == EINTR))
            continue;
        break;
    }
    news->terms = atomic_load(&term_count);
    news->last_term = atomic_load(&last_term);
    news->child_exited = atomic_exchange(&child_flag, false);
    news->dump_stats = atomic_exchange(&usr1_flag, false);
    news->reload = atomic_exchange(&hup_flag, false);
}

void ek_signal_wake(void)
{
    int saved = errno;
    char byte = 0;
    if (pipe_fds[1] >= 0)
        (void)!write(pipe_fds[1], &byte, 1);
    errno = saved;
}

void ek_signal_child_reset(void)
{
    set_handler(SIGINT, SIG_IGN);
    set_handler(SIGTERM, SIG_IGN);
    set_handler(SIGUSR1, SIG_IGN); /* the parent reports for everyone */
    set_handler(SIGHUP, SIG_IGN);
    set_handler(SIGCHLD, SIG_DFL);
    for (int i = 0; i < 2; i++)
        if (pipe_fds[i] >= 0) {
            close(pipe_fds[i]);
            pipe_fds[i] = -1;
        }
}

void ek_signal_block_all(sigset_t *saved)
{
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, saved);
}

void ek_signal_restore(const sigset_t *saved)
{
    pthread_sigmask(SIG_SETMASK, saved, NULL);
}
