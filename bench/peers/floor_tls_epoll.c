/*
 * The TLS floor: a minimal non-blocking OpenSSL + epoll echo server, to
 * show what OpenSSL and the kernel allow on this machine. Level-triggered;
 * OpenSSL on the socket (SSL_set_fd), read ahead, records read ahead are
 * drained before waiting again; an echo the socket does not take waits in
 * a per-connection buffer (retried with the same bytes, as OpenSSL wants),
 * and that connection is not read until it is sent. Session tickets on
 * (OpenSSL's defaults). No limits, no deadlines, no logs: not a server to
 * deploy. TCP_NODELAY on, as in every TLS server.
 *
 * usage: floor_tls_epoll CERT KEY [PORT]    (0 or none: a free port)
 * prints "listening on 127.0.0.1:PORT".
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct conn {
    SSL *ssl;
    char *buf; /* an echo the socket did not take */
    size_t off, len;
};

static struct conn conns[1 << 16]; /* by fd; enough for the benchmarks */
static char buf[65536];

static void watch(int ep, int op, int fd, unsigned events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    epoll_ctl(ep, op, fd, &ev);
}

static void drop(int fd)
{
    SSL_free(conns[fd].ssl);
    free(conns[fd].buf);
    conns[fd] = (struct conn){0};
    close(fd);
}

/* Sends what waits. Returns 1 when all went, 0 to wait, -1 to drop. */
static int flush(int ep, int fd)
{
    struct conn *c = &conns[fd];
    while (c->off < c->len) {
        size_t n = 0;
        if (SSL_write_ex(c->ssl, c->buf + c->off, c->len - c->off, &n)) {
            c->off += n;
            continue;
        }
        int e = SSL_get_error(c->ssl, 0);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
            watch(ep, EPOLL_CTL_MOD, fd, EPOLLOUT);
            return 0;
        }
        return -1;
    }
    free(c->buf);
    c->buf = NULL;
    c->off = c->len = 0;
    watch(ep, EPOLL_CTL_MOD, fd, EPOLLIN);
    return 1;
}

/* Reads and echoes, straight from the read buffer, until OpenSSL wants
 * the socket; what the socket does not take is kept for flush. */
static void serve(int ep, int fd)
{
    struct conn *c = &conns[fd];
    if (c->buf != NULL) {
        int rc = flush(ep, fd);
        if (rc <= 0) {
            if (rc < 0)
                drop(fd);
            return;
        }
    }
    for (;;) {
        size_t n = 0, off = 0, w = 0;
        if (!SSL_read_ex(c->ssl, buf, sizeof(buf), &n)) {
            int e = SSL_get_error(c->ssl, 0);
            if (e == SSL_ERROR_WANT_READ)
                return;
            if (e == SSL_ERROR_ZERO_RETURN)
                SSL_shutdown(c->ssl);
            drop(fd);
            ERR_clear_error();
            return;
        }
        while (off < n && SSL_write_ex(c->ssl, buf + off, n - off, &w))
            off += w;
        if (off == n)
            continue;
        int e = SSL_get_error(c->ssl, 0);
        if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ) {
            drop(fd);
            return;
        }
        /* Retried later with these same bytes (OpenSSL wants at least as
         * many as the write that waited). */
        c->buf = malloc(n - off);
        if (c->buf == NULL) {
            drop(fd);
            return;
        }
        memcpy(c->buf, buf + off, n - off);
        c->off = 0;
        c->len = n - off;
        watch(ep, EPOLL_CTL_MOD, fd, EPOLLOUT);
        return;
    }
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: floor_tls_epoll CERT KEY [PORT]\n");
        return 64;
    }
    signal(SIGPIPE, SIG_IGN);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL ||
        SSL_CTX_use_certificate_chain_file(ctx, argv[1]) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, argv[2], SSL_FILETYPE_PEM) != 1) {
        ERR_print_errors_fp(stderr);
        return 1;
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);

    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons(argc > 3 ? atoi(argv[3]) : 0),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    if (bind(ls, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
        listen(ls, SOMAXCONN) < 0 ||
        getsockname(ls, (struct sockaddr *)&sa, &len) < 0) {
        perror("floor_tls_epoll");
        return 1;
    }
    printf("listening on 127.0.0.1:%d\n", ntohs(sa.sin_port));
    fflush(stdout);

    int ep = epoll_create1(0);
    watch(ep, EPOLL_CTL_ADD, ls, EPOLLIN);
    struct epoll_event evs[256];
    for (;;) {
        int n = epoll_wait(ep, evs, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd != ls) {
                serve(ep, fd);
                continue;
            }
            int c;
            while ((c = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                if (c >= (int)(sizeof(conns) / sizeof(conns[0])) ||
                    (conns[c].ssl = SSL_new(ctx)) == NULL) {
                    close(c);
                    continue;
                }
                /* As every TLS server does: a handshake's last flight
                 * and the session tickets must not wait for an ACK. */
                int on = 1;
                setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
                SSL_set_fd(conns[c].ssl, c);
                SSL_set_accept_state(conns[c].ssl);
                watch(ep, EPOLL_CTL_ADD, c, EPOLLIN);
            }
        }
    }
}
