#include "ek_metrics.h"
#include "ek_admit.h"
#include "ek_config.h"
#include "ek_log.h"
#include "ek_net.h"
#include "ek_platform.h"
#include "ek_server.h"
#include "ek_signal.h"
#include "ek_util.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define EK_METRICS_CLIENTS 16
#define EK_METRICS_LISTENERS 8
/* A scraper has this long to send its request. */
#define EK_METRICS_REQUEST_MS 5000

struct metrics_client {
    int fd; /* -1: free */
    int64_t deadline_ms;
    size_t len;
    char req[EK_METRICS_REQUEST_MAX];
};

struct ek_metrics {
    struct ek_server *srv;
    const char *model; /* the I/O model's name */
    int listeners[EK_METRICS_LISTENERS];
    size_t nlisteners;
    int stop_pipe[2]; /* written once by ek_metrics_stop */
    pthread_t tid;
    bool running;
    struct metrics_client clients[EK_METRICS_CLIENTS];
    struct ek_ratelimit accept_log;
    /* After accept(2) failed for want of descriptors or memory: the
     * listeners are not watched until then (a client leaving ends the
     * pause sooner), so that a pending connection cannot make poll return
     * at once, again and again, as the echo loops pause their accepts. */
    int64_t accept_paused_until;
};

static void counter(char *buf, size_t size, size_t *len, const char *name,
                    const char *type, const char *help, const char *labels,
                    uint64_t value)
{
    ek_appendf(buf, size, len, "# HELP %s %s\n# TYPE %s %s\n%s%s %llu\n", name,
               help, name, type, name, labels, (unsigned long long)value);
}

/* A counter family with one sample per reason, as {reason="..."}. */
static void by_reason(char *buf, size_t size, size_t *len, const char *name,
                      const char *help, const char *const *reasons,
                      const uint64_t *values, size_t n)
{
    ek_appendf(buf, size, len, "# HELP %s %s\n# TYPE %s counter\n", name, help,
               name);
    for (size_t i = 0; i < n; i++)
        ek_appendf(buf, size, len, "%s{reason=\"%s\"} %llu\n", name, reasons[i],
                   (unsigned long long)values[i]);
}

size_t ek_metrics_format(const struct ek_stats_view *v, const char *model,
                         unsigned threads, char *buf, size_t size)
{
    size_t len = 0;
    if (size > 0)
        buf[0] = '\0';
    ek_appendf(buf, size, &len,
               "# HELP echokit_info The running server: version, I/O model, "
               "event loops.\n# TYPE echokit_info gauge\n"
               "echokit_info{version=\"%s\",model=\"%s\",threads=\"%u\"} 1\n",
               EK_VERSION, model, threads);
    counter(buf, size, &len, "echokit_connections_accepted_total", "counter",
            "Connections admitted.", "", v->accepted);
    counter(buf, size, &len, "echokit_connections_active", "gauge",
            "Connections open now.", "", v->active);
    static const char *const refused_names[] = {
        "limit", "fd", "acl", "proxy", "proxy_untrusted", "handshakes"};
    const uint64_t refused[] = {v->refused_limit,
                                v->refused_fd,
                                v->refused_acl,
                                v->refused_proxy,
                                v->refused_proxy_untrusted,
                                v->refused_handshakes};
    by_reason(buf, size, &len, "echokit_connections_refused_total",
              "Connections closed at once, by reason.", refused_names, refused,
              sizeof(refused) / sizeof(refused[0]));
    counter(buf, size, &len, "echokit_accept_errors_total", "counter",
            "accept(2) failures, fd exhaustion included.", "",
            v->accept_errors);
    counter(buf, size, &len, "echokit_connection_errors_total", "counter",
            "Connections ended by an error (reset, ...).", "", v->conn_errors);
    counter(buf, size, &len, "echokit_connections_idle_closed_total", "counter",
            "Connections closed by --idle-timeout.", "", v->idle_closed);
    counter(buf, size, &len, "echokit_received_bytes_total", "counter",
            "Bytes received from clients.", "", v->bytes_in);
    counter(buf, size, &len, "echokit_sent_bytes_total", "counter",
            "Bytes echoed back to clients.", "", v->bytes_out);
    counter(buf, size, &len, "echokit_queue_full_total", "counter",
            "Times a connection's reading paused at --max-queue.", "",
            v->queue_full);
    counter(buf, size, &len, "echokit_udp_received_datagrams_total", "counter",
            "UDP datagrams received.", "", v->dgrams_in);
    counter(buf, size, &len, "echokit_udp_sent_datagrams_total", "counter",
            "UDP datagrams echoed.", "", v->dgrams_out);
    by_reason(buf, size, &len, "echokit_udp_dropped_datagrams_total",
              "UDP datagrams not answered, by reason.", ek_udp_drop_names,
              v->udp_drops, EK_UDP_DROP_REASONS);
    counter(buf, size, &len, "echokit_tls_handshakes_in_progress", "gauge",
            "TLS connections between the accept and the handshake's end "
            "(--max-handshakes).",
            "", v->tls_handshaking);
    counter(buf, size, &len, "echokit_tls_handshakes_total", "counter",
            "TLS handshakes completed, resumed ones included.", "",
            v->tls_handshakes);
    counter(buf, size, &len, "echokit_tls_resumed_total", "counter",
            "TLS handshakes that resumed a session.", "", v->tls_resumed);
    by_reason(buf, size, &len, "echokit_tls_handshake_failures_total",
              "TLS connections closed before or instead of a handshake, by "
              "reason.",
              ek_tls_fail_names, v->tls_failed, EK_TLS_FAIL_REASONS);
    return len;
}

