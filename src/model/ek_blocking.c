#include "ek_blocking.h"
#include "ek_admit.h"
#include "ek_backend.h"
#include "ek_idle.h"
#include "ek_proxy.h"
#include "ek_server.h"
#include "ek_util.h"
#include "ek_stats.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

/* How many transfers a busy connection may do before it looks at wake_fd
 * and the deadline without blocking: a client that streams without pause
 * never makes us wait in poll, and must still be cut off at the deadline. */
#define EK_BLOCKING_CHECK_EVERY 64

/* What wait_ready returns besides EK_ECHO_WOKEN, EK_ECHO_TIMEOUT, -errno:
 * go on (fd is ready, in error, or a zero-timeout look found nothing). */
#define EK_ECHO_GO_ON 100

int ek_blocking_open(struct ek_blocking *b, struct ek_server *srv, int fd,
                     const struct ek_transport *tp, char *buf, size_t size)
{
    memset(b, 0, sizeof(*b));
    b->srv = srv;
    b->buf = buf;
    b->size = size;
    b->idle_ms = srv->cfg->idle_timeout_ms;
    b->last_ms = ek_now_ms();
    b->header_deadline_ms = b->last_ms + EK_PROXY_HEADER_MS;
    b->handshake_ms = srv->cfg->handshake_timeout_ms;
    b->handshake_deadline_ms = -1;
    int err = ek_conn_open(&b->conn, fd, tp, &srv->conn);
    return err == -EBUSY ? EK_ECHO_REFUSED : err;
}

int ek_blocking_close(struct ek_blocking *b, int fd, int rc)
{
    ek_conn_release(&b->conn);
    close(fd);
    if (rc == EK_ECHO_IDLE)
        ek_stat_add(&b->srv->stats->idle_closed, 1);
    return rc < 0 ? rc : 0;
}

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

/* The earlier of two deadlines, -1 being none. */
static int64_t earlier(int64_t a, int64_t b)
{
    return a < 0 || (b >= 0 && b < a) ? b : a;
}

/* Whether the transport's handshake is under way: its clock starts at the
 * first look (after the PROXY header, as in the event loops). Its end
 * starts the idle clock, as a PROXY header's does: --idle-timeout counts
 * from the last byte echoed or the handshake's end. */
static bool handshaking(struct ek_blocking *b)
{
    if (!ek_conn_tp(&b->conn)->handshaking(&b->conn)) {
        if (b->handshake_deadline_ms >= 0) { /* it ended since the last look */
            b->handshake_deadline_ms = -1;
            b->last_ms = ek_now_ms();
        }
        return false;
    }
    if (b->handshake_deadline_ms < 0)
        b->handshake_deadline_ms = ek_now_ms() + b->handshake_ms;
    return true;
}

/* The earliest of the caller's deadline and the handshake's, or, past the
 * handshake, the idle deadline (the handshake has its own, as in the
 * event loops). */
static int64_t next_deadline(struct ek_blocking *b, int64_t deadline_ms)
{
    if (handshaking(b))
        return earlier(deadline_ms, b->handshake_deadline_ms);
    if (b->idle_ms > 0)
        deadline_ms = earlier(deadline_ms, b->last_ms + b->idle_ms);
    return deadline_ms;
}

/* A wait_ready result, told apart: the handshake's deadline, the idle
 * deadline or the caller's. */
static int waited(struct ek_blocking *b, int fd, int rc)
{
    if (rc != EK_ECHO_TIMEOUT)
        return rc;
    int64_t now = ek_now_ms();
    if (handshaking(b)) {
        if (now < b->handshake_deadline_ms)
            return rc;
        ek_idle_handshake_late(b->srv, fd);
        return EK_ECHO_REFUSED;
    }
    if (b->idle_ms > 0 && now >= b->last_ms + b->idle_ms)
        return EK_ECHO_IDLE;
    return rc;
}

/* What to wait for after the transport said -EAGAIN: `need`, or what the
 * transport itself waits for (a TLS record to send while reading...). */
