#include "ek_conn.h"
#include "ek_proxy.h"
#include "ek_server.h"
#include "ek_util.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* MSG_NOSIGNAL everywhere: a peer that reset must cost us one connection,
 * never the process (SIGPIPE is also ignored, belt and braces). */
static ssize_t send_some(int fd, const void *buf, size_t len, int flags)
{
    ssize_t n;
    do
        n = send(fd, buf, len, flags | MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n;
}

static ssize_t recv_some(int fd, void *buf, size_t len, int flags)
{
    ssize_t n;
    do
        n = recv(fd, buf, len, flags);
    while (n < 0 && errno == EINTR);
    return n;
}

static bool would_block(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK;
}

static int queue_rest(struct ek_conn *c, const char *p, size_t n,
                      const struct ek_echo_ctx *ctx)
{
    if (ek_queue_append(&c->queue, p, n) < 0)
        return -ENOMEM;
    if (ek_queue_len(&c->queue) >= ctx->max_queue)
        ek_count(&ctx->counters->queue_full, 1);
    return EK_CONN_KEEP;
}

/* Moves what the socket did not take from the loop's pipe into the
 * connection's queue, so that the pipe is empty for the next connection.
 * Returns 0 or -errno. */
static int pipe_to_queue(struct ek_conn *c, size_t left,
                         const struct ek_echo_ctx *ctx, bool keep)
{
    while (left > 0) {
        size_t k = left < ctx->buf_size ? left : ctx->buf_size;
        ssize_t n = read(ctx->pipe[0], ctx->buf, k);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        if (keep && ek_queue_append(&c->queue, ctx->buf, (size_t)n) < 0)
            keep = false; /* drained all the same; the caller closes */
        left -= (size_t)n;
    }
    return keep ? 0 : -ENOMEM;
}

/* The same echo through the loop's pipe: splice(2) moves the received
 * pages into the pipe and from the pipe into the send queue of the socket,
 * so the payload is never copied through user space. */
static int splice_echo(struct ek_conn *c, int fd, size_t want,
                       const struct ek_echo_ctx *ctx)
{
    const unsigned flags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;
    ssize_t n;
    do
        n = splice(fd, NULL, ctx->pipe[1], NULL, want, flags);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return would_block(errno) ? EK_CONN_KEEP : -errno;
    if (n == 0) {
        c->flags |= EK_CONN_PEER_CLOSED;
        return EK_CONN_DONE; /* the queue was empty */
    }
    ek_count(&ctx->counters->bytes_in, (uint64_t)n);
    if ((size_t)n < EK_BULK_EXIT)
        c->flags &= (uint8_t)~EK_CONN_BULK;

    size_t left = (size_t)n;
    int err = 0;
    while (left > 0) {
        ssize_t w = splice(ctx->pipe[0], NULL, fd, NULL, left, flags);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            err = w < 0 && !would_block(errno) ? -errno : 0;
            break;
        }
        left -= (size_t)w;
        ek_count(&ctx->counters->bytes_out, (uint64_t)w);
    }
    if (left == 0)
        return EK_CONN_KEEP;
    /* The socket is full (or failed): what is left waits in the queue. */
    int qerr = pipe_to_queue(c, left, ctx, err == 0);
    if (err < 0)
        return err;
    if (qerr < 0)
        return qerr;
    if (ek_queue_len(&c->queue) >= ctx->max_queue)
        ek_count(&ctx->counters->queue_full, 1);
    return EK_CONN_KEEP;
}

/* Sends n fresh bytes back at once; queues what the socket does not take.
 * The connection's queue is empty. */
static int echo_now(struct ek_conn *c, int fd, const char *buf, size_t n,
                    const struct ek_echo_ctx *ctx)
{
    ssize_t sent = send_some(fd, buf, n, 0);
    if (sent < 0) {
        if (!would_block(errno))
            return -errno;
        sent = 0;
    }
    ek_count(&ctx->counters->bytes_out, (uint64_t)sent);
    if ((size_t)sent == n)
        return EK_CONN_KEEP;
    return queue_rest(c, buf + sent, n - (size_t)sent, ctx);
}

