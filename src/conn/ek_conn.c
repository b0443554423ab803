#include "ek_conn.h"
#include "ek_backend.h"
#include "ek_platform.h"
#include "ek_proxy.h"
#include "ek_stats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int ek_conn_open(struct ek_conn *c, int fd, const struct ek_transport *tp,
                 const struct ek_conn_ctx *ctx)
{
    memset(c, 0, sizeof(*c));
    if (ctx->proxy_protocol) {
        c->proxy = calloc(1, sizeof(*c->proxy));
        if (c->proxy == NULL)
            return -ENOMEM;
    }
    int err = tp->open(c, fd, ctx);
    if (err < 0) {
        free(c->proxy);
        memset(c, 0, sizeof(*c));
        return err;
    }
    c->tp = (uint8_t)tp->id;
    return 0;
}

void ek_conn_release(struct ek_conn *c)
{
    ek_conn_tp(c)->release(c);
    ek_queue_clear(&c->queue);
    free(c->proxy);
    memset(c, 0, sizeof(*c));
}

/* ---- the PROXY header phase ------------------------------------------ */

static void header_end(struct ek_conn *c)
{
    free(c->proxy);
    c->proxy = NULL;
}

ssize_t ek_conn_header_read(struct ek_conn *c, int fd, void *buf, size_t len)
{
    if (!ek_conn_tp(c)->header_peek)
        return ek_conn_tp(c)->read(c, fd, buf, len);
    ssize_t n;
    do
        n = recv(fd, buf, len, MSG_PEEK | MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return n;
}

/* Takes the n bytes of header ek_conn_header_read peeked at out of the
 * socket (into buf, which held them). Returns 0 or -errno. */
static int header_take(int fd, char *buf, size_t n)
{
    while (n > 0) {
        ssize_t k = recv(fd, buf, n, MSG_DONTWAIT);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0) /* they were there a moment ago */
            return k < 0 ? -errno : -EIO;
        n -= (size_t)k;
    }
    return 0;
}

int ek_conn_header_input(struct ek_conn *c, int fd,
                         const struct ek_conn_env *env, const char *data,
                         size_t n, size_t *used)
{
    struct ek_proxy_result res;
    const char *why = "";
    int rc = ek_proxy_feed(c->proxy, data, n, used, &res, &why);
    if (rc != EK_PROXY_BAD && ek_conn_tp(c)->header_peek) {
        int err = header_take(fd, (char *)data, *used);
        if (err < 0) {
            ek_conn_header_failed(c, fd, env, ek_conn_header_cut(err));
            return EK_HEADER_REFUSED;
        }
        *used = n; /* what followed is still in the socket */
    }
    if (rc == EK_PROXY_MORE)
        return EK_HEADER_MORE;
    header_end(c);
    if (rc == EK_PROXY_BAD) {
        env->proxy->failed(env->srv, env->acc, fd, why);
        return EK_HEADER_REFUSED;
    }
    if (!env->proxy->admit(env->srv, env->acc, fd, &res))
        return EK_HEADER_REFUSED;
    /* The header had its own deadline; --idle-timeout counts from its end,
     * not from the accept. */
    if (env->idle_now != NULL)
        c->active_tick = *env->idle_now;
    return EK_HEADER_DONE;
}

const char *ek_conn_header_cut(ssize_t rc)
{
    return rc == 0 ? "closed before the end of its PROXY header"
                   : "failed before the end of its PROXY header";
}

void ek_conn_header_failed(struct ek_conn *c, int fd,
                           const struct ek_conn_env *env, const char *why)
{
    header_end(c);
    env->proxy->failed(env->srv, env->acc, fd, why);
}

/* ---- the echo policy ------------------------------------------------- */

int ek_conn_queue(struct ek_conn *c, const struct ek_conn_env *env,
                  const char *data, size_t n, bool front)
{
    size_t before = ek_queue_len(&c->queue);
    int err = front ? ek_queue_prepend(&c->queue, data, n)
                    : ek_queue_append(&c->queue, data, n);
    if (err < 0)
        return err;
    if (before < env->max_queue && ek_queue_len(&c->queue) >= env->max_queue)
        ek_count(&env->counters->queue_full, 1);
    return 0;
}

void ek_conn_touch(struct ek_conn *c, const struct ek_conn_env *env)
{
    if (env->idle_now != NULL)
        c->active_tick = *env->idle_now;
}

void ek_conn_received(struct ek_conn *c, const struct ek_conn_env *env,
                      size_t n)
{
    ek_count(&env->counters->bytes_in, n);
    ek_conn_touch(c, env);
}

void ek_conn_sent(struct ek_conn *c, const struct ek_conn_env *env, size_t n)
{
    ek_count(&env->counters->bytes_out, n);
    ek_conn_touch(c, env);
}