static short poll_events(const struct ek_conn *c, short need)
{
    unsigned blocked = ek_conn_tp(c)->blocked(c);
    if (blocked & EK_EV_READ)
        need |= POLLIN;
    if (blocked & EK_EV_WRITE) /* a read that must first write: only that */
        need = POLLOUT;
    return need;
}

static void moved(struct ek_blocking *b, atomic_uint_fast64_t *counter,
                  size_t n)
{
    ek_stat_add(counter, n);
    if (b->idle_ms > 0)
        b->last_ms = ek_now_ms();
}

/* --proxy-protocol: reads the header within EK_PROXY_HEADER_MS, admits the
 * connection by it, and leaves what came after it in b->buf to be echoed
 * first. Returns EK_ECHO_GO_ON to go on, else what ek_echo_blocking
 * returns. */
static int read_proxy_header(int fd, struct ek_blocking *b, int wake_fd,
                             int64_t deadline_ms)
{
    struct ek_conn *c = &b->conn;
    const struct ek_conn_env env = {.srv = b->srv,
                                    .proxy = &ek_admit_proxy_verdicts};
    const char *why = "no PROXY header within 5 s";
    while (c->proxy != NULL) {
        ssize_t n = ek_conn_header_read(c, fd, b->buf, b->size);
        if (n == 0 || (n < 0 && n != -EAGAIN)) {
            why = ek_conn_header_cut(n);
            break;
        }
        if (n == -EAGAIN) {
            int64_t until =
                deadline_ms >= 0 && deadline_ms < b->header_deadline_ms
                    ? deadline_ms
                    : b->header_deadline_ms;
            int rc = wait_ready(fd, POLLIN, wake_fd, until, false);
            if (rc == EK_ECHO_TIMEOUT && ek_now_ms() < b->header_deadline_ms)
                return rc; /* the caller's deadline (drain) */
            if (rc == EK_ECHO_TIMEOUT)
                break;
            if (rc != EK_ECHO_GO_ON)
                return rc;
            continue;
        }
        size_t used;
        int v = ek_conn_header_input(c, fd, &env, b->buf, (size_t)n, &used);
        if (v == EK_HEADER_REFUSED)
            return EK_ECHO_REFUSED;
        if (v == EK_HEADER_DONE) {
            memmove(b->buf, b->buf + used, (size_t)n - used);
            b->head = 0;
            b->tail = (size_t)n - used;
            /* --idle-timeout counts from the header's end. */
            moved(b, &b->srv->stats->shared.bytes_in, b->tail);
            return EK_ECHO_GO_ON;
        }
    }
    ek_conn_header_failed(c, fd, &env, why);
    return EK_ECHO_REFUSED;
}

int ek_echo_blocking(int fd, struct ek_blocking *b, int wake_fd,
                     int64_t deadline_ms)
{
    struct ek_conn *c = &b->conn;
    struct ek_counters *shared = &b->srv->stats->shared;
    if (c->proxy != NULL) {
        int rc = read_proxy_header(fd, b, wake_fd, deadline_ms);
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
                return waited(b, fd, rc);
        }
        if (b->head < b->tail) {
            struct iovec iov = {.iov_base = b->buf + b->head,
                                .iov_len = b->tail - b->head};
            n = ek_conn_tp(c)->writev(c, fd, &iov, 1);
            if (n > 0) {
                moved(b, &shared->bytes_out, (size_t)n);
                b->head += (size_t)n;
                if (b->head == b->tail)
                    b->head = b->tail = 0;
                continue;
            }
            need = POLLOUT;
        } else {
            n = ek_conn_tp(c)->read(c, fd, b->buf, b->size);
            if (n > 0) {
                moved(b, &shared->bytes_in, (size_t)n);
                b->tail = (size_t)n;
                continue;
            }
            need = POLLIN;
            if (n == 0) { /* the client is done and has it all: end ours */
                n = ek_conn_tp(c)->finish(c, fd);
                if (n == 0)
                    return EK_ECHO_DONE;
                need = POLLOUT;
            }
        }
        if (n != -EAGAIN)
            return (int)n;
        int rc = wait_ready(fd, poll_events(c, need), wake_fd,
                            next_deadline(b, deadline_ms), false);
        if (rc != EK_ECHO_GO_ON)
            return waited(b, fd, rc);
    }
}
