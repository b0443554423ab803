/*
 * ek_model: the I/O models `echokit serve --io` can run, all in one binary.
 *
 * A model is a run function plus, for the readiness models, the backend
 * the shared event loop (model_loop.c) runs on. The list of models is
 * ek_models.def; this table is built from it. Models that this build or
 * this kernel cannot run stay in the table with the reason, so that
 * `--io list` and errors can say why instead of silently substituting.
 */
#ifndef EK_MODEL_H
#define EK_MODEL_H

#include <stdbool.h>
#include <stdint.h>

struct ek_server;
struct ek_backend;

/* What a model does, for code that must treat models differently: serve
 * (--threads, --max-conns) and the tests ask these, never a model's name.
 * A model has exactly one of the first four, which say how it serves
 * connections. */
enum {
    /* One client at a time; the next waits in the backlog, and
     * --max-conns does not apply. */
    EK_CAP_ONE_AT_A_TIME = 1 << 0,
    /* A thread per connection, with its stack, all in one process. */
    EK_CAP_THREAD_PER_CONN = 1 << 1,
    /* A forked process per connection: the connection's descriptor and
     * memory are the child's; the parent closes its copy. */
    EK_CAP_FORK_PER_CONN = 1 << 2,
    /* Event loops holding every connection in one process, a few dozen
     * bytes each; --threads N runs N of them. */
    EK_CAP_EVENT_LOOP = 1 << 3,
    /* Cannot watch descriptors at or above a limit (select's FD_SETSIZE,
     * the backend's fd_limit): connections that land there are refused. */
    EK_CAP_FD_LIMIT = 1 << 4,
    /* Serves tls: listeners (through the transport interface,
     * ek_transport.h). */
    EK_CAP_TLS = 1 << 5,
};

/* Serves many clients at once: any of these. */
#define EK_CAP_CONCURRENT                                                      \
    (EK_CAP_THREAD_PER_CONN | EK_CAP_FORK_PER_CONN | EK_CAP_EVENT_LOOP)

struct ek_model {
    const char *name;
    const char *summary;
    /* Runs the server until it stops; returns the exit status. */
    int (*run)(struct ek_server *srv, const struct ek_model *self);
    const struct ek_backend *backend; /* readiness models; else NULL */
    uint64_t default_max_conns;
    unsigned caps; /* EK_CAP_* */
    /* Why this model cannot run here, or NULL when it can. */
    const char *(*unavailable)(void);
};

/* Every model, in the order of `--io list`, NULL-terminated. */
extern const struct ek_model *const ek_models[];

/* The model called name, or NULL. "auto" is resolved by ek_model_auto. */
const struct ek_model *ek_model_find(const char *name);

/* The best model this build and platform can run. */
const struct ek_model *ek_model_auto(void);

/* Why m cannot run here, or NULL. */
const char *ek_model_unavailable(const struct ek_model *m);

/* Whether m has any of caps (EK_CAP_*). */
bool ek_model_has(const struct ek_model *m, unsigned caps);

/* Run functions, one per source file. */
int ek_run_iterative(struct ek_server *srv, const struct ek_model *self);
int ek_run_thread(struct ek_server *srv, const struct ek_model *self);
int ek_run_process(struct ek_server *srv, const struct ek_model *self);
int ek_run_loop(struct ek_server *srv, const struct ek_model *self);
#ifdef EK_HAVE_URING
int ek_run_uring(struct ek_server *srv, const struct ek_model *self);
/* Probes the kernel (once): NULL when io_uring works here, else why not. */
const char *ek_uring_unavailable(void);
#endif

#endif
