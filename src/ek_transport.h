/*
 * ek_transport: how a connection's bytes cross its socket, under the
 * connection layer (ek_conn.h), like redis 7's ConnectionType or
 * HAProxy's xprt_ops. The connection layer decides what to echo and when;
 * the transport only reads and writes. Today there is one, plain TCP and
 * unix sockets (transport_socket.c); TLS is meant to be the next, so the
 * interface already has what a transport that holds bytes of its own and
 * needs a handshake must say:
 *   - read may return -EAGAIN while the socket was readable (a handshake
 *     record, half a TLS record) and bytes while the socket was not
 *     (records decrypted ahead): `pending` tells the engine to read again
 *     without waiting for readiness (the loops do not ask yet: no
 *     transport holds bytes of its own before TLS, which adds the check);
 *   - finish ends our side once the client's stream has ended and all of
 *     it went back (TLS: close_notify), and may itself have to wait;
 *   - splice says whether the bytes on the wire are the payload, the one
 *     case where the splice(2) fast path may bypass read and write.
 *
 * The completion engine (model_uring.c) reads and writes through the ring,
 * not through these calls; a transport that transforms bytes would sit
 * between its buffers and the connection layer (a memory BIO for TLS).
 */
#ifndef EK_TRANSPORT_H
#define EK_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

struct ek_conn;

struct ek_transport {
    const char *name;
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
    /* The client's stream ended and everything was echoed: end ours.
     * Returns 0, -EAGAIN (call again when writable) or -errno. */
    int (*finish)(struct ek_conn *c, int fd);
    /* Frees the transport's state of c (the fd stays the owner's). */
    void (*release)(struct ek_conn *c);
    /* The bytes on the wire are the payload: splice(2) may move them. */
    bool splice;
};

/* TCP and unix stream sockets: recv/sendmsg, MSG_DONTWAIT and
 * MSG_NOSIGNAL on every call, so blocking descriptors work too. */
extern const struct ek_transport ek_transport_socket;

#endif
