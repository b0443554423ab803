/*
 * itest_udp: UDP echo on every model (whole datagrams, --udp-rate, --deny,
 * low source ports, the counters), and the clients over UDP: send, ping
 * and bench.
 */
#include "check.h"
#include "itest.h"

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A UDP socket bound to src (port 0: any; below 1024: the first free
 * one from src_port down, since tests run side by side), connected to addr
 * ("udp:HOST:PORT"). */
static int udp_client(const char *src, unsigned src_port, const char *addr)
{
    CHECK(strncmp(addr, "udp:", 4) == 0);
    struct sockaddr_in from, to;
    ipv4_endpoints(src, src_port, addr + 4, &from, &to);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    while (bind(fd, (struct sockaddr *)&from, sizeof(from)) < 0) {
        CHECK(errno == EADDRINUSE && src_port > 512);
        from.sin_port = htons((uint16_t)--src_port);
    }
    CHECK(connect(fd, (struct sockaddr *)&to, sizeof(to)) == 0);
    return fd;
}

/* Sends n bytes of pattern `seed` as one datagram; true when exactly that
 * datagram comes back within wait_ms. */
static bool udp_round_trip(int fd, uint64_t seed, size_t n, int wait_ms)
{
    static unsigned char out[65536], in[65536];
    h_pattern(seed, 0, out, n);
    CHECK(send(fd, out, n, 0) == (ssize_t)n);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    if (poll(&p, 1, wait_ms) != 1)
        return false;
    ssize_t r = recv(fd, in, sizeof(in), MSG_DONTWAIT);
    return r == (ssize_t)n && memcmp(in, out, n) == 0;
}

/* Sends count datagrams at once, then counts the echoes that come. */
static unsigned udp_burst(int fd, unsigned count, int wait_ms)
{
    char msg[64];
    for (unsigned i = 0; i < count; i++) {
        int n = snprintf(msg, sizeof(msg), "burst %u", i);
        CHECK(send(fd, msg, (size_t)n, 0) == n);
    }
    unsigned got = 0;
    int64_t deadline = h_now_ms() + wait_ms;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(deadline - h_now_ms());
        if (left <= 0 || poll(&p, 1, left) != 1)
            return got;
        if (recv(fd, msg, sizeof(msg), MSG_DONTWAIT) > 0)
            got++;
    }
}

void case_udp_echo(void)
{
    struct h_server s;
    char maddr[256];
    const char *args[] = {"--listen",   "udp:127.0.0.1:0",
                          "--listen",   "127.0.0.1:0",
                          "--udp-rate", "100",
                          "--deny",     "127.0.0.2",
                          "--metrics",  "127.0.0.1:0",
                          NULL};
    h_server_start_or_skip(&s, model, args, 2);
    metrics_addr(&s, maddr, sizeof(maddr));
    const char *udp = s.addrs[0];
    CHECK(strncmp(udp, "udp:", 4) == 0);

    /* Whole datagrams, 1 byte to the largest IPv4 allows. */
    int fd = udp_client("127.0.0.1", 0, udp);
    static const size_t sizes[] = {1, 100, 1400, 9000, 65507};
    for (size_t i = 0; i < 5; i++)
        CHECK(udp_round_trip(fd, 600 + i, sizes[i], 5000));
    /* TCP on the same server still works. */
    int tcp = h_connect_or_die(s.addrs[1]);
    h_echo_check(tcp, 610, 64 * KiB, true);

    /* --udp-rate 100: a burst of 200 from one source gets its 100 (plus
     * what refills while it is sent), not the rest. (200 small datagrams
     * fit the default receive buffer; more may be dropped by the kernel
     * before the server sees them.) */
    int burst_fd = udp_client("127.0.0.3", 0, udp);
    unsigned got = udp_burst(burst_fd, 200, 1000);
    close(burst_fd);
    CHECK_INT(got, >=, 95);
    CHECK_INT(got, <=, 130);

    /* --deny: no answer. */
    int denied = udp_client("127.0.0.2", 0, udp);
    CHECK(!udp_round_trip(denied, 620, 10, 300));
    close(denied);
    /* Source ports below 1024 (the loop partners): no answer. */
    if (geteuid() == 0) {
        int low = udp_client("127.0.0.1", 999, udp);
        CHECK(!udp_round_trip(low, 621, 10, 300));
        close(low);
        CHECK_INT(metric_becomes(maddr,
                                 "echokit_udp_dropped_datagrams_total{reason="
                                 "\"low_port\"}",
                                 1),
                  ==, 1);
    } else {
        printf("%s: udp: not root, source port 999 not tried\n", model);
    }
    CHECK(udp_round_trip(fd, 630, 64, 5000)); /* still served */
    close(fd);
    CHECK_INT(
        metric_becomes(
            maddr, "echokit_udp_dropped_datagrams_total{reason=\"acl\"}", 1),
        ==, 1);
    /* The last echo may reach us a moment before the server counts it. */
    CHECK_INT(metric_becomes(maddr, "echokit_udp_sent_datagrams_total",
                             6 + (long long)got),
              ==, 6 + (long long)got);
    char body[8192];
    CHECK_INT(http_get(maddr, "/metrics", body, sizeof(body)), ==, 200);
    long long in = metric(body, "echokit_udp_received_datagrams_total");
    long long out = metric(body, "echokit_udp_sent_datagrams_total");
    long long rate =
        metric(body, "echokit_udp_dropped_datagrams_total{reason=\"rate\"}");
    printf("%s: udp: 5 sizes up to 65507 B echoed whole; burst of 200 "
           "from one source: %u answered (--udp-rate 100); denied and "
           "low-port sources unanswered; %lld in, %lld out, %lld over the "
           "rate\n",
           model, got, in, out, rate);
    /* Every burst datagram the server saw was answered or counted: the
     * others were 5 sizes, 1 after, 1 denied and (as root) 1 low port. */
    long long others = geteuid() == 0 ? 8 : 7;
    CHECK_INT(rate, ==, in - others - (long long)got);
    CHECK_INT(out, ==, 6 + (long long)got);
    stop_ok(&s);
}

