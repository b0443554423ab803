/*
 * itest_metrics: the counters, live on /metrics (Prometheus text) and in
 * the SIGUSR1 log line, on every model.
 */
#include "check.h"
#include "itest.h"

#include <signal.h>
#include <stdio.h>
#include <unistd.h>

void case_counters(void)
{
    struct h_server s;
    char maddr[256], body[8192], want[64];
    const char *extra[] = {"--metrics", "127.0.0.1:0", NULL};
    start(&s, extra);
    metrics_addr(&s, maddr, sizeof(maddr));

    /* Live figures while the connection is still open. */
    int fd = h_connect_or_die(s.addrs[0]);
    h_echo_check(fd, 61, MiB, false);
    CHECK_INT(metric_becomes(maddr, "echokit_received_bytes_total", MiB), ==,
              MiB);
    CHECK_INT(metric_becomes(maddr, "echokit_sent_bytes_total", MiB), ==, MiB);
    CHECK_INT(metric_becomes(maddr, "echokit_connections_active", 1), ==, 1);
    CHECK_INT(metric_becomes(maddr, "echokit_connections_accepted_total", 1),
              ==, 1);
    CHECK_INT(http_get(maddr, "/metrics", body, sizeof(body)), ==, 200);
    CHECK_CONTAINS(body, "# TYPE echokit_received_bytes_total counter");
    char label[64];
    snprintf(label, sizeof(label), "model=\"%s\"", tested_model()->name);
    CHECK_CONTAINS(body, label);
    CHECK_INT(http_get(maddr, "/", body, sizeof(body)), ==, 404);

    /* SIGUSR1: the same figures in the log; the server keeps serving. */
    CHECK(kill(s.pid, SIGUSR1) == 0);
    snprintf(want, sizeof(want), "%llu bytes in, %llu bytes out",
             (unsigned long long)MiB, (unsigned long long)MiB);
    CHECK(log_shows(&s, "stats: 1 active, 1 accepted", 5000));
    CHECK_CONTAINS(h_server_log(&s), want);
    CHECK(quick_echo(fd, 62, 5000));
    close(fd);
    CHECK_INT(metric_becomes(maddr, "echokit_connections_active", 0), ==, 0);
    printf("%s: counters: 1 MiB in and out, seen live on /metrics and in "
           "the SIGUSR1 log line\n",
           model);
    stop_ok(&s);
}
