/* Unit test of the UDP reflection rules (ek_udp_may_answer): who gets an
 * answer, who does not, and how each refusal is counted. */
#include "check.h"
#include "ek_server.h"
#include "ek_udp.h"
#include "ek_acl.h"
#include "ek_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>

static struct ek_stats stats;
static struct ek_acl acl;
static struct ek_config cfg = {.acl = &acl};
static struct ek_server srv = {.cfg = &cfg, .stats = &stats};

static struct sockaddr_storage addr(const char *text, unsigned port)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
    } else {
        CHECK(inet_pton(AF_INET6, text, &v6->sin6_addr) == 1);
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
    }
    return ss;
}

static struct ek_sockaddr local_at(const char *text, unsigned port)
{
    struct ek_sockaddr l = {.ss = addr(text, port)};
    l.len = l.ss.ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                      : sizeof(struct sockaddr_in6);
    return l;
}

/* Whether a datagram from text:port is answered; checks the counter of
 * reason `why` moved by one when it is not. */
static bool answered(struct ek_udp *u, const char *text, unsigned port,
                     const struct ek_sockaddr *local, int flags, int64_t now,
                     int why)
{
    struct sockaddr_storage from = addr(text, port);
    uint64_t before[EK_UDP_DROP_REASONS];
    for (int i = 0; i < EK_UDP_DROP_REASONS; i++)
        before[i] = ek_stat_get(&stats.udp_drops[i]);
    bool ok = ek_udp_may_answer(u, (struct sockaddr *)&from, local, flags, now);
    for (int i = 0; i < EK_UDP_DROP_REASONS; i++) {
        uint64_t moved = ek_stat_get(&stats.udp_drops[i]) - before[i];
        if (moved != (uint64_t)(!ok && i == why))
            fprintf(stderr, "from %s:%u: reason %d counted %llu\n", text, port,
                    i, (unsigned long long)moved);
        CHECK_INT(moved, ==, !ok && i == why ? 1 : 0);
    }
    return ok;
}

static void test_reflection_rules(void)
{
    struct ek_udp u;
    struct ek_counters c = {0};
    CHECK(ek_udp_init(&u, &srv, &c, 1) == 0);
    struct ek_sockaddr lo = local_at("127.0.0.1", 7007);
    int64_t t = ek_now_ns();

    CHECK(answered(&u, "127.0.0.1", 40000, &lo, 0, t, -1));
    CHECK(answered(&u, "2001:db8::1", 40000, &lo, 0, t, -1));
    /* The loop partners: echo (7), chargen (19), DNS (53), ... */
    CHECK(!answered(&u, "192.0.2.1", 7, &lo, 0, t, EK_UDP_DROP_LOW_PORT));
    CHECK(!answered(&u, "192.0.2.1", 19, &lo, 0, t, EK_UDP_DROP_LOW_PORT));
    CHECK(!answered(&u, "192.0.2.1", 1023, &lo, 0, t, EK_UDP_DROP_LOW_PORT));
    CHECK(answered(&u, "192.0.2.1", 1024, &lo, 0, t, -1));
    /* Nobody: unspecified, broadcast, multicast (and mapped forms). */
    CHECK(!answered(&u, "0.0.0.0", 40000, &lo, 0, t, EK_UDP_DROP_BROADCAST));
    CHECK(!answered(&u, "255.255.255.255", 40000, &lo, 0, t,
                    EK_UDP_DROP_BROADCAST));
    CHECK(!answered(&u, "224.0.0.251", 5353, &lo, 0, t, EK_UDP_DROP_BROADCAST));
    CHECK(!answered(&u, "239.1.2.3", 40000, &lo, 0, t, EK_UDP_DROP_BROADCAST));
    CHECK(!answered(&u, "::", 40000, &lo, 0, t, EK_UDP_DROP_BROADCAST));
    CHECK(!answered(&u, "ff02::1", 40000, &lo, 0, t, EK_UDP_DROP_BROADCAST));
    CHECK(!answered(&u, "::ffff:255.255.255.255", 40000, &lo, 0, t,
                    EK_UDP_DROP_BROADCAST));
    /* Ourselves: our address and port, or a local address with our port. */
    CHECK(!answered(&u, "127.0.0.1", 7007, &lo, 0, t, EK_UDP_DROP_SELF));
    CHECK(!answered(&u, "::ffff:127.0.0.1", 7007, &lo, 0, t, EK_UDP_DROP_SELF));
    struct ek_sockaddr any = local_at("0.0.0.0", 7007);
    CHECK(!answered(&u, "127.0.0.1", 7007, &any, 0, t, EK_UDP_DROP_SELF));
    CHECK(answered(&u, "127.0.0.1", 7008, &any, 0, t, -1));
    /* Cut short by the kernel: cannot be echoed whole. */
    CHECK(!answered(&u, "127.0.0.1", 40000, &lo, MSG_TRUNC, t,
                    EK_UDP_DROP_TRUNCATED));
    /* --udp-low-ports lifts the port rule only. */
    cfg.udp.low_ports = true;
    CHECK(answered(&u, "192.0.2.1", 7, &lo, 0, t, -1));
    CHECK(!answered(&u, "127.0.0.1", 7007, &lo, 0, t, EK_UDP_DROP_SELF));
    cfg.udp.low_ports = false;
    ek_udp_free(&u);
}

