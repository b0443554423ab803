/*
 * itest_clients: what send and ping print and how they pace themselves,
 * against echokit's own server and against the suite's misbehaving ones
 * (harness.h's fake servers, and the lockstep server below).
 */
#include "check.h"
#include "itest.h"

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A UDP socket on 127.0.0.1 that never answers: its "udp:HOST:PORT" into
 * addr. Close it when done. */
static int silent_udp(char *addr, size_t size)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
          getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    snprintf(addr, size, "udp:127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
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
    CHECK_INT(h_run_echokit(tls, -1, 10000, &r), !=, 0);
    CHECK_INT(r.out_len, ==, 0);
    CHECK_CONTAINS(r.err, "TLS");
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