/* A UDP socket on 127.0.0.1 that never answers; its "udp:HOST:PORT" in
 * addr. */
static int silent_udp(char *addr, size_t size)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    CHECK(fd >= 0);
    CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
    snprintf(addr, size, "udp:127.0.0.1:%u", ntohs(sa.sin_port));
    return fd;
}

void case_udp_send(void)
{
    struct h_server s;
    struct h_run r;
    const char *args[] = {"--udp", "--listen", "127.0.0.1:0", NULL};
    CHECK_INT(h_server_start(&s, NULL, args, 1, 0), ==, 0);
    const char *udp = s.addrs[0];

    const char *hello[] = {"send", udp, NULL};
    CHECK_INT(h_run_echokit(hello, -1, 10000, &r), ==, 0);
    CHECK_STR(r.out, "Received 'Hello, world'\n");
    const char *plain = udp + 4; /* without "udp:" */
    const char *flag[] = {"send", "--udp", plain, "over", "udp", NULL};
    CHECK_INT(h_run_echokit(flag, -1, 10000, &r), ==, 0);
    CHECK_STR(r.out, "Received 'over udp'\n");

    /* Pipe mode: 48 KiB through, a datagram per read, in order. */
    unsigned char data[48 * 1024];
    h_pattern(9, 0, data, sizeof(data));
    int in = write_temp_file("udp.in", 9, sizeof(data));
    const char *pipe_args[] = {"send", udp, "-", NULL};
    CHECK_INT(h_run_echokit(pipe_args, in, 20000, &r), ==, 0);
    close(in);
    CHECK_INT(r.out_len, ==, sizeof(data));
    CHECK(memcmp(r.out, data, sizeof(data)) == 0);
    stop_ok(&s);

    /* Nobody there: ICMP port unreachable, 69. */
    const char *gone[] = {"send", "-t", "3", udp, NULL};
    CHECK_INT(h_run_echokit(gone, -1, 10000, &r), ==, 69);
    CHECK_CONTAINS(r.err, "refused");
    /* Somebody there who never answers: 75 after -t. */
    char quiet[64];
    int silent = silent_udp(quiet, sizeof(quiet));
    const char *mute[] = {"send", "-t", "1.5", quiet, NULL};
    int64_t t0 = h_now_ms();
    CHECK_INT(h_run_echokit(mute, -1, 10000, &r), ==, 75);
    CHECK_INT(h_now_ms() - t0, >=, 1400);
    close(silent);
    const char *unix_udp[] = {"send", "--udp", "unix:/tmp/x", NULL};
    CHECK_INT(h_run_echokit(unix_udp, -1, 10000, &r), ==, 64);
    printf("send --udp: message, 48 KiB piped exactly, 69 when refused, 75 "
           "when unanswered\n");
}

/* ping --udp and bench --udp against a UDP server, an over-limit one and a
 * silent socket. */
