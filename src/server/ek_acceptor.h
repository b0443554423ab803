/*
 * ek_acceptor: what each accepting thread keeps for itself, so that
 * accepting needs no lock (ek_admit.h decides with it; struct ek_server
 * holds the main thread's).
 */
#ifndef EK_ACCEPTOR_H
#define EK_ACCEPTOR_H

#include "ek_log.h"

#include <stdbool.h>
#include <stdint.h>

/* The end of an accept pause, and the log rate limiters of admission. The
 * zero value is ready to use. */
struct ek_acceptor {
    int64_t resume_ms; /* accepts paused until then; 0: not paused */
    struct ek_ratelimit refused_log, accept_log, acl_log, proxy_log;
};

/* Whether accepts are paused (ek_admit.h starts a pause); clears the pause
 * once its time is up. */
bool ek_acceptor_paused(struct ek_acceptor *acc);

/* Ends a pause early: a connection closed, an fd is free again. */
void ek_acceptor_resume(struct ek_acceptor *acc);

/* Milliseconds until the pause ends, -1 if not paused. */
int ek_acceptor_timeout(const struct ek_acceptor *acc);

#endif
