/*
 * ek_metrics: the server's counters for operators: one log line on
 * SIGUSR1, and Prometheus text at /metrics on --metrics HOST:PORT.
 *
 * The HTTP side is a tiny HTTP/1.0 responder on its own thread with its
 * own poll loop: it only reads the shared counters (ek_stats.h), so a slow
 * or hostile scraper can cost it, never the echo path. At most
 * EK_METRICS_CLIENTS requests are open at once, each with a few seconds to
 * send its request line and headers (at most 4 KiB).
 */
#ifndef EK_METRICS_H
#define EK_METRICS_H

#include "ek_addr.h"
#include "ek_stats.h"

#include <stddef.h>

struct ek_server;
struct ek_metrics;

/* Writes the counters as Prometheus text (format 0.0.4) into buf. Returns
 * the length, or the length it would need (as snprintf) when size is too
 * small. */
size_t ek_metrics_format(const struct ek_stats_view *v, const char *model,
                         unsigned threads, char *buf, size_t size);

/* The most a /metrics client may send: its request line and headers. */
#define EK_METRICS_REQUEST_MAX 4096

/* What a client's request asks for, from the n bytes it sent so far (at
 * most EK_METRICS_REQUEST_MAX - 1, any bytes): nothing yet until the
 * headers end (an empty line) or the buffer is full; then GET or HEAD of
 * /metrics (a query string allowed), another path, or another method. */
enum ek_metrics_route {
    EK_METRICS_PENDING,
    EK_METRICS_GET,
    EK_METRICS_HEAD,
    EK_METRICS_NOT_FOUND,
    EK_METRICS_BAD_METHOD,
};
enum ek_metrics_route ek_metrics_route(const char *req, size_t n);

/* Binds spec's addresses and starts the responder thread, which reports
 * srv's counters as those of I/O model `model` (its name, which outlives
 * the responder). Returns 0 and *out, or -errno after printing why
 * (-ENXIO: spec resolves to no address). */
int ek_metrics_start(struct ek_server *srv, const char *model,
                     const struct ek_addr_spec *spec, struct ek_metrics **out);

/* Prints "metrics on http://ADDR/metrics" on stdout per address, after
 * the server's "listening on" lines. NULL is fine. */
void ek_metrics_announce(const struct ek_metrics *m);

/* Stops the thread and closes everything. NULL is fine. */
void ek_metrics_stop(struct ek_metrics *m);

#endif
