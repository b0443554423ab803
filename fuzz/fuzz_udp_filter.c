/*
 * Fuzz target: the UDP reflection rules (ek_udp_may_answer) over arbitrary
 * source and local addresses, ports, flags and times. Beyond not crashing:
 * a datagram from a port below 1024, a multicast or broadcast source, or a
 * truncated one is never answered, and every refusal is counted once.
 */
#include "ek_server.h"
#include "ek_udp.h"
#include "ek_acl.h"

#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static struct ek_stats stats;
static struct ek_acl acl;
static struct ek_config cfg = {.acl = &acl};
static struct ek_server srv = {.cfg = &cfg, .stats = &stats};

static uint64_t drops(void)
{
    uint64_t n = 0;
    for (int i = 0; i < EK_UDP_DROP_REASONS; i++)
        n += ek_stat_get(&stats.udp_drops[i]);
    return n;
}

/* Builds an address of the family chosen by sel from 18 bytes. */
static void make_addr(struct sockaddr_storage *ss, uint8_t sel,
                      const uint8_t *b)
{
    memset(ss, 0, sizeof(*ss));
    if (sel & 1) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        memcpy(&a->sin6_addr, b, 16);
        memcpy(&a->sin6_port, b + 16, 2);
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        memcpy(&a->sin_addr, b, 4);
        memcpy(&a->sin_port, b + 16, 2);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ek_udp u;
    static int ready;
    if (size < 48)
        return 0;
    cfg.udp.low_ports = data[0] & 1;
    cfg.udp.rate = data[1] & 2 ? 0 : (uint64_t)data[2] + 1;
    cfg.udp.total_rate = data[1] & 4 ? 0 : (uint64_t)data[3] * 10 + 1;
    if (!ready) { /* buckets sized for a rate: make them once, with one */
        cfg.udp.rate = 1;
        if (ek_udp_init(&u, &srv, &stats.loop[0], 1) != 0)
            abort();
        ready = 1;
    }
    struct sockaddr_storage from;
    struct ek_sockaddr local;
    make_addr(&from, data[4], data + 5);
    make_addr(&local.ss, data[4] >> 1, data + 23);
    local.len = sizeof(local.ss);
    int flags = data[41] & 1 ? MSG_TRUNC : 0;
    int64_t now;
    memcpy(&now, data + 40, sizeof(now));

    uint64_t before = drops();
    bool ok =
        ek_udp_may_answer(&u, (struct sockaddr *)&from, &local, flags, now);
    if (drops() != before + (ok ? 0 : 1))
        abort(); /* each refusal counted exactly once */
    uint16_t port = from.ss_family == AF_INET
                        ? ntohs(((struct sockaddr_in *)&from)->sin_port)
                        : ntohs(((struct sockaddr_in6 *)&from)->sin6_port);
    const uint8_t *a =
        from.ss_family == AF_INET
            ? (const uint8_t *)&((struct sockaddr_in *)&from)->sin_addr
            : ((struct sockaddr_in6 *)&from)->sin6_addr.s6_addr;
    bool multicast =
        from.ss_family == AF_INET ? (a[0] >> 4) == 0xe : a[0] == 0xff;
    if (ok && ((flags & MSG_TRUNC) || multicast ||
               (port < 1024 && !cfg.udp.low_ports)))
        abort();
    return 0;
}
