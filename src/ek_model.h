/*
 * ek_model: the I/O models `echokit serve --io` can run, all in one binary.
 *
 * A model is a run function plus, for the readiness models, the backend
 * the shared event loop (model_loop.c) runs on. Models that this build or
 * this kernel cannot run stay in the table with the reason, so that
 * `--io list` and errors can say why instead of silently substituting.
 */
#ifndef EK_MODEL_H
#define EK_MODEL_H

#include <stdbool.h>
#include <stdint.h>

struct ek_server;
struct ek_backend;

struct ek_model {
    const char *name;
    const char *summary;
    /* Runs the server until it stops; returns the exit status. */
    int (*run)(struct ek_server *srv, const struct ek_model *self);
    const struct ek_backend *backend; /* readiness models; else NULL */
    uint64_t default_max_conns;
    bool multi_loop; /* takes --threads without a readiness backend */
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
