#include "ek_model.h"
#include "ek_backend.h"

#include <stddef.h>
#include <string.h>

/* Default --max-conns. Thread and process models pay a thread or a process
 * (stack, page tables, scheduler entity) per connection, so their default is
 * lower; readiness models pay a few dozen bytes. */
#define EK_MAX_CONNS_BLOCKING 1000
#define EK_MAX_CONNS_LOOP 10000

#ifndef EK_HAVE_KQUEUE
static const char *no_kqueue(void)
{
    return "not available in this build: no <sys/event.h> (BSD, macOS); on "
           "Linux configure with libkqueue (see README)";
}
#endif

#ifndef __linux__
static const char *no_epoll(void)
{
    return "not available on this platform: epoll is Linux only";
}
#endif

static const char *no_uring(void)
{
    return "not available in this build: the io_uring model is not "
           "implemented yet";
}

static const struct ek_model iterative = {
    "iterative",
    "one client at a time; the next waits in the backlog",
    ek_run_iterative,
    NULL,
    1,
    NULL};

static const struct ek_model thread = {"thread",
                                       "a thread per connection, blocking I/O",
                                       ek_run_thread,
                                       NULL,
                                       EK_MAX_CONNS_BLOCKING,
                                       NULL};

static const struct ek_model process = {
    "process",
    "a forked process per connection, blocking I/O",
    ek_run_process,
    NULL,
    EK_MAX_CONNS_BLOCKING,
    NULL};

static const struct ek_model select_model = {
    "select",          "event loop on select(2); fds >= FD_SETSIZE are refused",
    ek_run_loop,       &ek_backend_select,
    EK_MAX_CONNS_LOOP, NULL};

static const struct ek_model poll_model = {
    "poll",           "event loop on poll(2)", ek_run_loop,
    &ek_backend_poll, EK_MAX_CONNS_LOOP,       NULL};

#ifdef __linux__
static const struct ek_model epoll_model = {
    "epoll",           "event loop on epoll(7), level-triggered",
    ek_run_loop,       &ek_backend_epoll,
    EK_MAX_CONNS_LOOP, NULL};
#else
static const struct ek_model epoll_model = {
    "epoll",           "event loop on epoll(7), level-triggered",
    ek_run_loop,       NULL,
    EK_MAX_CONNS_LOOP, no_epoll};
#endif

#ifdef EK_HAVE_KQUEUE
static const struct ek_model kqueue_model = {
    "kqueue",           "event loop on kqueue(2)", ek_run_loop,
    &ek_backend_kqueue, EK_MAX_CONNS_LOOP,         NULL};
#else
static const struct ek_model kqueue_model = {
    "kqueue", "event loop on kqueue(2)", ek_run_loop,
    NULL,     EK_MAX_CONNS_LOOP,         no_kqueue};
#endif

static const struct ek_model uring_model = {
    "uring", "completion-based, io_uring", NULL, NULL, EK_MAX_CONNS_LOOP,
    no_uring};

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

/* epoll on Linux, kqueue where it is native, poll elsewhere. A kqueue
 * emulated by libkqueue on Linux is never preferred to epoll. */
const struct ek_model *ek_model_auto(void)
{
#if defined(__linux__)
    return &epoll_model;
#elif defined(EK_HAVE_KQUEUE)
    return &kqueue_model;
#else
    return &poll_model;
#endif
}
