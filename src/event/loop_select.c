/*
 * loop_select: the select(2) backend, the tutorial's server done right.
 *
 * fd_set is a fixed bitmap of FD_SETSIZE bits (1024 on glibc); FD_SET on a
 * larger descriptor writes past it. The backend declares fd_limit =
 * FD_SETSIZE, the loop refuses (closes and logs) any connection whose fd
 * lands there, and modify rejects it again here as a last line of defence.
 *
 * Exceptional conditions (the tutorial's third list) mean TCP urgent data,
 * not errors: errors show up as readable/writable, so no except set.
 */
#include "ek_backend.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>

struct select_state {
    fd_set rd, wr;         /* interest */
    fd_set rd_out, wr_out; /* results of the last select */
    int max_fd;            /* highest fd with interest, -1 if none */
    int cursor;            /* where the next scan of results starts */
};

static int select_backend_create(void **out)
{
    struct select_state *st = malloc(sizeof(*st));
    if (st == NULL)
        return -ENOMEM;
    FD_ZERO(&st->rd);
    FD_ZERO(&st->wr);
    st->max_fd = -1;
    st->cursor = 0;
    *out = st;
    return 0;
}

static void select_backend_destroy(void *state)
{
    free(state);
}

static int select_backend_modify(void *state, int fd, unsigned old_events,
                                 unsigned new_events)
{
    struct select_state *st = state;
    (void)old_events;
    if (fd < 0 || fd >= FD_SETSIZE)
        return -EBADF;
    if (new_events & EK_EV_READ)
        FD_SET(fd, &st->rd);
    else
        FD_CLR(fd, &st->rd);
    if (new_events & EK_EV_WRITE)
        FD_SET(fd, &st->wr);
    else
        FD_CLR(fd, &st->wr);
    if (new_events != 0 && fd > st->max_fd)
        st->max_fd = fd;
    while (st->max_fd >= 0 && !FD_ISSET(st->max_fd, &st->rd) &&
           !FD_ISSET(st->max_fd, &st->wr))
        st->max_fd--;
    return 0;
}

static int select_backend_wait(void *state, struct ek_event *events, int max,
                               int timeout_ms)
{
    struct select_state *st = state;
    struct timeval tv, *tvp = NULL;
    if (timeout_ms >= 0) {
        tv.tv_sec = timeout_ms / 1000;
        tv.tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000;
        tvp = &tv;
    }
    st->rd_out = st->rd;
    st->wr_out = st->wr;
    int ready = select(st->max_fd + 1, &st->rd_out, &st->wr_out, NULL, tvp);
    if (ready < 0)
        return -errno;
    /* Resume the scan where the last one stopped (see loop_poll.c). */
    int n = 0, span = st->max_fd + 1, k;
    int start = st->cursor < span ? st->cursor : 0;
    for (k = 0; k < span && n < max && ready > 0; k++) {
        int fd = (start + k) % span;
        unsigned ev = (FD_ISSET(fd, &st->rd_out) ? EK_EV_READ : 0u) |
                      (FD_ISSET(fd, &st->wr_out) ? EK_EV_WRITE : 0u);
        if (ev == 0)
            continue;
        events[n].fd = fd;
        events[n].events = ev;
        n++;
        ready -= ((ev & EK_EV_READ) != 0) + ((ev & EK_EV_WRITE) != 0);
    }
    st->cursor = span > 0 ? (start + k) % span : 0;
    return n;
}

const struct ek_backend ek_backend_select = {
    .name = "select",
    .fd_limit = FD_SETSIZE,
    .create = select_backend_create,
    .destroy = select_backend_destroy,
    .modify = select_backend_modify,
    .wait = select_backend_wait,
};
