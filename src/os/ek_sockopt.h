/*
 * ek_sockopt: what a client sets on its socket before it connects, for
 * send, ping and bench alike (the command-line side is in ek_cli.h).
 *
 *   source   the local address, from a pool used round robin: connection
 *            i binds to address i mod count. TCP binds with
 *            IP_BIND_ADDRESS_NO_PORT, so the port is picked at connect()
 *            for the whole (source, destination) pair: each source address
 *            gives another 28k ephemeral ports to the same server, and a
 *            pool of them passes 64k connections.
 *   dev      SO_BINDTODEVICE: leave by this interface whatever the route.
 *   tos      IP_TOS (IPv4) or IPV6_TCLASS (IPv6): the DSCP (tos >> 2) and,
 *            for UDP, the ECN bits; TCP manages ECN itself.
 *   mark     SO_MARK: the fwmark policy routing and nftables match on
 *            (needs CAP_NET_ADMIN).
 *   cc       TCP_CONGESTION: the congestion control of each connection
 *            (one the kernel has loaded; unprivileged, one of
 *            net.ipv4.tcp_allowed_congestion_control).
 *   mss      TCP_MAXSEG: the MSS this end announces (88..32767 bytes,
 *            Linux's bounds).
 *
 * SO_BINDTODEVICE, SO_MARK, TCP_CONGESTION and IP_BIND_ADDRESS_NO_PORT
 * are Linux's; a build without them (EK_LINUX_EXT=OFF) refuses the first
 * three with the reason, and binds a source address with its own port.
 */
#ifndef EK_SOCKOPT_H
#define EK_SOCKOPT_H

#include "ek_addr.h"

#include <stdbool.h>
#include <stdint.h>

/* A pool of local addresses: base, base + 1, ..., base + count - 1. */
struct ek_source_pool {
    int family;       /* AF_INET or AF_INET6; 0: no pool */
    uint8_t base[16]; /* network byte order */
    uint64_t count;
};

struct ek_sockopts {
    struct ek_source_pool source;
    char dev[16]; /* "": none (IFNAMSIZ) */
    int tos;      /* -1: none */
    int64_t mark; /* -1: none */
    char cc[16];  /* "": none (TCP_CA_NAME_MAX) */
    int mss;      /* 0: none */
};

#define EK_SOCKOPTS_NONE                                                       \
    {                                                                          \
        .tos = -1, .mark = -1                                                  \
    }

/* Whether any option is set. */
/* setsockopt of an int. Returns 0 or -errno. */
int ek_sockopt_set_int(int fd, int level, int name, int value);

bool ek_sockopts_any(const struct ek_sockopts *o);

/* "ADDR", "ADDR/PREFIX" (IPv4 /30 and wider leave out the network and
 * broadcast addresses, IPv6 /126 and wider the all-zero host, the
 * subnet-router anycast address), or "FIRST-LAST" of one family. Returns
 * 0, or -EINVAL with *why. */
int ek_source_parse(const char *text, struct ek_source_pool *out,
                    const char **why);

/* Address i mod count of the pool, port 0. */
void ek_source_addr(const struct ek_source_pool *p, uint64_t i,
                    struct ek_sockaddr *out);

/* A DSCP by name (cs0..cs7, af11..af43, ef, va, le; any case) or number
 * 0..63. Returns 0, or -EINVAL with *why. */
int ek_dscp_parse(const char *text, int *dscp, const char **why);

/* Sets every option of o on fd, a socket of the family given (AF_INET or
 * AF_INET6), TCP if stream, not yet connected; connection `index` picks
 * the source address. Returns 0, or -errno with *which set to the option
 * the kernel refused ("--cc", "--source", ...). */
int ek_sockopts_apply(const struct ek_sockopts *o, int fd, int family,
                      bool stream, uint64_t index, const char **which);

#endif
