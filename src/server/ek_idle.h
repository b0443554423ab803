/*
 * ek_idle: the idle clock of the event loops (--idle-timeout, and the
 * deadline of a PROXY header).
 */
#ifndef EK_IDLE_H
#define EK_IDLE_H

#include <stdbool.h>
#include <stdint.h>

struct ek_acceptor;
struct ek_server;

/* --idle-timeout in the event loops. A connection stamps the loop's tick
 * (10 ms units since the loop started: 32 bits last 497 days, and
 * differences stay right across the wrap) whenever bytes move; the loop
 * sweeps its connections every quarter of the timeout (at most every
 * second), so an idle connection is closed at most that late. No timer per
 * connection: 4 bytes of state, one pass over the table per sweep. */
struct ek_idle_clock {
    int64_t epoch_ms, next_sweep_ms, sweep_every_ms;
    uint32_t limit;           /* in ticks; 0: no idle timeout */
    uint32_t header_limit;    /* --proxy-protocol: ticks to send the header */
    uint32_t handshake_limit; /* TLS: ticks to finish the handshake */
    uint32_t now;             /* the tick of the current turn (ek_idle_tick) */
};

#define EK_IDLE_TICK_MS 10

/* idle_ms: --idle-timeout (0: none); header_ms: how long a PROXY header
 * may take (0: no header expected); handshake_ms: a TLS handshake (0: no
 * TLS listener). */
void ek_idle_init(struct ek_idle_clock *k, int64_t idle_ms, int64_t header_ms,
                  int64_t handshake_ms);

/* Reads the clock for this turn (cheap: once per wait, not per event). */
void ek_idle_tick(struct ek_idle_clock *k);

static inline bool ek_idle_expired(const struct ek_idle_clock *k,
                                   uint32_t stamp)
{
    return k->limit != 0 && (uint32_t)(k->now - stamp) >= k->limit;
}

static inline bool ek_header_expired(const struct ek_idle_clock *k,
                                     uint32_t stamp)
{
    return k->header_limit != 0 &&
           (uint32_t)(k->now - stamp) >= k->header_limit;
}

/* Whether a sweep is due now (and schedules the next one). */
bool ek_idle_sweep_due(struct ek_idle_clock *k);

/* Milliseconds until the next sweep, -1 with nothing to sweep for. */
int ek_idle_timeout(const struct ek_idle_clock *k);

/* A connection closed by the idle timeout: counted, logged at -v. */
void ek_idle_closed(struct ek_server *srv, int fd);

/* A TLS handshake that did not end within --tls-handshake-timeout:
 * counted, logged at -v; the caller closes. */
void ek_idle_handshake_late(struct ek_server *srv, int fd);

/* An event loop's sweep, for one connection stamped `stamp`: true when it
 * must be closed (counted and logged already): its PROXY header, when
 * header_pending, is late; its TLS handshake, when handshaking, is; or,
 * once past both, nothing moved for --idle-timeout. */
bool ek_idle_sweep_closes(struct ek_server *srv, struct ek_acceptor *acc,
                          const struct ek_idle_clock *k, int fd, uint32_t stamp,
                          bool header_pending, bool handshaking);

#endif
