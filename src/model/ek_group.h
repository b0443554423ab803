/*
 * ek_group: N event loops on N threads (--threads), for the readiness
 * models and io_uring alike. A model supplies a loop (struct ek_loop_ops);
 * the group runs loop 0 on the main thread and the others on their own,
 * and carries the life cycle to all of them.
 *
 * Loop 0 handles signals (its wake fd is the server's signal pipe), owns
 * the server's phase and accepts on the server's listeners. The other
 * loops open their own SO_REUSEPORT listeners (TCP only: unix sockets stay
 * with loop 0), learn the phase from an atomic that loop 0 publishes, and
 * are woken by a pipe when it changes. They share nothing on the echo
 * path: each writes its own counters (ek_stats.h loop[i]), which readers
 * sum. What a loop is made of, whatever its engine, is ek_loop.h's.
 */
#ifndef EK_GROUP_H
#define EK_GROUP_H

#include "ek_server.h"

#include <stddef.h>

struct ek_group;

struct ek_loop_ops {
    size_t size; /* bytes of one loop's state (zeroed before init) */
    /* Sets up loop `index`: listeners, and a watch for readability on
     * ek_group_wake_fd. Returns 0 or -errno (free is called either way). */
    int (*init)(void *loop, struct ek_group *g, unsigned index);
    /* Waits up to timeout_ms (-1: none) and handles what happened. When
     * the wake fd was readable it calls ek_group_woken. Returns 0, or
     * -errno when waiting itself failed. */
    int (*turn)(void *loop, int timeout_ms);
    /* Connections still open (closing ones included). */
    size_t (*conns)(void *loop);
    /* The drain started: stop accepting for good and close this loop's
     * listeners (loop 0: through ek_listeners_close). Called once. */
    void (*stop_accepting)(void *loop);
    /* Closes every connection and frees everything. */
    void (*free)(void *loop);
};

/* Runs ops' loops, srv->cfg->threads of them, until the server stops.
 * Returns 0, or -errno when a loop could not start or wait. */
int ek_group_run(struct ek_server *srv, const struct ek_loop_ops *ops,
                 const char *name);

struct ek_server *ek_group_server(struct ek_group *g);

/* The fd loop `index` must watch: readable means "call ek_group_woken". */
int ek_group_wake_fd(struct ek_group *g, unsigned index);

/* Handles a readable wake fd: loop 0 reads the signals (starting a drain
 * or a forced stop) and tells the other loops; the others just empty their
 * pipe. */
void ek_group_woken(struct ek_group *g, unsigned index);

/* The phase loop `index` must act on now. Loop 0 alone watches the drain
 * deadline; the others learn of it as EK_STOPPING. */
enum ek_server_phase ek_group_phase(struct ek_group *g, unsigned index);

/* The acceptor loop `index` accepts with: loop 0 the server's, the others
 * their own (accept pauses and log limits are per thread). */
struct ek_acceptor *ek_group_acceptor(struct ek_group *g, unsigned index);

/* The sockets loop `index` serves, split by kind into tcp and udp (each
 * with room for srv->nlisteners; tcp_tp[i] is the transport, an enum
 * ek_tp_id, that tcp[i]'s connections speak): loop 0 takes the server's; the
 * others open their own SO_REUSEPORT copies of the TCP and UDP ones (the kernel
 * spreads connections and datagrams over the loops; unix sockets stay with
 * loop 0), with *own set: theirs to close. Returns 0 or -errno. */
int ek_group_loop_sockets(struct ek_group *g, unsigned index, int *tcp,
                          uint8_t *tcp_tp, size_t *ntcp, int *udp, size_t *nudp,
                          bool *own);

#endif
