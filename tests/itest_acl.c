/*
 * itest_acl: --allow and --deny, with clients from several 127.0.0.x
 * source addresses.
 */
#include "check.h"
#include "itest.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <sys/socket.h>
#include <unistd.h>

int connect_from(const char *src, const char *addr)
{
    struct sockaddr_in from, to;
    ipv4_endpoints(src, 0, addr, &from, &to);
    int fd = h_client_socket(AF_INET);
    CHECK(bind(fd, (struct sockaddr *)&from, sizeof(from)) == 0);
    CHECK(connect(fd, (struct sockaddr *)&to, sizeof(to)) == 0);
    CHECK(fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
    return fd;
}

/* Whether a client from src is served (echo) or refused (closed). */
static bool served_from(const char *src, const char *addr)
{
    int fd = connect_from(src, addr);
    struct h_stream st = {.fd = fd, .seed = 5, .total = 100, .quiet = true};
    bool ok = h_streams_run(&st, 1, 3000, 0) == 0;
    close(fd);
    return ok;
}

void case_access_control(void)
{
    struct h_server s;
    char maddr[256];
    const char *deny[] = {"--listen",  "127.0.0.1:0", "--deny", "127.0.0.2",
                          "--metrics", "127.0.0.1:0", NULL};
    CHECK_INT(h_server_start(&s, NULL, deny, 1, 0), ==, 0);
    metrics_addr(&s, maddr, sizeof(maddr));
    CHECK(served_from("127.0.0.1", s.addrs[0]));
    CHECK(!served_from("127.0.0.2", s.addrs[0]));
    CHECK(served_from("127.0.0.3", s.addrs[0]));
    CHECK_INT(
        metric_becomes(maddr,
                       "echokit_connections_refused_total{reason=\"acl\"}", 1),
        ==, 1);
    CHECK_CONTAINS(h_server_log(&s), "refused a connection from 127.0.0.2");
    stop_ok(&s);

    /* --allow: only those; --deny wins inside them. */
    const char *allow[] = {"--listen", "127.0.0.1:0", "--allow", "127.0.0.0/30",
                           "--deny",   "127.0.0.2",   NULL};
    CHECK_INT(h_server_start(&s, NULL, allow, 1, 0), ==, 0);
    CHECK(served_from("127.0.0.1", s.addrs[0]));
    CHECK(!served_from("127.0.0.2", s.addrs[0]));
    CHECK(served_from("127.0.0.3", s.addrs[0]));
    CHECK(!served_from("127.0.0.4", s.addrs[0]));
    stop_ok(&s);
    printf("allow/deny: 127.0.0.1 and .3 served, .2 (denied) and .4 (not "
           "allowed) closed at once and counted\n");
}
