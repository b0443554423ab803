/*
 * ek_transport: how a connection's bytes cross its socket, under the
 * connection layer (ek_conn.h), like redis 7's ConnectionType or
 * HAProxy's xprt_ops. The connection layer decides what to echo and when;
 * the transport only reads and writes. Two exist: plain TCP and unix
 * sockets (transport_socket.c) and TLS (transport_tls.c, OpenSSL). A
 * transport that holds bytes of its own and needs a handshake says so:
 *   - read may return -EAGAIN while the socket was readable (a handshake
 *     record, half a TLS record) and bytes while the socket was not
 *     (records decrypted ahead): `pending` tells the engine to read again
 *     without waiting for readiness;
 *   - read or writev may return -EAGAIN because the transport must first
 *     move bytes the other way (TLS: a handshake or ticket record to send
 *     while reading): `blocked` names the readiness that unblocks it, and
 *     the engine then retries both directions;
 *   - finish ends our side once the client's stream has ended and all of
 *     it went back (TLS: close_notify), and may itself have to wait;
 *   - splice says whether the bytes on the wire are the payload, the one
 *     case where the splice(2) fast path may bypass read and write;
 *   - header_peek: the transport reads the socket itself (TLS's socket
 *     BIO), so a PROXY header before its bytes is peeked at and only the
 *     header's own bytes taken (ek_conn.c).
 *
 * The completion engine (model_uring.c) reads and writes the socket
 * through the ring, not through these calls: plain connections' bytes
 * directly, TLS's through OpenSSL (ek_transport_tls_mem), whose read,
 * writev and finish then take records from the receive buffers the
 * engine lends and put the ones they make into the connection's queue.
 */
#ifndef EK_TRANSPORT_H
#define EK_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

struct ek_conn;

struct ek_stats;
struct ek_tls_server;

/* What a server lends the connections it accepts, for their life: all the
 * connection layer knows of it (struct ek_server fills one at its open). */
struct ek_conn_ctx {
    struct ek_stats *stats;    /* counted into (shared by every model) */
    struct ek_tls_server *tls; /* tls: listeners' (ek_tls.h); NULL: none */
    uint64_t max_handshakes;   /* --max-handshakes */
    bool proxy_protocol;       /* a PROXY header opens every connection */
};

/* Each transport's number, which a connection keeps (ek_conn_tp). */
enum ek_tp_id { EK_TP_SOCKET, EK_TP_TLS, EK_TP_TLS_MEM, EK_TP_COUNT };

struct ek_transport {
    const char *name;
    enum ek_tp_id id;
    /* Sets up c's state for the connected socket fd, accepted by the
     * server that lends ctx. Returns 0 or -errno: -ENOMEM, or -EBUSY when
     * it refuses the connection (TLS: --max-handshakes), which it counted
     * and logged: the caller closes it, as any refusal. */
    int (*open)(struct ek_conn *c, int fd, const struct ek_conn_ctx *ctx);
    /* Up to len bytes into buf: n > 0, 0 at the end of the client's
     * stream, -EAGAIN when none are ready, or -errno. Never blocks. */
    ssize_t (*read)(struct ek_conn *c, int fd, void *buf, size_t len);
    /* Bytes from iov: how many were taken (>= 0), -EAGAIN when none could
     * be, or -errno. Never blocks, never raises SIGPIPE. */
    ssize_t (*writev)(struct ek_conn *c, int fd, const struct iovec *iov,
                      int iovcnt);
    /* Bytes the transport holds that read would return now, whether or
     * not the socket is readable. */
    bool (*pending)(const struct ek_conn *c);
    /* The readiness (EK_EV_READ or EK_EV_WRITE, ek_backend.h) the last
     * -EAGAIN of read, writev or finish waits for besides the obvious one,
     * 0 when none. */
    unsigned (*blocked)(const struct ek_conn *c);
    /* Whether the transport's handshake is still under way (its deadline
     * then applies: ek_idle.h). */
    bool (*handshaking)(const struct ek_conn *c);
    /* The client's stream ended and everything was echoed: end ours.
     * Returns 0, -EAGAIN (call again when writable) or -errno. */
    int (*finish)(struct ek_conn *c, int fd);
    /* Frees the transport's state of c (the fd stays the owner's). */
    void (*release)(struct ek_conn *c);
    /* The bytes on the wire are the payload: splice(2) may move them. */
    bool splice;
    /* It reads the socket itself: a PROXY header before it is peeked. */
    bool header_peek;
};

/* TCP and unix stream sockets: recv/sendmsg, MSG_DONTWAIT and
 * MSG_NOSIGNAL on every call, so blocking descriptors work too. */
extern const struct ek_transport ek_transport_socket;

#ifdef EK_HAVE_TLS
/* TLS, server side (tls: listeners, ek_tls.h) or client side
 * (ek_tls_client_attach). */
extern const struct ek_transport ek_transport_tls;
/* TLS, server side, over memory instead of the socket, for the completion
 * engine: see ek_tls.h (ek_tls_mem_*). */
extern const struct ek_transport ek_transport_tls_mem;
#endif

/* By enum ek_tp_id (NULL: not in this build). */
extern const struct ek_transport *const ek_transports[EK_TP_COUNT];

#endif
