/*
 * itest_idle: --idle-timeout on every model: the idle connection goes, a
 * busy one stays (with a model that serves one client at a time, the
 * next client is served once the idle one is cut).
 */
#include "check.h"
#include "itest.h"

#include <stdio.h>
#include <unistd.h>

void case_idle_timeout(void)
{
    struct h_server s;
    const char *extra[] = {"--idle-timeout", "0.5", "--metrics", "127.0.0.1:0",
                           NULL};
    char maddr[256];
    start(&s, extra);
    metrics_addr(&s, maddr, sizeof(maddr));

    int64_t t0 = h_now_ms();
    int idle = h_connect_or_die(s.addrs[0]);
    CHECK(quick_echo(idle, 71, 5000)); /* then nothing more */
    if (model_has(EK_CAP_ONE_AT_A_TIME)) {
        /* One client at a time: the next one is served only once the idle
         * one is cut, which is what the timeout is for here. */
        int next = h_connect_or_die(s.addrs[0]);
        CHECK(quick_echo(next, 72, 10000));
        int64_t waited = h_now_ms() - t0;
        printf("%s: idle timeout 0.5 s: the waiting client was served after "
               "%lld ms\n",
               model, (long long)waited);
        CHECK_INT(waited, >=, 400);
        CHECK(closed_by_peer(idle, 1000));
        close(next);
    } else {
        /* A busy client keeps its connection; the idle one loses its. */
        int busy = h_connect_or_die(s.addrs[0]);
        for (int i = 0; i < 15; i++) {
            CHECK(quick_echo(busy, 73 + (uint64_t)i, 5000));
            h_sleep_ms(100);
        }
        CHECK(closed_by_peer(idle, 3000));
        int64_t closed = h_now_ms() - t0;
        CHECK(quick_echo(busy, 99, 5000));
        printf("%s: idle timeout 0.5 s: idle connection closed after %lld "
               "ms; one echoing every 100 ms kept for 1.5 s\n",
               model, (long long)closed);
        close(busy);
    }
    close(idle);
    CHECK_INT(metric_becomes(maddr, "echokit_connections_idle_closed_total", 1),
              ==, 1);
    stop_ok(&s);
}
