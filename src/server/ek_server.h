/*
 * ek_server: one running server, what every I/O model shares: its
 * configuration, listeners (bound by ek_listen.h), counters (ek_stats.h)
 * and life cycle. Who gets in is ek_admit.h's; the event loops' idle clock
 * is ek_idle.h's. Errors are -errno here; the exit status is chosen by
 * the command (cmd_serve.c).
 *
 * Life cycle. ek_server_open, then ek_listeners_open binds every
 * listener; once the command has announced them ("listening on ADDR" on
 * stdout) the model runs until ek_server_should_stop says so:
 *   - the first SIGINT/SIGTERM starts the drain: the model stops watching
 *     the listeners and closes them (ek_listeners_close: new clients are
 *     refused), open connections carry on until they close or until
 *     --drain-timeout passes, then the model cuts them; exit status 0;
 *   - a second signal stops at once; exit status 128 + the signal.
 */
#ifndef EK_SERVER_H
#define EK_SERVER_H

#include "ek_acceptor.h"
#include "ek_transport.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ek_acl;
struct ek_addr_spec;
struct ek_listener;
struct ek_model;
struct ek_stats;
struct ek_tls_server;

/* What UDP answers (ek_udp.h). */
struct ek_udp_limits {
    bool low_ports;      /* --udp-low-ports */
    uint64_t rate;       /* --udp-rate, per source address; 0: none */
    uint64_t total_rate; /* --udp-rate-total; 0: none */
};

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
    const struct ek_acl *proxy_from; /* who may send it (--proxy-from) */
    struct ek_udp_limits udp;        /* --udp-low-ports, --udp-rate... */
    /* tls: listeners' certificates and settings (ek_tls.h); NULL when
     * there is none. */
    struct ek_tls_server *tls;
    int64_t handshake_timeout_ms; /* --tls-handshake-timeout */
    uint64_t max_handshakes;      /* --max-handshakes */
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
    struct ek_conn_ctx conn;     /* what its connections see of it */
    struct ek_acceptor acceptor; /* the main thread's */
    /* Set by a model that returns while some of its threads may still
     * touch the server: the process must exit without freeing it. */
    bool abandoned;
};

/* Maps the counters, opens the signal pipe. The listeners are
 * ek_listeners_open's to bind, after. Returns 0, or -errno after printing
 * why. */
int ek_server_open(struct ek_server *srv, const struct ek_config *cfg);

/* Frees what ek_server_open made (the listeners are ek_listeners_free's,
 * before). */
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

/* Milliseconds until the next timed event of the main thread (drain
 * deadline, end of its accept pause); -1 when none is pending. */
int ek_server_timeout(const struct ek_server *srv);

/* The process exit status: 0, or 128 + signal after a forced exit. */
int ek_server_exit_status(const struct ek_server *srv);

#endif