enum ek_metrics_route ek_metrics_route(const char *req, size_t n)
{
    bool complete = memmem(req, n, "\r\n\r\n", 4) != NULL ||
                    memmem(req, n, "\n\n", 2) != NULL;
    if (!complete && n < EK_METRICS_REQUEST_MAX - 1)
        return EK_METRICS_PENDING; /* a full buffer is answered all the same */
    bool head = n >= 5 && memcmp(req, "HEAD ", 5) == 0;
    if (!head && !(n >= 4 && memcmp(req, "GET ", 4) == 0))
        return EK_METRICS_BAD_METHOD;
    const char *path = req + (head ? 5 : 4);
    size_t left = n - (head ? 5 : 4), plen = 0;
    /* strchr finds the NUL that ends " ?\r\n" too: a NUL ends the path */
    while (plen < left && strchr(" ?\r\n", path[plen]) == NULL)
        plen++;
    if (plen != 8 || memcmp(path, "/metrics", 8) != 0)
        return EK_METRICS_NOT_FOUND;
    return head ? EK_METRICS_HEAD : EK_METRICS_GET;
}

/* The response to a routed request: the status line and, for GET
 * /metrics, the body. Written with one send on a socket whose send buffer
 * is empty, so it does not block; a peer that leaves it unread is closed
 * anyway. */
static void respond(struct ek_metrics *m, struct metrics_client *c,
                    enum ek_metrics_route route)
{
    static const char not_found[] =
        "HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n"
        "Connection: close\r\n\r\nnot found: try /metrics\n";
    static const char bad_method[] =
        "HTTP/1.0 405 Method Not Allowed\r\nAllow: GET, HEAD\r\n"
        "Content-Type: text/plain\r\nConnection: close\r\n\r\n"
        "GET /metrics\n";
    char out[8192 + 256];
    const char *resp = out;
    size_t len;

    if (route == EK_METRICS_BAD_METHOD) {
        resp = bad_method;
        len = sizeof(bad_method) - 1;
    } else if (route == EK_METRICS_NOT_FOUND) {
        resp = not_found;
        len = sizeof(not_found) - 1;
    } else {
        struct ek_stats_view v;
        char body[8192];
        ek_stats_snapshot(m->srv->stats, &v);
        size_t blen = ek_metrics_format(&v, m->model, m->srv->cfg->threads,
                                        body, sizeof(body));
        if (blen >= sizeof(body))
            blen = sizeof(body) - 1; /* cannot happen: ~2.5 KiB */
        int n = snprintf(out, sizeof(out),
                         "HTTP/1.0 200 OK\r\nContent-Type: text/plain; "
                         "version=0.0.4\r\nContent-Length: %zu\r\n"
                         "Connection: close\r\n\r\n%s",
                         blen, route == EK_METRICS_HEAD ? "" : body);
        len = n < 0 ? 0 : (size_t)n;
        if (len >= sizeof(out))
            len = sizeof(out) - 1;
    }
    ssize_t w;
    do
        w = send(c->fd, resp, len, MSG_DONTWAIT | EK_MSG_NOSIGNAL);
    while (w < 0 && errno == EINTR);
}

