/*
 * ek_conn: the connection layer. What a connection is and the one policy
 * every engine applies to it, whichever way its bytes were read:
 *
 *   - bytes arrive: echo them at once; what the transport does not take
 *     now goes into the connection's queue, after what is queued already
 *     (order is the whole contract);
 *   - backpressure: a connection is read only while its queue holds less
 *     than --max-queue bytes, and never more than the room left, so a
 *     client that writes and does not read fills its queue, then the
 *     socket buffers, then blocks in its own send(); reading resumes as
 *     the queue drains;
 *   - half-close: once the client's stream ends, what is queued still goes
 *     back, then the transport ends ours (finish) and the connection is
 *     done;
 *   - --proxy-protocol: the first bytes are the PROXY header, fed to
 *     ek_conn_header_input by whichever engine read them; the connection is
 *     admitted by the client the header names, and what follows the header
 *     in the same read is the client's first data;
 *   - the counters (bytes in and out, queue-full events) and the idle
 *     clock's stamp, which stays at the accept while the header is read.
 *
 * The engines: the readiness loop (model_loop.c) calls ek_conn_event on
 * events (and again, without one, while ek_conn_read_pending: TLS records
 * its transport read ahead), which reads into the loop's one buffer and
 * sends straight back, so an idle connection, or one whose echo keeps up,
 * owns no buffer at all; the io_uring engine (model_uring.c) receives
 * into its own buffers and uses the queue, the room and the header phase
 * from here; the blocking models (ek_blocking.h) keep a struct ek_conn for
 * its transport and header. Bytes cross the socket through the
 * connection's transport (ek_transport.h).
 */
#ifndef EK_CONN_H
#define EK_CONN_H

#include "ek_queue.h"
#include "ek_transport.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ek_acceptor;
struct ek_counters;
struct ek_proxy_result;
struct ek_proxy_parser;
struct ek_server;

enum {
    EK_CONN_PEER_CLOSED = 1, /* the client's stream ended: flush, finish */
    EK_CONN_BULK = 2,        /* streaming: echo through splice(2) */
    EK_CONN_FINISHING = 4,   /* the transport's finish said "again" */
    EK_CONN_CLOSING = 8,     /* the engine is closing it (uring: waits for
                                its requests in flight) */
    EK_CONN_AGAIN = 16,      /* readiness loop: on its read-again list */
};

/* A read of at least this much marks a connection as streaming; a splice
 * of less than EK_BULK_EXIT ends that. Splice saves the two copies of the
 * payload through user space, which pays off for large transfers only:
 * for small messages its pipe bookkeeping costs more than the copies (see
 * bench/PERFORMANCE.md). */
#define EK_BULK_ENTER ((size_t)32 * 1024)
#define EK_BULK_EXIT ((size_t)4 * 1024)

/* 48 bytes; the zero value is a free slot (over the plain transport). */
struct ek_conn {
    struct ek_queue queue;         /* read but not yet sent back */
    struct ek_proxy_parser *proxy; /* while its PROXY header is read */
    void *tp_state;       /* the transport's (TLS: its session), or NULL */
    uint32_t active_tick; /* the loop's idle clock when bytes last moved */
    uint8_t flags;        /* EK_CONN_* */
    uint8_t kind;         /* the loop's: what its slot holds (ek_loop.h) */
    uint8_t interest;     /* readiness engine: EK_EV_* registered */
    uint8_t tp;           /* its transport: enum ek_tp_id (a byte, not a
                             pointer: the slot stays 48 bytes) */
};

/* The transport c's bytes cross. */
static inline const struct ek_transport *ek_conn_tp(const struct ek_conn *c)
{
    return ek_transports[c->tp];
}

/* The server's verdicts on a PROXY header (ek_admit.h): the connection
 * layer reads the header, the server judges who sent it, with the
 * owner's srv and acc, which this layer passes on without looking. */
struct ek_proxy_verdicts {
    /* The header named this client: true to go on; false, refused
     * (counted and logged): the caller closes. */
    bool (*admit)(struct ek_server *srv, struct ek_acceptor *acc, int fd,
                  const struct ek_proxy_result *r);
    /* The header was malformed, missing, late or cut short (why):
     * counted and logged; the caller closes. */
    void (*failed)(struct ek_server *srv, struct ek_acceptor *acc, int fd,
                   const char *why);
};

/* What a connection's owner lends it: one per event loop (or per blocking
 * connection, where only srv, ctx and proxy are set). */