/* ---- the readiness engine -------------------------------------------- */

/* The client's stream ended and the queue is empty: end ours. */
static int finish(struct ek_conn *c, int fd)
{
    int rc = ek_conn_tp(c)->finish(c, fd);
    if (rc == -EAGAIN) {
        c->flags |= EK_CONN_FINISHING;
        return EK_CONN_KEEP;
    }
    return rc < 0 ? rc : EK_CONN_DONE;
}

/* Moves what the socket did not take from the loop's pipe into the
 * connection's queue, so that the pipe is empty for the next connection.
 * Returns 0 or -errno. */
static int pipe_to_queue(struct ek_conn *c, size_t left,
                         const struct ek_conn_env *env, bool keep)
{
    while (left > 0) {
        size_t k = left < env->buf_size ? left : env->buf_size;
        ssize_t n = read(env->pipe[0], env->buf, k);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return n < 0 ? -errno : -EIO;
        if (keep && ek_conn_queue(c, env, env->buf, (size_t)n, false) < 0)
            keep = false; /* drained all the same; the caller closes */
        left -= (size_t)n;
    }
    return keep ? 0 : -ENOMEM;
}

/* The echo through the loop's pipe: splice(2) moves the received pages
 * into the pipe and from the pipe into the send queue of the socket, so
 * the payload is never copied through user space. The queue is empty. */
static int splice_echo(struct ek_conn *c, int fd, size_t want,
                       const struct ek_conn_env *env)
{
    ssize_t n = ek_splice(fd, env->pipe[1], want);
    if (n < 0)
        return n == -EAGAIN ? EK_CONN_KEEP : (int)n;
    if (n == 0) {
        c->flags |= EK_CONN_PEER_CLOSED;
        return finish(c, fd);
    }
    ek_conn_received(c, env, (size_t)n);
    if ((size_t)n < EK_BULK_EXIT)
        c->flags &= (uint8_t)~EK_CONN_BULK;

    size_t left = (size_t)n;
    int err = 0;
    while (left > 0) {
        ssize_t w = ek_splice(env->pipe[0], fd, left);
        if (w <= 0) {
            err = w < 0 && w != -EAGAIN ? (int)w : 0;
            break;
        }
        left -= (size_t)w;
        ek_conn_sent(c, env, (size_t)w);
    }
    if (left == 0)
        return EK_CONN_KEEP;
    /* The socket is full (or failed): what is left waits in the queue. */
    int qerr = pipe_to_queue(c, left, env, err == 0);
    return err < 0 ? err : qerr < 0 ? qerr : EK_CONN_KEEP;
}

/* Sends n fresh bytes back at once; queues what the transport does not
 * take. The connection's queue is empty. */
static int echo_now(struct ek_conn *c, int fd, const char *buf, size_t n,
                    const struct ek_conn_env *env)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
    ssize_t sent = ek_conn_tp(c)->writev(c, fd, &iov, 1);
    if (sent == -EAGAIN)
        sent = 0;
    if (sent < 0)
        return (int)sent;
    if (sent > 0)
        ek_conn_sent(c, env, (size_t)sent);
    if ((size_t)sent == n)
        return EK_CONN_KEEP;
    return ek_conn_queue(c, env, buf + sent, n - (size_t)sent, false);
}

/* --proxy-protocol: reads toward the end of the header; whatever the same
 * read brought after it is the client's first data, echoed as usual. */
static int header_readable(struct ek_conn *c, int fd,
                           const struct ek_conn_env *env)
{
    ssize_t n = ek_conn_header_read(c, fd, env->buf, env->buf_size);
    if (n == -EAGAIN)
        return EK_CONN_KEEP;
    if (n <= 0) {
        ek_conn_header_failed(c, fd, env, ek_conn_header_cut(n));
        return EK_CONN_REFUSED;
    }
    size_t used;
    int v = ek_conn_header_input(c, fd, env, env->buf, (size_t)n, &used);
    if (v == EK_HEADER_REFUSED)
        return EK_CONN_REFUSED;
    if (v == EK_HEADER_MORE || used == (size_t)n)
        return EK_CONN_KEEP;
    ek_conn_received(c, env, (size_t)n - used);
    return echo_now(c, fd, env->buf + used, (size_t)n - used, env);
}

