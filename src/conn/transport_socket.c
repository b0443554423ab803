/*
 * transport_socket: the plain transport, TCP and unix stream sockets.
 * It holds no state and no bytes of its own.
 */
#include "ek_transport.h"
#include "ek_platform.h"

#include <errno.h>
#include <sys/socket.h>

/* MSG_NOSIGNAL everywhere (SO_NOSIGPIPE where there is none,
 * ek_platform.h): a peer that reset must cost us one connection, never the
 * process (SIGPIPE is also ignored, belt and braces). */
static ssize_t socket_read(struct ek_conn *c, int fd, void *buf, size_t len)
{
    (void)c;
    ssize_t n;
    do
        n = recv(fd, buf, len, MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return n;
}

/* One piece (the echo of a read, the usual case) goes by send(2), which
 * the kernel takes with less work than sendmsg(2): no msghdr or iovec to
 * copy in. */
static ssize_t socket_writev(struct ek_conn *c, int fd, const struct iovec *iov,
                             int iovcnt)
{
    (void)c;
    const int flags = MSG_DONTWAIT | EK_MSG_NOSIGNAL;
    struct msghdr msg = {.msg_iov = (struct iovec *)iov,
                         .msg_iovlen = (size_t)iovcnt};
    ssize_t n;
    do
        n = iovcnt == 1 ? send(fd, iov[0].iov_base, iov[0].iov_len, flags)
                        : sendmsg(fd, &msg, flags);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return n;
}

static int socket_open(struct ek_conn *c, int fd, const struct ek_conn_ctx *ctx)
{
    (void)c;
    (void)fd;
    (void)ctx;
    return 0;
}

/* pending, handshaking: there is no state to hold bytes or a handshake. */
static bool socket_never(const struct ek_conn *c)
{
    (void)c;
    return false;
}

static unsigned socket_blocked(const struct ek_conn *c)
{
    (void)c;
    return 0;
}

/* Nothing to say at the end: closing the socket sends the FIN. */
static int socket_finish(struct ek_conn *c, int fd)
{
    (void)c;
    (void)fd;
    return 0;
}

static void socket_release(struct ek_conn *c)
{
    (void)c;
}

const struct ek_transport ek_transport_socket = {
    .name = "socket",
    .id = EK_TP_SOCKET,
    .open = socket_open,
    .read = socket_read,
    .writev = socket_writev,
    .pending = socket_never,
    .blocked = socket_blocked,
    .handshaking = socket_never,
    .finish = socket_finish,
    .release = socket_release,
    .splice = true,
    .header_peek = false,
};