/* Ends the header phase: frees the parser. */
static void proxy_finish(struct ek_conn *c, int fd,
                         const struct ek_echo_ctx *ctx)
{
    free(ctx->proxy[fd]);
    ctx->proxy[fd] = NULL;
    c->flags &= (uint8_t)~EK_CONN_PROXY;
}

/* --proxy-protocol: reads toward the end of the header; whatever the same
 * read brought after it is the client's first data, echoed as usual. */
static int proxy_readable(struct ek_conn *c, int fd,
                          const struct ek_echo_ctx *ctx)
{
    ssize_t n = recv_some(fd, ctx->buf, ctx->buf_size, 0);
    if (n < 0)
        return would_block(errno) ? EK_CONN_KEEP : -errno;
    if (n == 0) {
        proxy_finish(c, fd, ctx);
        ek_server_proxy_failed(ctx->srv, ctx->acc, fd,
                               "closed before the end of its PROXY header");
        return EK_CONN_REFUSED;
    }
    size_t used;
    struct ek_proxy_result res;
    const char *why = "";
    int rc =
        ek_proxy_feed(ctx->proxy[fd], ctx->buf, (size_t)n, &used, &res, &why);
    if (rc == EK_PROXY_MORE)
        return EK_CONN_KEEP;
    proxy_finish(c, fd, ctx);
    if (rc == EK_PROXY_BAD) {
        ek_server_proxy_failed(ctx->srv, ctx->acc, fd, why);
        return EK_CONN_REFUSED;
    }
    if (!ek_server_proxy_admit(ctx->srv, ctx->acc, fd, &res))
        return EK_CONN_REFUSED;
    if (used == (size_t)n)
        return EK_CONN_KEEP;
    ek_count(&ctx->counters->bytes_in, (uint64_t)n - used);
    return echo_now(c, fd, ctx->buf + used, (size_t)n - used, ctx);
}

int ek_conn_readable(struct ek_conn *c, int fd, const struct ek_echo_ctx *ctx)
{
    if (c->flags & EK_CONN_PROXY)
        return proxy_readable(c, fd, ctx);

    size_t queued = ek_queue_len(&c->queue);
    size_t room = ctx->max_queue - queued;
    size_t want = room < ctx->buf_size ? room : ctx->buf_size;

    /* Events are hints: a stale one may arrive for a connection that is
     * full or half-closed; there is nothing to do then. */
    if (want == 0 || (c->flags & EK_CONN_PEER_CLOSED))
        return EK_CONN_KEEP;
    if (queued == 0 && (c->flags & EK_CONN_BULK) && ctx->pipe[0] >= 0)
        return splice_echo(c, fd, want, ctx);

    ssize_t n = recv_some(fd, ctx->buf, want, 0);
    if (n < 0)
        return would_block(errno) ? EK_CONN_KEEP : -errno;
    if (n == 0) {
        c->flags |= EK_CONN_PEER_CLOSED;
        return queued == 0 ? EK_CONN_DONE : EK_CONN_KEEP;
    }
    ek_count(&ctx->counters->bytes_in, (uint64_t)n);
    if ((size_t)n >= EK_BULK_ENTER)
        c->flags |= EK_CONN_BULK;

    /* Bytes already queued go first: order is the whole contract. */
    if (queued > 0)
        return queue_rest(c, ctx->buf, (size_t)n, ctx);
    return echo_now(c, fd, ctx->buf, (size_t)n, ctx);
}