static void client_close(struct ek_metrics *m, struct metrics_client *c)
{
    close(c->fd);
    c->fd = -1;
    m->accept_paused_until = 0; /* a descriptor is free again */
}

static void client_read(struct ek_metrics *m, struct metrics_client *c)
{
    ssize_t n;
    do
        n = recv(c->fd, c->req + c->len, sizeof(c->req) - 1 - c->len,
                 MSG_DONTWAIT);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (n <= 0) {
        client_close(m, c);
        return;
    }
    c->len += (size_t)n;
    enum ek_metrics_route route = ek_metrics_route(c->req, c->len);
    if (route != EK_METRICS_PENDING) {
        respond(m, c, route);
        client_close(m, c);
    }
}

/* A slot for a new client: a free one, or else the oldest client's, which
 * is closed: preferably one that has sent nothing yet (so that a flood of
 * new connections does not push out a scraper whose request has begun),
 * else any (so that clients that each send a byte and stall cannot hold
 * every slot for their 5 s). A scraper sends its request with its connect
 * and is answered at once (accept_clients), before anyone can push it
 * out. */
static struct metrics_client *client_slot(struct ek_metrics *m)
{
    struct metrics_client *idle = NULL, *oldest = &m->clients[0];
    for (size_t i = 0; i < EK_METRICS_CLIENTS; i++) {
        struct metrics_client *c = &m->clients[i];
        if (c->fd < 0)
            return c;
        if (c->len == 0 && (idle == NULL || c->deadline_ms < idle->deadline_ms))
            idle = c;
        if (c->deadline_ms < oldest->deadline_ms)
            oldest = c;
    }
    struct metrics_client *out = idle != NULL ? idle : oldest;
    close(out->fd);
    out->fd = -1;
    return out;
}

/* Takes what connected, at most a slot's worth per turn, and reads each
 * new client's request at once if it has come (a scraper sends it with
 * its connect, and is answered before anyone can push it out). */
static void accept_clients(struct ek_metrics *m, int lfd)
{
    for (int taken = 0; taken < EK_METRICS_CLIENTS; taken++) {
        int fd = ek_net_accept(lfd, true);
        if (fd < 0 && ek_admit_error_persists(fd)) {
            m->accept_paused_until = ek_now_ms() + EK_ACCEPT_PAUSE_MS;
            ek_log_limited(&m->accept_log, EK_LOG_WARN,
                           "metrics: accept: %s; pausing accepts until a "
                           "client leaves (at most %d ms)",
                           strerror(-fd), EK_ACCEPT_PAUSE_MS);
            return;
        }
        if (fd == -EAGAIN)
            return;
        if (fd < 0)
            continue; /* that client left: the next */
        struct metrics_client *c = client_slot(m);
        c->fd = fd;
        c->len = 0;
        c->deadline_ms = ek_now_ms() + EK_METRICS_REQUEST_MS;
        client_read(m, c);
    }
}

static void *metrics_main(void *arg)
{
    struct ek_metrics *m = arg;
    struct pollfd p[1 + EK_METRICS_LISTENERS + EK_METRICS_CLIENTS];
    struct metrics_client *owner[EK_METRICS_CLIENTS];

    for (;;) {
        size_t n = 0, nc = 0;
        int timeout = -1;
        int64_t now = ek_now_ms();
        bool accepting = now >= m->accept_paused_until;
        if (!accepting)
            timeout = ek_timeout_until(m->accept_paused_until);
        p[n++] = (struct pollfd){.fd = m->stop_pipe[0], .events = POLLIN};
        for (size_t i = 0; i < m->nlisteners; i++) /* -1: not watched */
            p[n++] = (struct pollfd){.fd = accepting ? m->listeners[i] : -1,
                                     .events = POLLIN};
        for (size_t i = 0; i < EK_METRICS_CLIENTS; i++) {
            struct metrics_client *c = &m->clients[i];
            if (c->fd < 0)
                continue;
            if (now >= c->deadline_ms) {
                client_close(m, c);
                continue;
            }
            timeout = ek_timeout_min(timeout, ek_timeout_until(c->deadline_ms));
            owner[nc++] = c;
            p[n++] = (struct pollfd){.fd = c->fd, .events = POLLIN};
        }
        int rc = poll(p, n, timeout);
        if (rc < 0 && errno != EINTR) {
            ek_log(EK_LOG_ERROR, "metrics: poll: %s; /metrics stops",
                   strerror(errno));
            break;
        }
        if (rc <= 0)
            continue;
        if (p[0].revents)
            break;
        for (size_t i = 0; i < m->nlisteners; i++)
            if (p[1 + i].revents)
                accept_clients(m, m->listeners[i]);
        for (size_t i = 0; i < nc; i++)
            if (p[1 + m->nlisteners + i].revents && owner[i]->fd >= 0)
                client_read(m, owner[i]);
    }
    return NULL;
}