static void test_acl_and_rates(void)
{
    struct ek_cidr deny;
    const char *why;
    CHECK(ek_cidr_parse("198.51.100.0/24", &deny, &why) == 0);
    CHECK(ek_acl_add(&acl, false, &deny) == 0);
    cfg.udp.rate = 10;        /* per source */
    cfg.udp.total_rate = 100; /* in all */
    struct ek_udp u;
    struct ek_counters c = {0};
    CHECK(ek_udp_init(&u, &srv, &c, 1) == 0);
    struct ek_sockaddr lo = local_at("127.0.0.1", 7007);
    int64_t t = ek_now_ns();

    CHECK(!answered(&u, "198.51.100.9", 40000, &lo, 0, t, EK_UDP_DROP_ACL));
    /* A source gets its burst of 10, then one per 100 ms. */
    int ok = 0;
    for (int i = 0; i < 30; i++)
        ok += answered(&u, "192.0.2.1", 40000 + (unsigned)i, &lo, 0, t,
                       ok >= 10 ? EK_UDP_DROP_RATE : -1);
    CHECK_INT(ok, ==, 10);
    CHECK(!answered(&u, "192.0.2.1", 40000, &lo, 0, t + 50000000,
                    EK_UDP_DROP_RATE));
    CHECK(answered(&u, "192.0.2.1", 40000, &lo, 0, t + 100000000, -1));
    /* Another source has its own bucket... */
    CHECK(answered(&u, "192.0.2.2", 40000, &lo, 0, t + 100000000, -1));
    /* ...until all of them together reach the total. */
    int total = 0;
    for (unsigned i = 0; i < 200; i++) {
        char a[32];
        snprintf(a, sizeof(a), "10.0.%u.%u", i / 250, i % 250 + 1);
        struct sockaddr_storage from = addr(a, 40000);
        total += ek_udp_may_answer(&u, (struct sockaddr *)&from, &lo, 0,
                                   t + 100000000);
    }
    /* The total bucket: 100, 10 spent at t, full again 100 ms later, 2
     * spent: 98 left for the crowd. */
    CHECK_INT(total, ==, 98);
    CHECK(ek_stat_get(&stats.udp_drops[EK_UDP_DROP_RATE_TOTAL]) >= 100);
    ek_udp_free(&u);
    ek_acl_free(&acl);
}

/* Two sources that share a slot (the table shrunk to one slot here; in
 * use, a keyed hash makes such pairs rare and unchosen) share its bucket:
 * alternating with the other cannot refill a source's. It could: a
 * source new to a slot got a full bucket, and one datagram from a
 * colliding address before each 10 gave 100 echoes of 100 at --udp-rate
 * 10. */
static void test_shared_slot(void)
{
    cfg.udp.rate = 10;
    cfg.udp.total_rate = 0;
    struct ek_udp u;
    struct ek_counters c = {0};
    CHECK(ek_udp_init(&u, &srv, &c, 1) == 0);
    u.source_mask = 0; /* one slot: every source collides */
    struct ek_sockaddr lo = local_at("127.0.0.1", 7007);
    int64_t t = ek_now_ns();
    int a_ok = 0, b_ok = 0;
    for (int round = 0; round < 10; round++) {
        b_ok += answered(&u, "192.0.2.20", 40000, &lo, 0, t, EK_UDP_DROP_RATE);
        for (int i = 0; i < 10; i++)
            a_ok +=
                answered(&u, "192.0.2.10", 40000, &lo, 0, t, EK_UDP_DROP_RATE);
    }
    CHECK_INT(a_ok + b_ok, ==, 10); /* one bucket of 10, whoever asks */
    ek_udp_free(&u);
}

/* --udp-rate-total below the number of loops: each loop's share is under
 * one token a second, and must still answer at that rate, so that the
 * loops together answer the total. It never answered: a bucket held at
 * most its rate, under the one token an answer takes. */
static void test_total_split(void)
{
    enum { LOOPS = 4 };
    cfg.udp.rate = 0;
    cfg.udp.total_rate = 2; /* 0.5 a second per loop */
    struct ek_udp u[LOOPS];
    struct ek_counters c = {0};
    struct ek_sockaddr lo = local_at("127.0.0.1", 7007);
    int64_t t = ek_now_ns();
    int ok = 0;
    for (int l = 0; l < LOOPS; l++)
        CHECK(ek_udp_init(&u[l], &srv, &c, LOOPS) == 0);
    /* 10 s, a datagram to every loop each 100 ms: 2 a second in all,
     * and the one-token burst each loop starts with. */
    for (int step = 0; step < 100; step++)
        for (int l = 0; l < LOOPS; l++)
            ok +=
                answered(&u[l], "192.0.2.30", 40000, &lo, 0,
                         t + (int64_t)step * 100000000, EK_UDP_DROP_RATE_TOTAL);
    CHECK_INT(ok, >=, 2 * 10);
    CHECK_INT(ok, <=, 2 * 10 + LOOPS);
    for (int l = 0; l < LOOPS; l++)
        ek_udp_free(&u[l]);
}

int main(void)
{
    test_reflection_rules();
    test_acl_and_rates();
    test_shared_slot();
    test_total_split();
    puts("PASS: udp");
    return 0;
}