void case_udp_clients(void)
{
    struct h_server s;
    struct h_run r;
    double v;
    const char *args[] = {"--listen", "udp:127.0.0.1:0",  "--udp-rate",
                          "0",        "--udp-rate-total", "0",
                          NULL};
    CHECK_INT(h_server_start(&s, NULL, args, 1, 0), ==, 0);
    const char *udp = s.addrs[0];

    const char *ping[] = {"ping", "-c", "5", "-i", "0.05", udp, NULL};
    CHECK_INT(h_run_echokit(ping, -1, 10000, &r), ==, 0);
    CHECK_CONTAINS(r.out, "5 sent, 5 received, 0.0% loss");
    CHECK_CONTAINS(r.out, "0 out of order, 0 duplicates");
    const char *flood[] = {"ping", "-q", "-u",    "-c", "2000",
                           "-i",   "0",  udp + 4, NULL};
    CHECK_INT(h_run_echokit(flood, -1, 20000, &r), ==, 0);
    CHECK_CONTAINS(r.out, "2000 sent, 2000 received");

    const char *bench[] = {"bench", "-c", "4",   "-d",     "2", "-t",
                           "0.5",   "-w", "0.1", "--json", udp, NULL};
    CHECK_INT(h_run_echokit(bench, -1, 20000, &r), ==, 0);
    CHECK(h_json_valid(r.out));
    CHECK_CONTAINS(r.out, "\"udp\":true");
    CHECK(h_json_number(r.out, "msgs", &v) && v > 100);
    CHECK(h_json_number(r.out, "lost", &v) && v == 0);
    CHECK(h_json_number(r.out, "mismatches", &v) && v == 0);
    double open_rate;
    const char *open_loop[] = {"bench", "-u",  "-c",     "2",     "-r", "2000",
                               "-t",    "0.5", "--json", udp + 4, NULL};
    CHECK_INT(h_run_echokit(open_loop, -1, 20000, &r), ==, 0);
    CHECK(h_json_number(r.out, "msgs_per_s", &open_rate));
    CHECK(open_rate > 1800 && open_rate < 2200);
    stop_ok(&s);

    /* Over the server's --udp-rate: losses counted, not errors. */
    const char *limited[] = {"--listen", "udp:127.0.0.1:0", "--udp-rate", "200",
                             NULL};
    CHECK_INT(h_server_start(&s, NULL, limited, 1, 0), ==, 0);
    const char *over[] = {"bench", "-c", "1", "-d",     "50",       "-t",
                          "1.5",   "-w", "0", "--json", s.addrs[0], NULL};
    CHECK_INT(h_run_echokit(over, -1, 20000, &r), ==, 0);
    double lost, msgs;
    CHECK(h_json_number(r.out, "lost", &lost) && lost > 0);
    CHECK(h_json_number(r.out, "msgs", &msgs) && msgs >= 150 && msgs <= 500);
    stop_ok(&s);

    /* A socket that never answers: ping loses everything (1), bench's
     * connections are silent (timeouts, 1). */
    char quiet[64];
    int silent = silent_udp(quiet, sizeof(quiet));
    const char *ping_mute[] = {"ping", "-c",  "2",   "-i", "0.1",
                               "-W",   "0.5", quiet, NULL};
    CHECK_INT(h_run_echokit(ping_mute, -1, 10000, &r), ==, 1);
    CHECK_CONTAINS(r.out, "2 sent, 0 received, 100.0% loss");
    const char *bench_mute[] = {"bench", "-c", "2",      "-t",  "0.5",
                                "-w",    "0",  "--json", quiet, NULL};
    CHECK_INT(h_run_echokit(bench_mute, -1, 20000, &r), ==, 1);
    CHECK(h_json_number(r.out, "timeouts", &v) && v == 2);
    close(silent);
    printf("udp clients: ping (5, and 2000 flooded) all back; bench closed "
           "and open loop (%.0f msgs/s asked 2000), no loss; over --udp-rate "
           "200: %.0f back, %.0f lost; silent socket: ping 100%% loss, bench "
           "2 timeouts\n",
           open_rate, msgs, lost);
}

/* --udp-rate 10: a source alternating with an address that shared its
 * slot in the former unkeyed table (127.9.16.179 with 127.0.0.2, FNV-1a)
 * got a full bucket back each time: one datagram from the other before
 * each 10 of its own gave 100 echoes of 100 (found by review). Now a
 * source new to a slot gets what the slot has left, and the hash is keyed
 * per process: about 10. */
void case_udp_rate_collide(void)
{
    struct h_server s;
    const char *args[] = {"--listen", "udp:127.0.0.1:0",  "--udp-rate",
                          "10",       "--udp-rate-total", "0",
                          NULL};
    CHECK_INT(h_server_start(&s, NULL, args, 1, 0), ==, 0);
    int a = udp_client("127.0.0.2", 0, s.addrs[0]);
    int b = udp_client("127.9.16.179", 0, s.addrs[0]);
    int64_t t0 = h_now_ms();
    char msg[32];
    for (int round = 0; round < 10; round++) {
        CHECK(send(b, "b", 1, 0) == 1);
        h_sleep_ms(2); /* b's datagram first */
        for (int i = 0; i < 10; i++) {
            int n = snprintf(msg, sizeof(msg), "a %d %d", round, i);
            CHECK(send(a, msg, (size_t)n, 0) == n);
        }
        h_sleep_ms(2);
    }
    int64_t took = h_now_ms() - t0;
    unsigned got = udp_burst(a, 0, 500);
    /* 10 at once, and the refill while the rounds ran: 10 a second. */
    unsigned bound = 10 + (unsigned)((took + 500) / 100) + 1;
    printf("udp --udp-rate 10, 100 datagrams interleaved with another "
           "source's: %u echoed (bound %u)\n",
           got, bound);
    CHECK_INT(got, <=, bound);
    CHECK_INT(got, >=, 10);
    close(a);
    close(b);
    stop_ok(&s);
}