static int bind_metrics(struct ek_metrics *m, const struct ek_addr_spec *spec)
{
    struct ek_sockaddr *addrs;
    size_t n;
    int rc = ek_addr_resolve(spec, true, &addrs, &n);
    if (rc != 0 || n == 0) {
        ek_warnx("--metrics: cannot resolve '%s': %s", spec->host,
                 rc != 0 ? gai_strerror(rc) : "no address");
        if (rc == 0)
            free(addrs);
        return rc == EAI_MEMORY ? -ENOMEM : -ENXIO;
    }
    int status = 0;
    for (size_t i = 0; i < n && m->nlisteners < EK_METRICS_LISTENERS; i++) {
        int fd = ek_net_listen(&addrs[i], 64, false);
        if (fd < 0) {
            char name[EK_ADDRSTR_MAX];
            ek_addr_format((struct sockaddr *)&addrs[i].ss, addrs[i].len, name,
                           sizeof(name));
            ek_warnx("--metrics: cannot listen on %s: %s", name, strerror(-fd));
            status = fd;
            break;
        }
        m->listeners[m->nlisteners++] = fd;
    }
    free(addrs);
    return status;
}

int ek_metrics_start(struct ek_server *srv, const char *model,
                     const struct ek_addr_spec *spec, struct ek_metrics **out)
{
    struct ek_metrics *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        ek_warnx("out of memory");
        return -ENOMEM;
    }
    m->srv = srv;
    m->model = model;
    m->stop_pipe[0] = m->stop_pipe[1] = -1;
    for (size_t i = 0; i < EK_METRICS_CLIENTS; i++)
        m->clients[i].fd = -1;
    int status = bind_metrics(m, spec);
    if (status == 0) {
        status = ek_pipe(m->stop_pipe, O_CLOEXEC);
        if (status < 0)
            ek_warnx("--metrics: pipe: %s", strerror(-status));
    }
    if (status == 0) {
        sigset_t saved;
        ek_signal_block_all(&saved); /* signals are the main thread's */
        int err = pthread_create(&m->tid, NULL, metrics_main, m);
        ek_signal_restore(&saved);
        if (err != 0) {
            ek_warnx("--metrics: cannot start its thread: %s", strerror(err));
            status = -err;
        }
        m->running = err == 0;
    }
    if (status != 0) {
        ek_metrics_stop(m);
        return status;
    }
    *out = m;
    return 0;
}

void ek_metrics_announce(const struct ek_metrics *m)
{
    for (size_t i = 0; m != NULL && i < m->nlisteners; i++) {
        struct ek_sockaddr local;
        char name[EK_ADDRSTR_MAX] = "?";
        if (ek_net_local_addr(m->listeners[i], &local) == 0)
            ek_addr_format((struct sockaddr *)&local.ss, local.len, name,
                           sizeof(name));
        printf("metrics on http://%s/metrics\n", name);
    }
    fflush(stdout);
}

void ek_metrics_stop(struct ek_metrics *m)
{
    if (m == NULL)
        return;
    if (m->running) {
        char byte = 0;
        ssize_t w;
        do
            w = write(m->stop_pipe[1], &byte, 1);
        while (w < 0 && errno == EINTR);
        pthread_join(m->tid, NULL);
    }
    for (size_t i = 0; i < EK_METRICS_CLIENTS; i++)
        if (m->clients[i].fd >= 0)
            close(m->clients[i].fd);
    for (size_t i = 0; i < m->nlisteners; i++)
        close(m->listeners[i]);
    for (int i = 0; i < 2; i++)
        if (m->stop_pipe[i] >= 0)
            close(m->stop_pipe[i]);
    free(m);
}
