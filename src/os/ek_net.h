/*
 * ek_net: socket helpers shared by the server, the client and the tests
 * (anet-like). All return -errno on failure; EINTR is retried inside.
 */
#ifndef EK_NET_H
#define EK_NET_H

#include "ek_addr.h"

#include <stdbool.h>
#include <stdint.h>

struct ek_sockopts; /* ek_sockopt.h, which uses these helpers */

/* A listening, non-blocking, close-on-exec socket bound to sa.
 * TCP: SO_REUSEADDR; IPv6 sockets are IPV6_V6ONLY so that [::] and 0.0.0.0
 * can be bound side by side; with reuseport, SO_REUSEPORT too, so that
 * each event loop can have its own listener on the same address and the
 * kernel spreads connections over them. Unix: a socket file left behind by
 * a dead server (nobody accepts on it) is replaced; a live one is
 * EADDRINUSE. Returns the fd, or -errno. */
int ek_net_listen(const struct ek_sockaddr *sa, int backlog, bool reuseport);

/* The servers' listen backlog. Not SOMAXCONN, which is the C library's
 * guess (glibc 4096, musl 128): the kernel caps the backlog at its own
 * limit (Linux: net.core.somaxconn, 4096 since 5.4; BSD:
 * kern.ipc.somaxconn), so this asks for that much everywhere. A static
 * musl build with 128 dropped SYNs of 200 clients connecting at once. */
#define EK_LISTEN_BACKLOG 4096

/* A bound, non-blocking, close-on-exec UDP socket (SO_REUSEADDR; IPv6
 * V6ONLY; SO_REUSEPORT if asked; IP_PKTINFO / IPV6_RECVPKTINFO so that the
 * destination address of each datagram is known). Returns the fd or
 * -errno. */
int ek_net_bind_udp(const struct ek_sockaddr *sa, bool reuseport);

/* accept with close-on-exec and, if asked, O_NONBLOCK. Returns the fd or
 * -errno (-EAGAIN when nothing is pending). */
int ek_net_accept(int listen_fd, bool nonblock);

/* Per-connection options for an accepted or connected socket: TCP_NODELAY
 * on TCP (an echo must not wait for Nagle's ACK; pipelined small writes
 * would otherwise meet delayed ACKs), nothing on unix sockets. */
void ek_net_tune(int fd);

/* Connects with a timeout (ms, -1 = none), the client's socket options
 * o (NULL: none) set first. Returns a non-blocking, close-on-exec fd, or
 * -errno (-ETIMEDOUT on timeout; an option refused gives its error too:
 * callers that must tell which check them first, ek_client_sockopts_check).
 */
int ek_net_connect(const struct ek_sockaddr *sa, const struct ek_sockopts *o,
                   int timeout_ms);

/* The two halves of a non-blocking connect, for clients that open many
 * connections at once; connection `index` picks o's source address. start
 * returns the fd (or -errno) and says whether the connect already
 * finished; once the fd is writable, result returns 0 (connected, options
 * set as by ek_net_connect) or -errno. */
int ek_net_connect_start(const struct ek_sockaddr *sa,
                         const struct ek_sockopts *o, uint64_t index,
                         bool *done);
int ek_net_connect_result(int fd);

/* getsockname into *out. Returns 0 or -errno. */
int ek_net_local_addr(int fd, struct ek_sockaddr *out);

/* The peer's address as text (ek_addr_format), for log lines; "?" when
 * the socket has none (gone already). */
void ek_net_peer_name(int fd, char *name, size_t size);

/* Sets or clears O_NONBLOCK. Returns 0 or -errno. */
int ek_net_set_nonblock(int fd, bool on);

#endif
