/*
 * itest_clients: what send and ping print and how they pace themselves,
 * against echokit's own server and against the suite's misbehaving ones
 * (harness.h's fake servers, and the lockstep server below).
 */
#include "check.h"
#include "itest.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* A UDP socket on 127.0.0.1 that never answers: its "udp:HOST:PORT" into
 * addr. Close it when done. */
static int silent_udp(char *addr, size_t size)
{
    unsigned port;
    int fd = h_loopback_socket(SOCK_DGRAM, &port);
    snprintf(addr, size, "udp:127.0.0.1:%u", port);
    return fd;
}

/* send prints "Received" only for an echo: a server that closes at once,
 * TLS to a plain echo port and a TLS handshake cut short print nothing
 * on stdout, and say why on stderr. The previous build printed
 * "Received ''" before each failure. */
void case_send_received(void)
{
    struct h_run r;
    char addr[64];
    const char *hello[] = {"send", addr, "Hello, world", NULL};

    /* Closes after reading, having echoed nothing: 1. */
    pid_t fake = h_fake_server("short", 0, addr, sizeof(addr));
    CHECK_INT(h_run_echokit(hello, -1, 10000, &r), ==, 1);
    CHECK_INT(r.out_len, ==, 0);
    CHECK_CONTAINS(r.err, "after echoing 0 of 12 bytes");
    h_fake_end(fake);

    /* Part of it: the part is what came back. */
    fake = h_fake_server("short", 5, addr, sizeof(addr));
    CHECK_INT(h_run_echokit(hello, -1, 10000, &r), ==, 1);
    CHECK_STR(r.out, "Received 'Hello'\n");
    h_fake_end(fake);

#ifdef EK_HAVE_TLS
    /* TLS, and the server reads the ClientHello and hangs up. */
    fake = h_fake_server("short", 0, addr, sizeof(addr));
    const char *tls[] = {"send", "--tls", "--insecure", addr, "hi", NULL};
    CHECK_INT(h_run_echokit(tls, -1, 10000, &r), ==, 76);
    CHECK_INT(r.out_len, ==, 0);
    CHECK_CONTAINS(r.err, "TLS: the peer closed the connection during the "
                          "handshake");
    h_fake_end(fake);

    /* TLS to a plain echo port: the ClientHello comes back. */
    struct h_server s;
    const char *args[] = {"--listen", "127.0.0.1:0", NULL};
    CHECK_INT(h_server_start(&s, NULL, args, 1, 0), ==, 0);
    const char *plain[] = {"send",     "--tls", "--insecure",
                           s.addrs[0], "hi",    NULL};
    CHECK_INT(h_run_echokit(plain, -1, 10000, &r), ==, 76);
    CHECK_INT(r.out_len, ==, 0);
    stop_ok(&s);
#endif

    /* UDP: a port that never answers, -t 0.5: 75, nothing on stdout. */
    int quiet = silent_udp(addr, sizeof(addr));
    const char *udp[] = {"send", "-t", "0.5", addr, "hi", NULL};
    CHECK_INT(h_run_echokit(udp, -1, 10000, &r), ==, 75);
    CHECK_INT(r.out_len, ==, 0);
    close(quiet);
}

/* An echo server, in a child, that measures how many requests a client
 * keeps in flight: it waits for a request (64 bytes over TCP, a datagram
 * over UDP), lets 2 ms pass, takes all that came meanwhile, notes how many
 * requests that makes, and echoes them all. It serves one TCP connection
 * until its end, or `count` datagrams, and exits with the most requests
 * it ever held at once. Returns its pid; *addr gets its address ("udp:"
 * first for UDP). */
