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

#include "ek_acl.h"
#include "ek_addr.h"
#include "ek_log.h"
#include "ek_proxy.h"
#include "ek_udp.h"
#include "ek_stats.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ek_model;

struct ek_config {
    const struct ek_addr_spec *listen; /* to bind; none if sd_fds > 0 */
    size_t nlisten;
    unsigned sd_fds; /* listening sockets systemd passed as fds 3... */
    const struct ek_model *model;
    unsigned threads;         /* event loops (readiness and uring models) */
    uint64_t max_conns;       /* admitted connections open at once */
    size_t max_queue;         /* bytes read and not yet echoed, per conn */
    int64_t drain_timeout_ms; /* after the first SIGINT/SIGTERM */
    int64_t idle_timeout_ms;  /* 0: none */
    const struct ek_acl *acl; /* --allow/--deny */
    bool proxy_protocol;      /* a PROXY header opens every connection */
    struct ek_udp_limits udp; /* --udp-low-ports, --udp-rate... */
};

struct ek_listener {
    int fd; /* -1 once closed */
    struct ek_sockaddr addr;
    char
        name[EK_ADDRSTR_MAX + 4]; /* "127.0.0.1:50000", "udp:...", as printed */
    bool inherited; /* passed by systemd: its socket file is not ours */
    bool udp;       /* a UDP socket (served, never accepted on) */
};

/* What each accepting thread keeps for itself, so that accepting needs no
 * lock: the end of an accept pause, and its log rate limiters. The zero
 * value is ready to use. */
struct ek_acceptor {
    int64_t resume_ms; /* accepts paused until then; 0: not paused */
    struct ek_ratelimit refused_log, accept_log, acl_log, proxy_log;
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

/* Binds the listeners, opens the signal pipe. Returns 0,
 * or a sysexits code after printing why (68 unresolvable host, 71 OS error
 * such as address in use, 77 permission denied). */
int ek_server_open(struct ek_server *srv, const struct ek_config *cfg);

/* stdout is the machine-readable channel: one "listening on ADDR" line per
 * listener, flushed. Call once the server is ready (bound, privileges
 * dropped), so that a script may read the lines and connect at once. */
void ek_server_announce(const struct ek_server *srv);

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

/* Closes every stream listener and removes unix socket files (UDP sockets
 * stay until ek_server_close). Idempotent. */
void ek_server_close_listeners(struct ek_server *srv);

/* Admission of a freshly accepted connection: a peer --allow/--deny keeps
 * out is closed, counted and logged (false). Under --max-conns it counts
 * the connection (accepted, active), sets its socket options and returns
 * true; over the limit it
 * closes the fd, counts and logs the refusal and returns false. */
bool ek_server_admit(struct ek_server *srv, struct ek_acceptor *acc, int fd);

/* --proxy-protocol. A connection admitted by ek_server_admit has sent its
 * header: logs who the client is (-v) and applies --allow/--deny to the
 * client's address from the header (to the peer's for LOCAL and UNKNOWN
 * headers). Returns false when the rules refuse it: counted and logged;
 * the caller closes. acc may be NULL (blocking models: a shared limiter). */
bool ek_server_proxy_admit(struct ek_server *srv, struct ek_acceptor *acc,
                           int fd, const struct ek_proxy_result *r);

/* The header was malformed, missing, late or cut short (why): counted as
 * refused ("proxy") and logged; the caller closes. acc may be NULL. */
void ek_server_proxy_failed(struct ek_server *srv, struct ek_acceptor *acc,
                            int fd, const char *why);

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

/* --idle-timeout in the event loops. A connection stamps the loop's tick
 * (10 ms units since the loop started: 32 bits last 497 days, and
 * differences stay right across the wrap) whenever bytes move; the loop
 * sweeps its connections every quarter of the timeout (at most every
 * second), so an idle connection is closed at most that late. No timer per
 * connection: 4 bytes of state, one pass over the table per sweep. */
struct ek_idle_clock {
    int64_t epoch_ms, next_sweep_ms, sweep_every_ms;
    uint32_t limit;        /* in ticks; 0: no idle timeout */
    uint32_t header_limit; /* --proxy-protocol: ticks to send the header */
    uint32_t now;          /* the tick of the current turn (ek_idle_tick) */
};

#define EK_IDLE_TICK_MS 10

/* idle_ms: --idle-timeout (0: none); header_ms: how long a PROXY header
 * may take (0: no header expected). */
void ek_idle_init(struct ek_idle_clock *k, int64_t idle_ms, int64_t header_ms);

/* Reads the clock for this turn (cheap: once per wait, not per event). */
void ek_idle_tick(struct ek_idle_clock *k);

static inline bool ek_idle_expired(const struct ek_idle_clock *k,
                                   uint32_t stamp)
{
    return k->limit != 0 && (uint32_t)(k->now - stamp) >= k->limit;
}

static inline bool ek_header_expired(const struct ek_idle_clock *k,
                                     uint32_t stamp)
{
    return k->header_limit != 0 &&
           (uint32_t)(k->now - stamp) >= k->header_limit;
}

/* Whether a sweep is due now (and schedules the next one). */
bool ek_idle_sweep_due(struct ek_idle_clock *k);

/* Milliseconds until the next sweep, -1 with nothing to sweep for. */
int ek_idle_timeout(const struct ek_idle_clock *k);

/* A connection closed by the idle timeout: counted, logged at -v. */
void ek_server_idle_closed(struct ek_server *srv, int fd);

/* An event loop's sweep, for one connection stamped `stamp`: true when it
 * must be closed (counted and logged already): its PROXY header, when
 * header_pending, is late; or, once past the header, nothing moved for
 * --idle-timeout. */
bool ek_idle_sweep_closes(struct ek_server *srv, struct ek_acceptor *acc,
                          const struct ek_idle_clock *k, int fd, uint32_t stamp,
                          bool header_pending);

/* The process exit status: 0, or 128 + signal after a forced exit. */
int ek_server_exit_status(const struct ek_server *srv);

#endif
