/*
 * loop_poll: the poll(2) backend.
 *
 * A dense pollfd array, and a map from fd to its index so that modify is
 * O(1): removal moves the last entry into the hole. The kernel still scans
 * the whole array on every call, which is the model's known cost.
 */
#include "ek_backend.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

struct poll_state {
    struct pollfd *fds; /* watched descriptors, dense */
    size_t n, cap;
    int *index; /* fd -> position in fds, -1 if not watched */
    size_t index_cap;
    size_t cursor; /* where the next scan of results starts */
};

static short to_poll(unsigned ev)
{
    return (short)(((ev & EK_EV_READ) ? POLLIN : 0) |
                   ((ev & EK_EV_WRITE) ? POLLOUT : 0));
}

static int poll_backend_create(void **out)
{
    *out = calloc(1, sizeof(struct poll_state));
    return *out != NULL ? 0 : -ENOMEM;
}

static void poll_backend_destroy(void *state)
{
    struct poll_state *st = state;
    free(st->fds);
    free(st->index);
    free(st);
}

static int grow_index(struct poll_state *st, int fd)
{
    if ((size_t)fd < st->index_cap)
        return 0;
    size_t n = st->index_cap ? st->index_cap : 64;
    while (n <= (size_t)fd)
        n *= 2;
    int *grown = realloc(st->index, n * sizeof(*grown));
    if (grown == NULL)
        return -ENOMEM;
    for (size_t i = st->index_cap; i < n; i++)
        grown[i] = -1;
    st->index = grown;
    st->index_cap = n;
    return 0;
}

static int add_fd(struct poll_state *st, int fd, unsigned ev)
{
    if (grow_index(st, fd) < 0)
        return -ENOMEM;
    if (st->n == st->cap) {
        size_t n = st->cap ? st->cap * 2 : 64;
        struct pollfd *grown = realloc(st->fds, n * sizeof(*grown));
        if (grown == NULL)
            return -ENOMEM;
        st->fds = grown;
        st->cap = n;
    }
    st->fds[st->n] = (struct pollfd){.fd = fd, .events = to_poll(ev)};
    st->index[fd] = (int)st->n++;
    return 0;
}

static void remove_fd(struct poll_state *st, int fd)
{
    int pos = st->index[fd];
    struct pollfd last = st->fds[--st->n];
    st->fds[pos] = last;
    st->index[last.fd] = pos;
    st->index[fd] = -1;
}

static int poll_backend_modify(void *state, int fd, unsigned old_events,
                               unsigned new_events)
{
    struct poll_state *st = state;
    if (old_events == 0)
        return new_events == 0 ? 0 : add_fd(st, fd, new_events);
    if ((size_t)fd >= st->index_cap || st->index[fd] < 0)
        return -ENOENT;
    if (new_events == 0)
        remove_fd(st, fd);
    else
        st->fds[st->index[fd]].events = to_poll(new_events);
    return 0;
}

static int poll_backend_wait(void *state, struct ek_event *events, int max,
                             int timeout_ms)
{
    struct poll_state *st = state;
    int ready = poll(st->fds, (nfds_t)st->n, timeout_ms);
    if (ready < 0)
        return -errno;
    /* When more are ready than the caller takes, the scan resumes where it
     * stopped next time, so descriptors late in the array are not starved
     * by busy ones early in it. */
    int n = 0, seen = 0;
    size_t k, start = st->cursor < st->n ? st->cursor : 0;
    for (k = 0; k < st->n && seen < ready && n < max; k++) {
        size_t i = (start + k) % st->n;
        short r = st->fds[i].revents;
        if (r == 0)
            continue;
        seen++;
        unsigned ev = 0;
        if (r & POLLIN)
            ev |= EK_EV_READ;
        if (r & POLLOUT)
            ev |= EK_EV_WRITE;
        if (r & (POLLERR | POLLHUP | POLLNVAL))
            ev |= EK_EV_READ | EK_EV_WRITE;
        events[n].fd = st->fds[i].fd;
        events[n].events = ev;
        n++;
    }
    st->cursor = st->n ? (start + k) % st->n : 0;
    return n;
}

const struct ek_backend ek_backend_poll = {
    .name = "poll",
    .fd_limit = INT_MAX,
    .create = poll_backend_create,
    .destroy = poll_backend_destroy,
    .modify = poll_backend_modify,
    .wait = poll_backend_wait,
};