enum { REQ = 64, HELD_MAX = 1024 };
static pid_t inflight_server(bool udp, unsigned count, char *addr,
                             size_t addr_size)
{
    unsigned port;
    int lfd = h_loopback_socket(udp ? SOCK_DGRAM : SOCK_STREAM, &port);
    snprintf(addr, addr_size, "%s127.0.0.1:%u", udp ? "udp:" : "", port);
    pid_t pid = h_fork_server(lfd, 30);
    if (pid > 0)
        return pid;
    int fd = udp ? lfd : accept(lfd, NULL, NULL);
    if (fd < 0)
        _exit(254);
    /* TCP: the bytes held; UDP: a datagram per REQ bytes. */
    static unsigned char held[HELD_MAX * REQ];
    struct sockaddr_storage peer;
    socklen_t plen;
    size_t have = 0;
    unsigned most = 0, served = 0;
    while (!udp || served < count) {
        /* The first request (TCP: its first bytes), then 2 ms, then what
         * came meanwhile. */
        plen = sizeof(peer);
        ssize_t n =
            udp ? recvfrom(fd, held, REQ, 0, (struct sockaddr *)&peer, &plen)
                : read(fd, held + have, sizeof(held) - have);
        if (n <= 0)
            break;
        have += udp ? REQ : (size_t)n;
        h_sleep_ms(2);
        while (have < sizeof(held)) {
            ssize_t k = recv(fd, held + have, udp ? REQ : sizeof(held) - have,
                             MSG_DONTWAIT);
            if (k <= 0)
                break;
            have += udp ? REQ : (size_t)k;
        }
        unsigned whole = (unsigned)(have / REQ);
        size_t done = have - have % REQ;
        most = whole > most ? whole : most;
        for (size_t off = 0; udp && off < done; off += REQ)
            if (sendto(fd, held + off, REQ, 0, (struct sockaddr *)&peer,
                       plen) != REQ)
                _exit(252);
        if (!udp && write(fd, held, done) != (ssize_t)done)
            _exit(253);
        memmove(held, held + done, have - done);
        have -= done;
        served += whole;
    }
    _exit(most > 250 ? 250 : (int)most);
}

/* The most requests the server of inflight_server held at once. */
static int inflight_seen(pid_t pid)
{
    int st;
    CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st));
    CHECK_INT(WEXITSTATUS(st), <, 250);
    return WEXITSTATUS(st);
}

/* "time N ms" of ping's summary. */
static long summary_ms(const char *out)
{
    const char *t = strstr(out, " late, time ");
    CHECK(t != NULL);
    return strtol(t + strlen(" late, time "), NULL, 10);
}

/* ping -i to the microsecond, and -i 0 as ping-pong: one request at a
 * time, the next when the reply came, over TCP and UDP; --inflight N for
 * more. The previous build rounded -i up to the millisecond (-i 0.0005
 * -c 500 took 499 ms) and made -i 0 a burst of up to 1024 requests in
 * flight (64 over UDP). */
void case_ping_interval(void)
{
    struct h_server s;
    struct h_run r;
    start_tcp_udp(&s);
    for (int udp = 0; udp < 2; udp++) {
        /* 500 requests 0.5 ms apart: the last one leaves at 249.5 ms. */
        const char *fast[] = {"ping", "-q",  "-i",         "0.0005",
                              "-c",   "500", s.addrs[udp], NULL};
        CHECK_INT(h_run_echokit(fast, -1, 10000, &r), ==, 0);
        long ms = summary_ms(r.out);
        printf("%s: -i 0.0005 -c 500: %ld ms\n", udp ? "UDP" : "TCP", ms);
        CHECK_INT(ms, >=, 249);
        CHECK_INT(ms, <, 400);
    }
    stop_ok(&s);

    char addr[64];
    for (int udp = 0; udp < 2; udp++) {
        pid_t srv = inflight_server(udp, 100, addr, sizeof(addr));
        const char *pong[] = {"ping", "-q", "-i", "0", "-c", "100", addr, NULL};
        CHECK_INT(h_run_echokit(pong, -1, 20000, &r), ==, 0);
        CHECK_CONTAINS(r.out, "100 sent, 100 received");
        int most = inflight_seen(srv);
        printf("%s: -i 0: at most %d in flight\n", udp ? "UDP" : "TCP", most);
        CHECK_INT(most, ==, 1);

        srv = inflight_server(udp, 100, addr, sizeof(addr));
        const char *four[] = {"ping", "-q", "-i",  "0",  "--inflight",
                              "4",    "-c", "100", addr, NULL};
        CHECK_INT(h_run_echokit(four, -1, 20000, &r), ==, 0);
        most = inflight_seen(srv);
        printf("%s: -i 0 --inflight 4: at most %d in flight\n",
               udp ? "UDP" : "TCP", most);
        CHECK_INT(most, >=, 2);
        CHECK_INT(most, <=, 4);
    }
}