int ek_conn_writable(struct ek_conn *c, int fd, const struct ek_echo_ctx *ctx)
{
    struct iovec iov[16];
    int n = ek_queue_peek(&c->queue, iov, 16);
    if (n > 0) {
        struct msghdr msg = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        ssize_t sent;
        do
            sent = sendmsg(fd, &msg, MSG_NOSIGNAL);
        while (sent < 0 && errno == EINTR);
        if (sent < 0)
            return would_block(errno) ? EK_CONN_KEEP : -errno;
        ek_queue_consume(&c->queue, (size_t)sent);
        ek_count(&ctx->counters->bytes_out, (uint64_t)sent);
    }
    if (ek_queue_len(&c->queue) == 0 && (c->flags & EK_CONN_PEER_CLOSED))
        return EK_CONN_DONE;
    return EK_CONN_KEEP;
}

unsigned ek_conn_want(const struct ek_conn *c, size_t max_queue)
{
    size_t queued = ek_queue_len(&c->queue);
    unsigned ev = 0;
    if (!(c->flags & EK_CONN_PEER_CLOSED) && queued < max_queue)
        ev |= EK_EV_READ;
    if (queued > 0)
        ev |= EK_EV_WRITE;
    return ev;
}

void ek_conn_release(struct ek_conn *c)
{
    ek_queue_clear(&c->queue);
    c->flags = 0;
    c->interest = 0;
}

/* How many transfers a busy connection may do before it looks at wake_fd
 * and the deadline without blocking: a client that streams without pause
 * never makes us wait in poll, and must still be cut off at the deadline. */
#define EK_BLOCKING_CHECK_EVERY 64

/* What wait_ready returns besides EK_ECHO_WOKEN, EK_ECHO_TIMEOUT, -errno:
 * go on (fd is ready, in error, or a zero-timeout look found nothing). */
#define EK_ECHO_GO_ON 100

/* Waits for fd to become ready for `events`, or for wake_fd / the
 * deadline. just_look makes it a zero-timeout check of wake_fd and the
 * deadline only. */
static int wait_ready(int fd, short events, int wake_fd, int64_t deadline_ms,
                      bool just_look)
{
    struct pollfd p[2] = {{.fd = fd, .events = events},
                          {.fd = wake_fd, .events = POLLIN}};
    nfds_t n = wake_fd >= 0 ? 2 : 1;
    for (;;) {
        int rc = poll(p, n, just_look ? 0 : ek_timeout_until(deadline_ms));
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -errno;
        if (n == 2 && (p[1].revents & POLLIN))
            return EK_ECHO_WOKEN;
        if (deadline_ms >= 0 && ek_now_ms() >= deadline_ms)
            return EK_ECHO_TIMEOUT;
        if (rc == 0 && !just_look)
            continue; /* woke early (clock granularity): wait out the rest */
        return EK_ECHO_GO_ON;
    }
}

/* The earlier of the caller's deadline and the idle deadline. */
static int64_t next_deadline(const struct ek_blocking *b, int64_t deadline_ms)
{
    if (b->idle_ms <= 0)
        return deadline_ms;
    int64_t idle_at = b->last_ms + b->idle_ms;
    return deadline_ms < 0 || idle_at < deadline_ms ? idle_at : deadline_ms;
}

/* A wait_ready result, told apart: the idle deadline or the caller's. */
static int waited(const struct ek_blocking *b, int rc)
{
    if (rc == EK_ECHO_TIMEOUT && b->idle_ms > 0 &&
        ek_now_ms() >= b->last_ms + b->idle_ms)
        return EK_ECHO_IDLE;
    return rc;
}

/* --proxy-protocol in the blocking models: reads the header within
 * EK_PROXY_HEADER_MS, admits the connection by it, and leaves what came
 * after it in b->buf to be echoed first. Returns EK_ECHO_GO_ON to go on,
 * else what ek_echo_blocking returns. */