/* One read, echoed at once, the unsent rest queued. */
static int readable(struct ek_conn *c, int fd, const struct ek_conn_env *env)
{
    if (c->proxy != NULL)
        return header_readable(c, fd, env);

    size_t queued = ek_queue_len(&c->queue);
    size_t room = ek_conn_room(c, env->max_queue);
    size_t want = room < env->buf_size ? room : env->buf_size;

    /* Events are hints: a stale one may arrive for a connection that is
     * full or half-closed; there is nothing to do then. */
    if (want == 0 || (c->flags & EK_CONN_PEER_CLOSED))
        return EK_CONN_KEEP;
    if (queued == 0 && (c->flags & EK_CONN_BULK) && env->pipe[0] >= 0 &&
        ek_conn_tp(c)->splice)
        return splice_echo(c, fd, want, env);

    ssize_t n = ek_conn_tp(c)->read(c, fd, env->buf, want);
    if (n == -EAGAIN)
        return EK_CONN_KEEP;
    if (n < 0)
        return (int)n;
    if (n == 0) {
        c->flags |= EK_CONN_PEER_CLOSED;
        return queued == 0 ? finish(c, fd) : EK_CONN_KEEP;
    }
    ek_conn_received(c, env, (size_t)n);
    if ((size_t)n >= EK_BULK_ENTER)
        c->flags |= EK_CONN_BULK;

    /* Bytes already queued go first: order is the whole contract. */
    if (queued > 0)
        return ek_conn_queue(c, env, env->buf, (size_t)n, false);
    return echo_now(c, fd, env->buf, (size_t)n, env);
}

/* Sends what is queued. */
static int writable(struct ek_conn *c, int fd, const struct ek_conn_env *env)
{
    if (c->flags & EK_CONN_FINISHING)
        return finish(c, fd);
    struct iovec iov[16];
    int n = ek_queue_peek(&c->queue, iov, 16);
    if (n > 0) {
        ssize_t sent = ek_conn_tp(c)->writev(c, fd, iov, n);
        if (sent == -EAGAIN)
            return EK_CONN_KEEP;
        if (sent < 0)
            return (int)sent;
        ek_queue_consume(&c->queue, (size_t)sent);
        ek_conn_sent(c, env, (size_t)sent);
    }
    if (ek_queue_len(&c->queue) == 0 && (c->flags & EK_CONN_PEER_CLOSED))
        return finish(c, fd);
    return EK_CONN_KEEP;
}

int ek_conn_event(struct ek_conn *c, int fd, const struct ek_conn_env *env,
                  unsigned events)
{
    /* What the transport waited for came: whichever call waited (a read
     * that had a record to send, a write that had one to receive) may go
     * on now. */
    if (events & ek_conn_tp(c)->blocked(c))
        events |= EK_EV_READ | EK_EV_WRITE;
    bool handshaking = ek_conn_tp(c)->handshaking(c);
    int rc = EK_CONN_KEEP;
    /* Write first: draining the queue makes room for the read. */
    if (events & EK_EV_WRITE)
        rc = writable(c, fd, env);
    if (rc == EK_CONN_KEEP && (events & EK_EV_READ))
        rc = readable(c, fd, env);
    /* The handshake had its own deadline; --idle-timeout counts from its
     * end (as from a PROXY header's), not from the accept. */
    if (handshaking && rc == EK_CONN_KEEP && !ek_conn_tp(c)->handshaking(c))
        ek_conn_touch(c, env);
    return rc;
}

/* What the connection itself needs: read while there is room, write while
 * bytes wait; a finish that waits, to write. */
static unsigned wanted(const struct ek_conn *c, size_t max_queue)
{
    if (c->flags & EK_CONN_FINISHING)
        return EK_EV_WRITE;
    size_t queued = ek_queue_len(&c->queue);
    unsigned ev = 0;
    if (!(c->flags & EK_CONN_PEER_CLOSED) && queued < max_queue)
        ev |= EK_EV_READ;
    if (queued > 0)
        ev |= EK_EV_WRITE;
    return ev;
}

unsigned ek_conn_want(const struct ek_conn *c, size_t max_queue)
{
    unsigned ev = wanted(c, max_queue);
    if (ev == 0)
        return 0; /* done */
    unsigned blocked = ek_conn_tp(c)->blocked(c);
    /* A read that must first write (TLS) gains nothing from readability:
     * watching it would only spin on level-triggered readiness. */
    if (blocked & EK_EV_WRITE)
        ev &= ~(unsigned)EK_EV_READ;
    return ev | blocked;
}

bool ek_conn_read_pending(const struct ek_conn *c, size_t max_queue)
{
    return c->proxy == NULL && (wanted(c, max_queue) & EK_EV_READ) &&
           ek_conn_tp(c)->pending(c);
}

/* The slot's size is documented (README, ek_loop.h): keep it. */
_Static_assert(sizeof(void *) != 8 || sizeof(struct ek_conn) == 48,
               "struct ek_conn must stay 48 bytes on 64-bit systems");
