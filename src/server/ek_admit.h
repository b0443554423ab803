/*
 * ek_admit: who gets in, for every model: --allow/--deny, --max-conns, the
 * PROXY header's verdict, connections a model cannot take, and the accept
 * pause after fd exhaustion. Each decision is counted and logged (rate
 * limited) here, so the models only act on the answer.
 */
#ifndef EK_ADMIT_H
#define EK_ADMIT_H

#include "ek_acceptor.h"

#include <stdbool.h>
#include <stdint.h>

struct ek_proxy_result;
struct ek_server;

/* How long accepting pauses after an error that may persist, when no
 * connection closes in the meantime (nginx waits 500 ms too). */
#define EK_ACCEPT_PAUSE_MS 500

/* Whether accept(2)'s error err (-errno) may persist, so that accepting
 * again at once would spin: fd exhaustion, memory, anything unknown; not
 * a client that left (ECONNABORTED, EPROTO), a firewall's refusal (EPERM),
 * EINTR or EAGAIN. */
bool ek_admit_error_persists(int err);

/* Admission of a freshly accepted connection: a peer --allow/--deny keeps
 * out is closed, counted and logged (false). Under --max-conns it counts
 * the connection (accepted, active), sets its socket options and returns
 * true; over the limit it
 * closes the fd, counts and logs the refusal and returns false. */
bool ek_admit_conn(struct ek_server *srv, struct ek_acceptor *acc, int fd);

/* --proxy-protocol. A connection admitted by ek_admit_conn has sent its
 * header: logs who the client is (-v) and applies --allow/--deny to the
 * client's address from the header (to the peer's for LOCAL and UNKNOWN
 * headers). Returns false when the rules refuse it: counted and logged;
 * the caller closes. acc may be NULL (blocking models: a shared limiter). */
bool ek_admit_proxy(struct ek_server *srv, struct ek_acceptor *acc, int fd,
                    const struct ek_proxy_result *r);

/* The header was malformed, missing, late or cut short (why): counted as
 * refused ("proxy") and logged; the caller closes. acc may be NULL. */
void ek_admit_proxy_failed(struct ek_server *srv, struct ek_acceptor *acc,
                           int fd, const char *why);

/* The two above, for the connection layer (ek_conn_env's proxy). */
extern const struct ek_proxy_verdicts ek_admit_proxy_verdicts;

/* Closes a connection the model cannot take (e.g. fd >= FD_SETSIZE), with
 * a rate-limited log line saying why. */
void ek_admit_refuse(struct ek_server *srv, struct ek_acceptor *acc, int fd,
                     const char *why);

/* A connection admitted by ek_admit_conn has ended (err: 0, or the
 * -errno that ended it). */
void ek_admit_conn_done(struct ek_server *srv, int err);

/* accept(2) failed with -err. Returns true when accepting must pause: fd
 * exhaustion (EMFILE, ENFILE) and memory shortage. The pause lasts until
 * ek_acceptor_resume or the end of ek_acceptor_timeout, so a full fd table
 * never makes a loop spin. */
bool ek_admit_accept_failed(struct ek_server *srv, struct ek_acceptor *acc,
                            int err);

#endif