static int read_proxy_header(int fd, struct ek_blocking *b, int wake_fd,
                             int64_t deadline_ms, struct ek_counters *shared)
{
    struct ek_proxy_result res;
    const char *why = "no PROXY header within 5 s";
    if (b->header_deadline_ms == 0)
        b->header_deadline_ms = ek_now_ms() + EK_PROXY_HEADER_MS;
    int64_t header_deadline = b->header_deadline_ms;
    for (;;) {
        ssize_t n = recv_some(fd, b->buf, b->size, MSG_DONTWAIT);
        if (n == 0)
            why = "closed before the end of its PROXY header";
        if (n < 0 && !would_block(errno))
            why = "failed before the end of its PROXY header";
        if (n == 0 || (n < 0 && !would_block(errno)))
            break;
        if (n < 0) {
            int64_t until = deadline_ms >= 0 && deadline_ms < header_deadline
                                ? deadline_ms
                                : header_deadline;
            int rc = wait_ready(fd, POLLIN, wake_fd, until, false);
            if (rc == EK_ECHO_TIMEOUT && ek_now_ms() < header_deadline)
                return rc; /* the caller's deadline (drain) */
            if (rc == EK_ECHO_TIMEOUT)
                break;
            if (rc != EK_ECHO_GO_ON)
                return rc;
            continue;
        }
        size_t used;
        int rc = ek_proxy_feed(b->proxy, b->buf, (size_t)n, &used, &res, &why);
        if (rc == EK_PROXY_MORE)
            continue;
        b->proxy = NULL;
        if (rc == EK_PROXY_BAD)
            break;
        if (!ek_server_proxy_admit(b->srv, NULL, fd, &res))
            return EK_ECHO_REFUSED;
        memmove(b->buf, b->buf + used, (size_t)n - used);
        b->head = 0;
        b->tail = (size_t)n - used;
        ek_stat_add(&shared->bytes_in, b->tail);
        /* The header had its own deadline; --idle-timeout counts from its
         * end, not from the accept. */
        if (b->idle_ms > 0)
            b->last_ms = ek_now_ms();
        return EK_ECHO_GO_ON;
    }
    b->proxy = NULL;
    ek_server_proxy_failed(b->srv, NULL, fd, why);
    return EK_ECHO_REFUSED;
}

int ek_echo_blocking(int fd, struct ek_blocking *b, int wake_fd,
                     int64_t deadline_ms, struct ek_counters *shared)
{
    if (b->idle_ms > 0 && b->last_ms == 0)
        b->last_ms = ek_now_ms();
    if (b->proxy != NULL) {
        int rc = read_proxy_header(fd, b, wake_fd, deadline_ms, shared);
        if (rc != EK_ECHO_GO_ON)
            return rc;
    }
    for (unsigned ops = 1;; ops++) {
        ssize_t n;
        short need;

        if (ops % EK_BLOCKING_CHECK_EVERY == 0) {
            int rc =
                wait_ready(fd, 0, wake_fd, next_deadline(b, deadline_ms), true);
            if (rc != EK_ECHO_GO_ON)
                return waited(b, rc);
        }
        if (b->head < b->tail) {
            n = send_some(fd, b->buf + b->head, b->tail - b->head,
                          MSG_DONTWAIT);
            if (n > 0) {
                ek_stat_add(&shared->bytes_out, (uint64_t)n);
                if (b->idle_ms > 0)
                    b->last_ms = ek_now_ms();
                b->head += (size_t)n;
                if (b->head == b->tail)
                    b->head = b->tail = 0;
                continue;
            }
            need = POLLOUT;
        } else {
            n = recv_some(fd, b->buf, b->size, MSG_DONTWAIT);
            if (n > 0) {
                ek_stat_add(&shared->bytes_in, (uint64_t)n);
                if (b->idle_ms > 0)
                    b->last_ms = ek_now_ms();
                b->tail = (size_t)n;
                continue;
            }
            if (n == 0)
                return EK_ECHO_DONE;
            need = POLLIN;
        }
        if (!would_block(errno))
            return -errno;
        int rc =
            wait_ready(fd, need, wake_fd, next_deadline(b, deadline_ms), false);
        if (rc != EK_ECHO_GO_ON)
            return waited(b, rc);
    }
}
