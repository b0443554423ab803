/*
 * ek_loop: the chassis of an event loop, whichever engine drives it (the
 * readiness loop of model_loop.c, the io_uring loop of model_uring.c).
 * An engine's loop state starts with a struct ek_loop; the chassis holds
 * what does not depend on how the loop waits:
 *
 *   - the slot table: per descriptor a slot of the engine's size that
 *     starts with the struct ek_conn (descriptors are small dense
 *     integers, so finding a connection is an index); the table grows by
 *     doubling, so never hold a slot pointer across a call that may open a
 *     descriptor;
 *   - opening and closing connections (accounting, the accept pause that
 *     a closed descriptor ends), the idle sweep (--idle-timeout and the
 *     PROXY header's deadline, one rule for every engine);
 *   - the sockets the loop serves (ek_group_loop_sockets: loop 0 the
 *     server's, the others their SO_REUSEPORT copies), closing the
 *     listeners at the drain, and the UDP sockets with their state;
 *   - the environment lent to every connection (ek_conn.h): counters,
 *     idle clock, --max-queue.
 *
 * Start, shutdown and the duties of loop 0 (signals, the drain, telling
 * the other loops) are ek_group's (ek_group.h).
 */
#ifndef EK_LOOP_H
#define EK_LOOP_H

#include "ek_conn.h"
#include "ek_server.h"
#include "ek_udp.h"
#include "ek_idle.h"

#include <stdbool.h>
#include <stddef.h>

struct ek_group;

/* What a slot holds (struct ek_conn's kind). The readiness loop registers
 * every descriptor it watches; the uring loop only its connections. */
enum ek_slot_kind {
    EK_SLOT_FREE = 0,
    EK_SLOT_CONN,
    EK_SLOT_LISTENER,
    EK_SLOT_WAKE, /* the group's wake fd: signals (loop 0), phase (others) */
    EK_SLOT_UDP,  /* a UDP socket: datagrams echoed in batches (ek_udp.h) */
};

struct ek_loop {
    struct ek_group *group;
    struct ek_server *srv;
    unsigned index; /* 0: the main thread's loop */
    struct ek_acceptor *acc;
    struct ek_idle_clock idle;
    struct ek_conn_env env; /* lent to every connection of the loop */
    char *slots;            /* slot_size bytes per fd */
    size_t slot_size, nslots;
    size_t nconns;         /* slots of kind EK_SLOT_CONN */
    int *listeners;        /* stream sockets this loop accepts on */
    uint8_t *listener_tps; /* what each one's speak: enum ek_tp_id */
    size_t nlisteners;
    bool own_listeners;    /* SO_REUSEPORT copies: this loop closes them */
    bool listeners_closed; /* the drain closed them */
    int *udp_fds;          /* UDP sockets this loop serves */
    struct ek_sockaddr *udp_local; /* their addresses */
    size_t nudp;
    struct ek_udp udp; /* buffers and rate state, when nudp > 0 */
    /* The engine's: starts closing connection fd (err: 0 or -errno);
     * ends, now or once its requests complete, in ek_loop_conn_closed. */
    void (*close_conn)(struct ek_loop *lp, int fd, int err);
};

/* Sets up the chassis of loop `index` of group g: slots of slot_size
 * bytes (at least sizeof(struct ek_conn)), the loop's sockets and UDP
 * state. Returns 0 or -errno; ek_loop_free is called either way. */
int ek_loop_init(struct ek_loop *lp, struct ek_group *g, unsigned index,
                 size_t slot_size,
                 void (*close_conn)(struct ek_loop *lp, int fd, int err));

/* Closes the sockets the loop owns and frees the chassis. Connections
 * must be gone (ek_loop_close_all, and what the engine waits for). */
void ek_loop_free(struct ek_loop *lp);

/* The slot of fd, growing the table as needed (NULL: out of memory). */
struct ek_conn *ek_loop_slot(struct ek_loop *lp, int fd);

/* The slot of fd, which must exist. */
static inline struct ek_conn *ek_loop_conn(const struct ek_loop *lp, int fd)
{
    return (struct ek_conn *)(void *)(lp->slots + (size_t)fd * lp->slot_size);
}

/* Whether fd has a slot (stale events may name one beyond the table). */
static inline bool ek_loop_has_slot(const struct ek_loop *lp, int fd)
{
    return fd >= 0 && (size_t)fd < lp->nslots;
}

/* What the connections accepted on listener listen_fd speak. */
const struct ek_transport *ek_loop_listener_tp(const struct ek_loop *lp,
                                               int listen_fd);

/* Takes a descriptor ek_admit_conn admitted: a zeroed slot (the engine's
 * part too) holding a fresh connection over transport tp. NULL when out
 * of memory or refused by the transport (--max-handshakes): fd is then
 * closed and its end counted. */
struct ek_conn *ek_loop_conn_open(struct ek_loop *lp, int fd,
                                  const struct ek_transport *tp);

/* The end of a connection: frees its slot, closes fd, counts the end and
 * lifts an accept pause (a descriptor is free again). */
void ek_loop_conn_closed(struct ek_loop *lp, int fd, int err);

/* Closes every connection through the engine (at the end). */
void ek_loop_close_all(struct ek_loop *lp);

/* Whether the loop may accept now: listeners open, the server running,
 * no accept pause (fd exhaustion) in force. */
bool ek_loop_may_accept(struct ek_loop *lp);

/* The drain: closes the listeners for good (loop 0: the server's, which
 * also removes unix socket files). The engine stops watching them first. */
void ek_loop_close_listeners(struct ek_loop *lp);

/* The earlier of timeout_ms and the loop's own deadlines (the end of an
 * accept pause, the next idle sweep), poll()-style. */
int ek_loop_timeout(const struct ek_loop *lp, int timeout_ms);

/* Reads the idle clock for this turn; call once per wait. */
void ek_loop_tick(struct ek_loop *lp);

/* After a turn's events: when a sweep is due, closes through the engine
 * the connections whose PROXY header is late or that were idle for
 * --idle-timeout (counted and logged). */
void ek_loop_sweep(struct ek_loop *lp);

/* One batch of datagrams on UDP socket i. */
void ek_loop_serve_udp(struct ek_loop *lp, size_t i);

/* Connections open (closing ones included): ek_loop_ops.conns. */
size_t ek_loop_conns(void *loop);

#endif
