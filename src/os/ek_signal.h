/*
 * ek_signal: signals delivered to the event loops as bytes on a self-pipe.
 *
 * The handler only counts the signal and writes one byte; every decision
 * (drain, exit at once, reap children) is taken in the loop, outside signal
 * context. A byte can be lost when the pipe is full, a count cannot, so the
 * reader goes by the counters, not by the bytes.
 *
 * The pipe's write end and the counters are process globals because a
 * signal handler can reach nothing else.
 */
#ifndef EK_SIGNAL_H
#define EK_SIGNAL_H

#include <signal.h>
#include <stdbool.h>

/* Installs handlers for SIGINT, SIGTERM and SIGUSR1, ignores SIGPIPE, and
 * returns the pipe's non-blocking read end, or -errno. */
int ek_signal_open(void);

/* Also reports SIGCHLD (for a model that forks). Returns 0 or -errno. */
int ek_signal_watch_children(void);

/* Also reports SIGHUP (reload: a server with TLS certificates). Without
 * it SIGHUP keeps its default, ending the process like a hung-up
 * terminal's foreground job. Returns 0 or -errno. */
int ek_signal_watch_reload(void);

/* Restores default dispositions and closes the pipe. */
void ek_signal_close(void);

struct ek_signal_news {
    unsigned terms;    /* SIGINT/SIGTERM received since ek_signal_open */
    int last_term;     /* the most recent of them (signal number) */
    bool child_exited; /* a SIGCHLD arrived since the last read */
    bool dump_stats;   /* a SIGUSR1 arrived: log the counters */
    bool reload;       /* a SIGHUP arrived (ek_signal_watch_reload) */
};

/* Empties the pipe and reports what arrived. */
void ek_signal_read(int fd, struct ek_signal_news *news);

/* Wakes the reader without a signal (a worker thread that finished).
 * Async-signal-safe and thread-safe. */
void ek_signal_wake(void);

/* In a forked child that serves one connection: SIGINT, SIGTERM, SIGUSR1
 * and SIGHUP ignored (the parent decides when children stop and reloads
 * for the connections to come), SIGCHLD default, pipe closed.
 * Call with signals blocked. */
void ek_signal_child_reset(void);

/* Blocks every signal in the calling thread, saving the old mask, so that a
 * thread or child created now starts with signals blocked. */
void ek_signal_block_all(sigset_t *saved);
void ek_signal_restore(const sigset_t *saved);

#endif
