/*
 * ek_server: what every I/O model shares: the listeners, the limits, the
 * counters, and the life cycle (run, drain, exit).
 *
 * Life cycle. ek_server_open binds every listener and prints one
 * "listening on ADDR" line per listener on stdout. The model then runs
 * until ek_server_should_stop says so:
 *   - the first SIGINT/SIGTERM starts the drain: the model stops watching
 *     the listeners and calls ek_server_close_listeners (new clients are
 *     refused), open connections carry on until they close or until
 *     --drain-timeout passes, then the model cuts them; exit status 0;
 *   - a second signal stops at once; exit status 128 + the signal.
 */
#ifndef EK_SERVER_H
#define EK_SERVER_H

#include "ek_addr.h"
#include "ek_log.h"
#include "ek_stats.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ek_model;

struct ek_config {
    const struct ek_addr_spec *listen; /* at least one */
    size_t nlisten;
    const struct ek_model *model;
    unsigned threads;         /* event loops (readiness and uring models) */
    uint64_t max_conns;       /* admitted connections open at once */
    size_t max_queue;         /* bytes read and not yet echoed, per conn */
    int64_t drain_timeout_ms; /* after the first SIGINT/SIGTERM */
};

struct ek_listener {
    int fd; /* -1 once closed */
    struct ek_sockaddr addr;
    char name[EK_ADDRSTR_MAX]; /* "127.0.0.1:50000", as printed */
};

/* What each accepting thread keeps for itself, so that accepting needs no
 * lock: the end of an accept pause, and its log rate limiters. The zero
 * value is ready to use. */
struct ek_acceptor {
    int64_t resume_ms; /* accepts paused until then; 0: not paused */
    struct ek_ratelimit refused_log, accept_log;
};

/* Where the server is in its life cycle. */
enum ek_server_phase {
    EK_RUNNING,  /* accepting */
    EK_DRAINING, /* listeners closed, waiting for connections to end */
    EK_STOPPING, /* drain deadline passed: cut what is left and exit */
    EK_FORCED,   /* second signal: exit at once */
};

struct ek_server {
    const struct ek_config *cfg;
    struct ek_listener *listeners;
    size_t nlisteners;
    int sig_fd; /* read end of the signal self-pipe */
    struct ek_stats *stats;
    enum ek_server_phase phase;
    int64_t drain_deadline_ms;
    int exit_signal;             /* the signal that forced the exit */
    unsigned terms_handled;      /* SIGINT/SIGTERMs acted upon */
    struct ek_acceptor acceptor; /* the main thread's */
};

/* Binds the listeners and prints them, opens the signal pipe. Returns 0,
 * or a sysexits code after printing why (68 unresolvable host, 71 OS error
 * such as address in use, 77 permission denied). */
int ek_server_open(struct ek_server *srv, const struct ek_config *cfg);

/* Closes what is left, removes unix socket files, frees everything. */
void ek_server_close(struct ek_server *srv);

/* What ek_server_read_signals found. */
enum {
    EK_NEWS_DRAIN = 1, /* the drain starts now: close the listeners */
    EK_NEWS_CHILD = 2, /* a child exited: reap */
};

/* Reads the signal pipe and advances the phase. Returns EK_NEWS_* bits. */
unsigned ek_server_read_signals(struct ek_server *srv);

/* Re-checks the drain deadline; call after every wait. Returns true when
 * the model must cut its remaining connections and return now (phase
 * EK_STOPPING or EK_FORCED). */
bool ek_server_should_stop(struct ek_server *srv);

/* Closes every listener and removes unix socket files. Idempotent. */
void ek_server_close_listeners(struct ek_server *srv);

/* Admission of a freshly accepted connection: under --max-conns it counts
 * the connection (accepted, active), sets its socket options and returns
 * true; over the limit it
 * closes the fd, counts and logs the refusal and returns false. */
bool ek_server_admit(struct ek_server *srv, struct ek_acceptor *acc, int fd);

/* Closes a connection the model cannot take (e.g. fd >= FD_SETSIZE), with
 * a rate-limited log line saying why. */
void ek_server_refuse(struct ek_server *srv, struct ek_acceptor *acc, int fd,
                      const char *why);

/* A connection admitted by ek_server_admit has ended (err: 0, or the
 * -errno that ended it). */
void ek_server_conn_done(struct ek_server *srv, int err);

/* accept(2) failed with -err. Returns true when accepting must pause: fd
 * exhaustion (EMFILE, ENFILE) and memory shortage. The pause lasts until
 * ek_accept_resume or the end of ek_accept_timeout, so a full fd table
 * never makes a loop spin. */
bool ek_server_accept_failed(struct ek_server *srv, struct ek_acceptor *acc,
                             int err);

/* Whether accepts are paused; clears the pause once its time is up. */
bool ek_accept_paused(struct ek_acceptor *acc);

/* Ends a pause early: a connection closed, an fd is free again. */
void ek_accept_resume(struct ek_acceptor *acc);

/* Milliseconds until the pause ends, -1 if not paused. */
int ek_accept_timeout(const struct ek_acceptor *acc);

/* Milliseconds until the next timed event of the main thread (drain
 * deadline, end of its accept pause); -1 when none is pending. */
int ek_server_timeout(const struct ek_server *srv);

/* The process exit status: 0, or 128 + signal after a forced exit. */
int ek_server_exit_status(const struct ek_server *srv);

#endif
