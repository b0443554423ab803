/*
 * ek_udp: RFC 862 over UDP: each datagram goes back to its sender, whole,
 * read and sent in batches (recvmmsg/sendmmsg, or their fallback in
 * ek_platform), shared by every model.
 *
 * UDP echo is the classic amplifier and loop partner (CVE-1999-0103, the
 * echo/chargen loop; CVE-2024-2169, loops between UDP services): the
 * source address of a datagram is whatever the sender wrote there. So
 * before answering, a datagram is dropped, and counted by reason, when:
 *   - its source port is below 1024 (echo, chargen, daytime, DNS, ... are
 *     the loop partners; --udp-low-ports lifts this);
 *   - its source is unspecified, broadcast (255.255.255.255 or a local
 *     interface's broadcast address), multicast, or IPv4-mapped forms of
 *     those;
 *   - its source is one of our own addresses with our port (a datagram
 *     claiming to come from ourselves);
 *   - --allow/--deny refuse the source address;
 *   - the source address is over --udp-rate datagrams per second (a token
 *     bucket per source address in a bounded table), or all sources
 *     together are over --udp-rate-total;
 *   - it was truncated (cannot be echoed whole).
 * An answer is never larger than the datagram it answers. Nothing is
 * queued: a datagram the socket cannot take now is dropped (reason
 * "send"), as UDP allows, so memory stays fixed whatever the load.
 */
#ifndef EK_UDP_H
#define EK_UDP_H

#include "ek_addr.h"
#include "ek_stats.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct ek_server;

/* Datagrams read per batch. */
#define EK_UDP_BATCH 32
/* Per datagram: the largest UDP payload fits, so nothing legal truncates. */
#define EK_UDP_BUF 65536
/* Source addresses tracked by --udp-rate (a hash table, oldest evicted). */
#define EK_UDP_SOURCES 4096

struct ek_udp_bucket;

/* One per event loop (or UDP thread): its buffers and rate state. */
struct ek_udp {
    struct ek_server *srv;
    struct ek_counters *counters;  /* the owner's */
    char *bufs;                    /* EK_UDP_BATCH x EK_UDP_BUF */
    struct ek_udp_bucket *buckets; /* EK_UDP_SOURCES, with --udp-rate */
    double total_tokens;
    int64_t total_ns;
    unsigned share;       /* loops sharing the limits (each takes its part) */
    uint64_t source_mask; /* slot of a source: its hash & this
                             (EK_UDP_SOURCES - 1; tests make it smaller) */
};

/* Returns 0 or -ENOMEM. share: how many loops split the rate limits. */
int ek_udp_init(struct ek_udp *u, struct ek_server *srv,
                struct ek_counters *counters, unsigned share);
void ek_udp_free(struct ek_udp *u);

/* The bound address of each of the n sockets, malloc'd (the rules need
 * each socket's own address). Returns 0 with *out, or -errno. */
int ek_udp_local_addrs(const int *fds, size_t n, struct ek_sockaddr **out);

/* Reads one batch from the UDP socket fd (bound to local), answers what
 * passes the rules. Returns the datagrams read (0: none waiting), or
 * -errno when the socket itself failed. */
int ek_udp_service(struct ek_udp *u, int fd, const struct ek_sockaddr *local);

/* The rules above for one datagram from `from` to our socket at local
 * (msg_flags from recvmsg, now in CLOCK_MONOTONIC ns): true to answer it;
 * otherwise the drop is counted. */
bool ek_udp_may_answer(struct ek_udp *u, const struct sockaddr *from,
                       const struct ek_sockaddr *local, int msg_flags,
                       int64_t now);

/* Runs UDP for the models without an event loop (iterative, thread,
 * process): a thread of its own serving every UDP listener until
 * ek_udp_thread_stop. NULL when there is nothing to serve. */
struct ek_udp_thread;
int ek_udp_thread_start(struct ek_server *srv, struct ek_udp_thread **out);
void ek_udp_thread_stop(struct ek_udp_thread *t);

#endif