struct ek_conn_env {
    struct ek_server *srv;   /* for proxy's verdicts */
    struct ek_acceptor *acc; /* NULL: a shared log limiter */
    const struct ek_proxy_verdicts *proxy;
    struct ek_counters *counters; /* the loop's own (single writer) */
    const uint32_t *idle_now;     /* the loop's idle clock (ek_idle.h), whose
                                     tick a connection stamps; NULL: none */
    size_t max_queue;
    /* The loop's buffer, shared by all its connections: the readiness
     * engine reads into it; the io_uring engine's TLS gathers there the
     * records OpenSSL makes before they join a queue (ek_tls.h). */
    char *buf;
    size_t buf_size;
    int pipe[2]; /* the loop's splice pipe, empty between calls; -1: none */
};

/* Makes *c a connection over tp on socket fd, reading a PROXY header
 * first when the server expects one. Returns 0, or -ENOMEM with *c free
 * again. */
int ek_conn_open(struct ek_conn *c, int fd, const struct ek_transport *tp,
                 const struct ek_conn_ctx *ctx);

/* Frees what c holds (queue, header parser, transport state); *c is a
 * free (zero) slot again. The fd is the caller's to close. */
void ek_conn_release(struct ek_conn *c);

/* ---- the PROXY header phase (while c->proxy != NULL) ----------------- */

enum {
    EK_HEADER_MORE,    /* all n bytes were header; it goes on */
    EK_HEADER_DONE,    /* *used bytes ended it; admitted; the rest is data */
    EK_HEADER_REFUSED, /* bad, or the rules refuse the client: counted and
                          logged; close */
};

/* Reads header bytes into buf: a read of the transport; or, for one that
 * reads the socket itself (header_peek: TLS), a peek, so that what follows
 * the header stays in the socket for it, and ek_conn_header_input then
 * takes the header's own bytes. Returns as the transport's read. */
ssize_t ek_conn_header_read(struct ek_conn *c, int fd, void *buf, size_t len);

/* Feeds n bytes ek_conn_header_read put in data to the header parser.
 * With EK_HEADER_DONE, data[*used, n) is the client's first data (none
 * when the transport has bytes of its own: they are still in the
 * socket). */
int ek_conn_header_input(struct ek_conn *c, int fd,
                         const struct ek_conn_env *env, const char *data,
                         size_t n, size_t *used);

/* Why the header will not come, for a read that returned rc: 0 (the
 * client closed) or -errno (reset, ...). */
const char *ek_conn_header_cut(ssize_t rc);

/* The header will not come (why: closed, failed, late): counted as refused
 * and logged, whatever ended it, on every engine; the caller closes. */
void ek_conn_header_failed(struct ek_conn *c, int fd,
                           const struct ek_conn_env *env, const char *why);

/* ---- the echo policy ------------------------------------------------- */

/* Bytes that may be read now: the queue's room under --max-queue. */
static inline size_t ek_conn_room(const struct ek_conn *c, size_t max_queue)
{
    size_t queued = ek_queue_len(&c->queue);
    return queued < max_queue ? max_queue - queued : 0;
}

/* Queues n bytes behind what is queued (front: before it, for the rest of
 * a send started earlier), counting a queue-full event when the queue
 * reaches --max-queue. Returns 0 or -ENOMEM. */
int ek_conn_queue(struct ek_conn *c, const struct ek_conn_env *env,
                  const char *data, size_t n, bool front);

/* n bytes arrived (after the header) or went out: counted, and the idle
 * stamp renewed. */
void ek_conn_received(struct ek_conn *c, const struct ek_conn_env *env,
                      size_t n);
void ek_conn_sent(struct ek_conn *c, const struct ek_conn_env *env, size_t n);

/* Bytes moved that are not the payload (the io_uring engine's TLS records
 * going out): the idle stamp renewed, nothing counted. */
void ek_conn_touch(struct ek_conn *c, const struct ek_conn_env *env);

/* ---- the readiness engine -------------------------------------------- */

/* Results of the two event handlers. */
enum {
    EK_CONN_KEEP = 0,    /* still open: re-arm with ek_conn_want */
    EK_CONN_DONE = 1,    /* the client closed and got everything back */
    EK_CONN_REFUSED = 2, /* PROXY header bad or refused: counted; close */
    /* < 0: -errno, the connection failed (reset, ...) */
};

/* Readiness `events` (EK_EV_*) on fd: first sends what is queued (which
 * makes room), then one read, echoed at once, the unsent rest queued. An
 * event that unblocks the transport (its `blocked`) retries both. */
int ek_conn_event(struct ek_conn *c, int fd, const struct ek_conn_env *env,
                  unsigned events);

/* The events (EK_EV_*) this connection needs now. */
unsigned ek_conn_want(const struct ek_conn *c, size_t max_queue);

/* Whether c must be read again without waiting for readiness: it wants to
 * read and its transport already holds bytes (TLS records read ahead). */
bool ek_conn_read_pending(const struct ek_conn *c, size_t max_queue);

#endif
