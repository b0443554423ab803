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

/* What the run and backend columns of ek_models.def stand for in this
 * build: a model whose code is not built here gets the reason instead.
 * Each is a list of designated initializers, which cannot be put in
 * parentheses. */
// NOLINTBEGIN(bugprone-macro-parentheses)
#define EK_RUN_iterative .run = ek_run_iterative
#define EK_RUN_thread .run = ek_run_thread
#define EK_RUN_process .run = ek_run_process
#define EK_RUN_loop .run = ek_run_loop
#ifdef EK_HAVE_URING
#define EK_RUN_uring .run = ek_run_uring, .unavailable = ek_uring_unavailable
#else
#define EK_RUN_uring .run = NULL, .unavailable = ek_platform_no_uring
#endif
#define EK_BACKEND_none .backend = NULL
#define EK_BACKEND_select .backend = &ek_backend_select
#define EK_BACKEND_poll .backend = &ek_backend_poll
#ifdef EK_HAVE_EPOLL
#define EK_BACKEND_epoll .backend = &ek_backend_epoll
#else
#define EK_BACKEND_epoll .backend = NULL, .unavailable = ek_platform_no_epoll
#endif
#ifdef EK_HAVE_KQUEUE
#define EK_BACKEND_kqueue .backend = &ek_backend_kqueue
#else
#define EK_BACKEND_kqueue .backend = NULL, .unavailable = no_kqueue
#endif
// NOLINTEND(bugprone-macro-parentheses)

/* How a model serves connections: exactly one of these per model. */
#define EK_CAP_HOW                                                             \
    (EK_CAP_ONE_AT_A_TIME | EK_CAP_THREAD_PER_CONN | EK_CAP_FORK_PER_CONN |    \
     EK_CAP_EVENT_LOOP)
#define EK_ONE_BIT(x) ((x) != 0 && ((x) & ((x)-1)) == 0)

/* model_<name>, one per line of ek_models.def. */
#define EK_MODEL(name_, run_, backend_, max_conns_, caps_, summary_)           \
    static const struct ek_model model_##name_ = {                             \
        .name = #name_,                                                        \
        .summary = (summary_),                                                 \
        EK_RUN_##run_,                                                         \
        EK_BACKEND_##backend_,                                                 \
        .default_max_conns = (max_conns_),                                     \
        .caps = (caps_),                                                       \
    };                                                                         \
    _Static_assert(EK_ONE_BIT(EK_CAP_HOW & (caps_)),                           \
                   #name_ ": exactly one of ONE_AT_A_TIME, THREAD_PER_CONN, "  \
                          "FORK_PER_CONN, EVENT_LOOP");                        \
    _Static_assert(!(EK_CAP_FD_LIMIT & (caps_)) ||                             \
                       (EK_CAP_EVENT_LOOP & (caps_)),                          \
                   #name_ ": FD_LIMIT is an event loop's backend limit");
#include "ek_models.def"
#undef EK_MODEL

const struct ek_model *const ek_models[] = {
#define EK_MODEL(name_, ...) &model_##name_,
#include "ek_models.def"
#undef EK_MODEL
    NULL,
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

bool ek_model_has(const struct ek_model *m, unsigned caps)
{
    return (m->caps & caps) != 0;
}

/* The readiness model this build does best: epoll where built, kqueue
 * where it is native, poll elsewhere (and in a -DEK_LINUX_EXT=OFF build on
 * Linux). A kqueue emulated by libkqueue on Linux is never preferred. */
static const struct ek_model *best_readiness(void)
{
#if defined(EK_HAVE_EPOLL)
    return &model_epoll;
#elif defined(EK_HAVE_KQUEUE) && !defined(__linux__)
    return &model_kqueue;
#else
    return &model_poll;
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
