/*
 * The floor: a minimal epoll echo server with nothing in the way, to show
 * what the kernel allows on this machine. Level-triggered; one read buffer;
 * what a socket does not take waits in a per-connection buffer, and that
 * connection is not read until it is sent (no byte lost, memory bounded).
 * No limits, no drain, no logs: not a server to deploy.
 *
 * usage: floor_epoll [PORT]    (0 or none: a free port)
 */
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct pending {
    char *buf;
    size_t off, len;
};

static struct pending pend[1 << 16]; /* by fd; enough for the benchmarks */
static char buf[65536];

static void watch(int ep, int op, int fd, unsigned events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    epoll_ctl(ep, op, fd, &ev);
}

static void drop(int fd)
{
    free(pend[fd].buf);
    pend[fd] = (struct pending){0};
    close(fd); /* also leaves the epoll set */
}

static void flush(int ep, int fd)
{
    struct pending *p = &pend[fd];
    ssize_t w = write(fd, p->buf + p->off, p->len - p->off);
    if (w < 0)
        return drop(fd);
    p->off += (size_t)w;
    if (p->off == p->len) {
        free(p->buf);
        *p = (struct pending){0};
        watch(ep, EPOLL_CTL_MOD, fd, EPOLLIN);
    }
}

static void echo(int ep, int fd)
{
    ssize_t r = read(fd, buf, sizeof(buf));
    if (r <= 0)
        return drop(fd); /* EOF or error: nothing is pending here */
    ssize_t w = write(fd, buf, (size_t)r);
    if (w < 0)
        w = 0;
    if (w < r) { /* keep the rest, stop reading until it is sent */
        pend[fd] = (struct pending){malloc((size_t)(r - w)), 0,
                                    (size_t)(r - w)};
        memcpy(pend[fd].buf, buf + w, (size_t)(r - w));
        watch(ep, EPOLL_CTL_MOD, fd, EPOLLOUT);
    }
}

int main(int argc, char **argv)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons(argc > 1 ? atoi(argv[1]) : 0),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int one = 1, lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    signal(SIGPIPE, SIG_IGN);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&a, len) < 0 || listen(lfd, SOMAXCONN) < 0)
        return perror("listen"), 1;
    getsockname(lfd, (struct sockaddr *)&a, &len);
    printf("listening on 127.0.0.1:%d\n", ntohs(a.sin_port));
    fflush(stdout);

    int ep = epoll_create1(0);
    struct epoll_event ev[256];
    watch(ep, EPOLL_CTL_ADD, lfd, EPOLLIN);
    for (;;) {
        int n = epoll_wait(ep, ev, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = ev[i].data.fd, c;
            if (fd == lfd) {
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    watch(ep, EPOLL_CTL_ADD, c, EPOLLIN);
                }
            } else if (pend[fd].buf != NULL) {
                flush(ep, fd);
            } else {
                echo(ep, fd);
            }
        }
    }
}
