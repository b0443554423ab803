/*
 * ek_conn: the echo itself, shared by every I/O model.
 *
 * Readiness models (select, poll, epoll, kqueue) keep a struct ek_conn per
 * connection and call ek_conn_readable / ek_conn_writable on events. Bytes
 * are read into the loop's one buffer and sent straight back; only what the
 * socket will not take now is copied into the connection's queue. So an
 * idle connection, or one whose echo keeps up, owns no buffer at all.
 *
 * Backpressure: a connection is read only while its queue holds less than
 * max_queue bytes, and never more than the room left, so the queue never
 * exceeds max_queue. A client that writes and does not read fills its
 * queue, then its socket buffers, then blocks in its own send().
 *
 * Blocking models (iterative, thread, process) call ek_echo_blocking with
 * a fixed buffer: one read, then send it all, then read again.
 */
#ifndef EK_CONN_H
#define EK_CONN_H

#include "ek_backend.h"
#include "ek_queue.h"
#include "ek_stats.h"

#include <stdbool.h>
#include <stdint.h>

enum {
    EK_CONN_PEER_CLOSED = 1, /* the client sent FIN: flush, then close */
    EK_CONN_BULK = 2,        /* streaming: echo through splice(2) */
    EK_CONN_PROXY = 4,       /* its PROXY header is still being read */
};

/* A read of at least this much marks a connection as streaming; a splice
 * of less than EK_BULK_EXIT ends that. Splice saves the two copies of the
 * payload through user space, which pays off for large transfers only:
 * for small messages its pipe bookkeeping costs more than the copies (see
 * bench/PERFORMANCE.md). */
#define EK_BULK_ENTER ((size_t)32 * 1024)
#define EK_BULK_EXIT ((size_t)4 * 1024)

struct ek_conn {
    struct ek_queue queue; /* read but not yet sent back */
    uint8_t flags;         /* EK_CONN_* */
    uint8_t interest;      /* EK_EV_* as registered with the backend */
    uint8_t tag;           /* the owner's (the loop's slot kind) */
    uint32_t active_tick;  /* the owner's clock when bytes last moved */
};

struct ek_server;
struct ek_acceptor;

struct ek_echo_ctx {
    char *buf; /* the loop's read buffer, shared by all its connections */
    size_t buf_size;
    size_t max_queue;
    struct ek_counters *counters; /* the loop's own */
    int pipe[2]; /* the loop's splice pipe, empty between calls; -1: none */
    /* --proxy-protocol: the header parsers of the connections flagged
     * EK_CONN_PROXY, by fd (NULL without the option), and where the header
     * goes once read (admission by the client's address). */
    struct ek_proxy_parser **proxy;
    struct ek_server *srv;
    struct ek_acceptor *acc;
};

/* Results of the two event handlers. */
enum {
    EK_CONN_KEEP = 0,    /* still open: re-arm with ek_conn_want */
    EK_CONN_DONE = 1,    /* the client closed and got everything back */
    EK_CONN_REFUSED = 2, /* PROXY header bad or refused: counted; close */
    /* < 0: -errno, the connection failed (reset, ...) */
};

/* One read, echoed at once, the unsent rest queued. */
int ek_conn_readable(struct ek_conn *c, int fd, const struct ek_echo_ctx *ctx);

/* Sends what is queued. */
int ek_conn_writable(struct ek_conn *c, int fd, const struct ek_echo_ctx *ctx);

/* The events this connection needs now. 0 means it is finished. */
unsigned ek_conn_want(const struct ek_conn *c, size_t max_queue);

/* Frees the queue. The connection is zero (idle) again. */
void ek_conn_release(struct ek_conn *c);

/* State of one blocking echo: bytes buf[head, tail) are read, not sent. */
struct ek_blocking {
    char *buf;
    size_t size;
    size_t head, tail;
    int64_t idle_ms; /* --idle-timeout, 0: none */
    int64_t last_ms; /* when a byte last moved (set by ek_echo_blocking) */
    /* --proxy-protocol: the header is read first, into the caller's
     * parser, and the connection admitted by it; NULL once done or when no
     * header is expected. */
    struct ek_server *srv;
    struct ek_proxy_parser *proxy;
    int64_t header_deadline_ms; /* set by ek_echo_blocking */
};

/* Results of ek_echo_blocking, besides -errno. */
enum {
    EK_ECHO_DONE = 0,    /* the client closed and got everything back */
    EK_ECHO_WOKEN = 1,   /* wake_fd became readable; call again to resume */
    EK_ECHO_TIMEOUT = 2, /* deadline_ms passed; call again to resume */
    EK_ECHO_IDLE = 3,    /* nothing moved for b->idle_ms: close it */
    EK_ECHO_REFUSED = 4, /* PROXY header bad, late or refused: close */
};

/* Echoes on fd until the client closes, waiting in poll(2) so that wake_fd
 * (if >= 0), deadline_ms (CLOCK_MONOTONIC ms, -1 for none) and
 * b->idle_ms can interrupt it. fd may be blocking: every call uses
 * MSG_DONTWAIT. Counts into `shared` with atomic adds (many threads or
 * processes share it). */
int ek_echo_blocking(int fd, struct ek_blocking *b, int wake_fd,
                     int64_t deadline_ms, struct ek_counters *shared);

#endif
