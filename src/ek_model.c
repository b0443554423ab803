#include "ek_model.h"
#include "ek_backend.h"
#include "ek_platform.h"

#include <stddef.h>
#include <string.h>

/* Default --max-conns. Thread and process models pay a thread or a process
 * (stack, page tables, scheduler entity) per connection, so their default is
 * lower; the others pay a few dozen bytes. */
#define EK_MAX_CONNS_BLOCKING 1000
#define EK_MAX_CONNS_LOOP 10000

#ifndef EK_HAVE_KQUEUE
static const char *no_kqueue(void)
{
    return "not available in this build: no <sys/event.h> (BSD, macOS); on "
           "Linux configure with libkqueue (see README)";
}
#endif

static const struct ek_model iterative = {
    .name = "iterative",
    .summary = "one client at a time; the next waits in the backlog",
    .run = ek_run_iterative,
    .default_max_conns = 1,
};

static const struct ek_model thread = {
    .name = "thread",
    .summary = "a thread per connection, blocking I/O",
    .run = ek_run_thread,
    .default_max_conns = EK_MAX_CONNS_BLOCKING,
};

static const struct ek_model process = {
    .name = "process",
    .summary = "a forked process per connection, blocking I/O",
    .run = ek_run_process,
    .default_max_conns = EK_MAX_CONNS_BLOCKING,
};

static const struct ek_model select_model = {
    .name = "select",
    .summary = "event loop on select(2); fds >= FD_SETSIZE are refused",
    .run = ek_run_loop,
    .backend = &ek_backend_select,
    .default_max_conns = EK_MAX_CONNS_LOOP,
};

static const struct ek_model poll_model = {
    .name = "poll",
    .summary = "event loop on poll(2)",
    .run = ek_run_loop,
    .backend = &ek_backend_poll,
    .default_max_conns = EK_MAX_CONNS_LOOP,
};

static const struct ek_model epoll_model = {
    .name = "epoll",
    .summary = "event loop on epoll(7), level-triggered",
#ifdef EK_HAVE_EPOLL
    .run = ek_run_loop,
    .backend = &ek_backend_epoll,
#else
    .unavailable = ek_platform_no_epoll,
#endif
    .default_max_conns = EK_MAX_CONNS_LOOP,
};

static const struct ek_model kqueue_model = {
    .name = "kqueue",
    .summary = "event loop on kqueue(2)",
#ifdef EK_HAVE_KQUEUE
    .run = ek_run_loop,
    .backend = &ek_backend_kqueue,
#else
    .unavailable = no_kqueue,
#endif
    .default_max_conns = EK_MAX_CONNS_LOOP,
};

static const struct ek_model uring_model = {
    .name = "uring",
    .summary = "io_uring: multishot accept and receive, completion-based",
#ifdef EK_HAVE_URING
    .run = ek_run_uring,
    .unavailable = ek_uring_unavailable,
#else
    .unavailable = ek_platform_no_uring,
#endif
    .default_max_conns = EK_MAX_CONNS_LOOP,
    .multi_loop = true,
};

const struct ek_model *const ek_models[] = {
    &iterative,   &thread,       &process,     &select_model, &poll_model,
    &epoll_model, &kqueue_model, &uring_model, NULL,
};

const struct ek_model *ek_model_find(const char *name)
{
    for (size_t i = 0; ek_models[i] != NULL; i++)
        if (strcmp(ek_models[i]->name, name) == 0)
            return ek_models[i];
    return NULL;
}

const char *ek_model_unavailable(const struct ek_model *m)
{
    return m->unavailable != NULL ? m->unavailable() : NULL;
}

/* The readiness model this build does best: epoll where built, kqueue
 * where it is native, poll elsewhere. A kqueue emulated by libkqueue on
 * Linux is never preferred, not even to poll (-DEK_LINUX_EXT=OFF). */
static const struct ek_model *best_readiness(void)
{
#if defined(EK_HAVE_EPOLL)
    return &epoll_model;
#elif defined(EK_HAVE_KQUEUE) && !defined(__linux__)
    return &kqueue_model;
#else
    return &poll_model;
#endif
}

/* The best readiness model. Not uring, even where it runs: measured side
 * by side (bench/PERFORMANCE.md), epoll with its splice path for streams
 * is as fast or faster on every workload and holds less memory per idle
 * connection, on Linux 6.18. */
const struct ek_model *ek_model_auto(void)
{
    return best_readiness();
}
