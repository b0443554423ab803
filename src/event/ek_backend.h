/*
 * ek_backend: one readiness mechanism (select, poll, epoll, kqueue) behind
 * four calls, chosen at run time like libev's backend_modify/backend_poll.
 *
 * The contract is level-triggered: an fd with EK_EV_READ interest is
 * reported for as long as a read would not block. Errors and hang-ups are
 * reported as EK_EV_READ | EK_EV_WRITE whatever the interest, so that the
 * next recv or send meets the error and the connection is closed; the
 * caller's handlers treat any event as a hint (EAGAIN is normal).
 */
#ifndef EK_BACKEND_H
#define EK_BACKEND_H

#include "ek_config.h"

enum {
    EK_EV_READ = 1,
    EK_EV_WRITE = 2,
};

struct ek_event {
    int fd;
    unsigned events; /* EK_EV_* */
};

struct ek_backend {
    const char *name;
    /* Descriptors at or above this cannot be watched (FD_SETSIZE for
     * select); the loop refuses connections that land there. */
    int fd_limit;
    /* New backend state into *out. Returns 0 or -errno. */
    int (*create)(void **out);
    void (*destroy)(void *state);
    /* Changes fd's interest from old to new; either may be 0 (add,
     * remove). Must be called with new = 0 before fd is closed. Returns 0
     * or -errno. */
    int (*modify)(void *state, int fd, unsigned old_events,
                  unsigned new_events);
    /* Waits up to timeout_ms (-1: no limit) and stores at most max events.
     * Returns how many, or -errno (-EINTR when a signal came). */
    int (*wait)(void *state, struct ek_event *events, int max, int timeout_ms);
};

extern const struct ek_backend ek_backend_select;
extern const struct ek_backend ek_backend_poll;
#ifdef EK_HAVE_EPOLL
extern const struct ek_backend ek_backend_epoll;
#endif
#ifdef EK_HAVE_KQUEUE
extern const struct ek_backend ek_backend_kqueue;
#endif

#endif
