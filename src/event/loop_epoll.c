/*
 * loop_epoll: the epoll(7) backend, level-triggered.
 *
 * Why level- and not edge-triggered: see model_loop.c. In short, interest
 * only changes under backpressure, so EPOLLET would save no syscalls on the
 * echo path, and LT lets the loop read once per connection per wakeup
 * (fairness) without remembering which sockets still have data.
 *
 * Notes on epoll that matter here:
 * - EPOLLERR and EPOLLHUP are always reported, whatever the interest; they
 *   are passed on as READ|WRITE so the next call meets the error.
 * - An fd is removed from the set automatically only when its last
 *   reference closes; the loop deletes explicitly before close, so a
 *   descriptor shared with a child can never leave a ghost registration.
 */
#include "ek_backend.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

#define EPOLL_BATCH 256

struct epoll_state {
    int epfd;
    struct epoll_event out[EPOLL_BATCH];
};

static int epoll_backend_create(void **out)
{
    struct epoll_state *st = malloc(sizeof(*st));
    if (st == NULL)
        return -ENOMEM;
    st->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (st->epfd < 0) {
        int err = -errno;
        free(st);
        return err;
    }
    *out = st;
    return 0;
}

static void epoll_backend_destroy(void *state)
{
    struct epoll_state *st = state;
    close(st->epfd);
    free(st);
}

static int epoll_backend_modify(void *state, int fd, unsigned old_events,
                                unsigned new_events)
{
    struct epoll_state *st = state;
    struct epoll_event ev = {
        .events = ((new_events & EK_EV_READ) ? EPOLLIN : 0u) |
                  ((new_events & EK_EV_WRITE) ? EPOLLOUT : 0u),
        .data.fd = fd,
    };
    int op = new_events == 0   ? EPOLL_CTL_DEL
             : old_events == 0 ? EPOLL_CTL_ADD
                               : EPOLL_CTL_MOD;
    if (epoll_ctl(st->epfd, op, fd, &ev) < 0)
        return -errno;
    return 0;
}

static int epoll_backend_wait(void *state, struct ek_event *events, int max,
                              int timeout_ms)
{
    struct epoll_state *st = state;
    if (max > EPOLL_BATCH)
        max = EPOLL_BATCH;
    int n = epoll_wait(st->epfd, st->out, max, timeout_ms);
    if (n < 0)
        return -errno;
    for (int i = 0; i < n; i++) {
        uint32_t e = st->out[i].events;
        unsigned ev = 0;
        if (e & (EPOLLIN | EPOLLRDHUP))
            ev |= EK_EV_READ;
        if (e & EPOLLOUT)
            ev |= EK_EV_WRITE;
        if (e & (EPOLLERR | EPOLLHUP))
            ev |= EK_EV_READ | EK_EV_WRITE;
        events[i].fd = st->out[i].data.fd;
        events[i].events = ev;
    }
    return n;
}

const struct ek_backend ek_backend_epoll = {
    .name = "epoll",
    .fd_limit = INT_MAX,
    .create = epoll_backend_create,
    .destroy = epoll_backend_destroy,
    .modify = epoll_backend_modify,
    .wait = epoll_backend_wait,
};
