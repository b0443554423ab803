/*
 * loop_kqueue: the kqueue(2) backend (BSD, macOS; on Linux through
 * libkqueue, which emulates it on top of epoll).
 *
 * kqueue keeps read and write interest as two separate filters, so modify
 * sends an EV_ADD or EV_DELETE per filter that changes, in one kevent call.
 * A readiness event carries one filter: the loop may see READ and WRITE for
 * the same fd as two events, which its handlers are fine with.
 *
 * EV_EOF on a read filter means the peer closed (read returns 0 or the
 * error); EV_ERROR in a result means a change failed for that fd. Both are
 * passed on as READ|WRITE so that the next call meets the condition.
 */
#include "ek_backend.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/event.h>
#include <sys/time.h>
#include <unistd.h>

#define KQ_BATCH 256

struct kqueue_state {
    int kq;
    struct kevent out[KQ_BATCH];
};

static int kqueue_backend_create(void **out)
{
    struct kqueue_state *st = malloc(sizeof(*st));
    if (st == NULL)
        return -ENOMEM;
    st->kq = kqueue();
    if (st->kq < 0) {
        int err = -errno;
        free(st);
        return err;
    }
    *out = st;
    return 0;
}

static void kqueue_backend_destroy(void *state)
{
    struct kqueue_state *st = state;
    close(st->kq);
    free(st);
}

static int kqueue_backend_modify(void *state, int fd, unsigned old_events,
                                 unsigned new_events)
{
    struct kqueue_state *st = state;
    struct kevent ch[2];
    int n = 0;
    unsigned changed = old_events ^ new_events;

    if (changed & EK_EV_READ) {
        EV_SET(&ch[n], (uintptr_t)fd, EVFILT_READ,
               (new_events & EK_EV_READ) ? EV_ADD : EV_DELETE, 0, 0, NULL);
        n++;
    }
    if (changed & EK_EV_WRITE) {
        EV_SET(&ch[n], (uintptr_t)fd, EVFILT_WRITE,
               (new_events & EK_EV_WRITE) ? EV_ADD : EV_DELETE, 0, 0, NULL);
        n++;
    }
    if (n == 0)
        return 0;
    int rc;
    do
        rc = kevent(st->kq, ch, n, NULL, 0, NULL);
    while (rc < 0 && errno == EINTR);
    return rc < 0 ? -errno : 0;
}

static int kqueue_backend_wait(void *state, struct ek_event *events, int max,
                               int timeout_ms)
{
    struct kqueue_state *st = state;
    struct timespec ts, *tsp = NULL;
    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
        tsp = &ts;
    }
    if (max > KQ_BATCH)
        max = KQ_BATCH;
    int n = kevent(st->kq, NULL, 0, st->out, max, tsp);
    if (n < 0)
        return -errno;
    for (int i = 0; i < n; i++) {
        const struct kevent *k = &st->out[i];
        unsigned ev = k->filter == EVFILT_WRITE ? EK_EV_WRITE : EK_EV_READ;
        if (k->flags & (EV_EOF | EV_ERROR))
            ev |= EK_EV_READ | EK_EV_WRITE;
        events[i].fd = (int)k->ident;
        events[i].events = ev;
    }
    return n;
}

const struct ek_backend ek_backend_kqueue = {
    .name = "kqueue",
    .fd_limit = INT_MAX,
    .create = kqueue_backend_create,
    .destroy = kqueue_backend_destroy,
    .modify = kqueue_backend_modify,
    .wait = kqueue_backend_wait,
};
