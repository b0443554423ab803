/*
 * itest_stress: the server under load and abuse, bounded in time: ten
 * thousand connections at once, a thousand clients that reset at random
 * while others stream, and SIGTERM in the middle of full load.
 */
#include "check.h"
#include "ek_config.h"
#include "ek_proc.h"
#include "itest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Sanitizers slow the echo tenfold: less data, the same shape of test. */
#ifdef EK_TEST_SANITIZED
#define STREAM_EACH (2 * MiB)
#else
#define STREAM_EACH (16 * MiB)
#endif

/* The bound the README states for conns connections at --max-queue
 * max_queue_kb: conns x (max-queue + 128 KiB of allocation slack), plus 8
 * MiB for the engine's fixed buffers (uring: its 4 MiB ring); looser in
 * sanitized builds (MEM_SLACK). */
static long memory_bound_kb(long conns, long max_queue_kb)
{
    return MEM_SLACK * (conns * (max_queue_kb + 128) + 8L * 1024);
}

/* Checks a server's growth against bound_kb; not under ThreadSanitizer,
 * which keeps about 1 MiB of its own per thread (said so instead). */
static void check_growth(long grew_kb, long bound_kb)
{
#ifdef EK_TEST_TSAN
    (void)grew_kb;
    (void)bound_kb;
    printf("note: memory bound not checked: ThreadSanitizer keeps about 1 "
           "MiB of its own state per thread (checked in the other builds)\n");
#else
    CHECK(grew_kb <= bound_kb);
#endif
}

/* What the streams wrote, in all. */
static uint64_t streams_sent(const struct h_stream *v, size_t n)
{
    uint64_t sent = 0;
    for (size_t i = 0; i < n; i++)
        sent += v[i].sent;
    return sent;
}

/* The event-driven models hold thousands of connections; the others are
 * skipped here with the reason (they are bounded by --max-conns 1000 and
 * tested for it elsewhere). */
static void event_driven_only(int n)
{
    if (!model_has(EK_CAP_EVENT_LOOP))
        SKIP("%s model: %d simultaneous connections are for the event loops "
             "(this model serves at most --max-conns 1000)",
             model, n);
    if (model_has(EK_CAP_FD_LIMIT))
        SKIP("%s cannot watch %d descriptors (FD_SETSIZE %d; refused by "
             "design, see many_fds)",
             model, n, FD_SETSIZE);
}

void case_stress_10k(void)
{
    enum { N = 10000 };
    event_driven_only(N);
    raise_own_fd_limit(N + 200);
    struct h_server s;
    const char *extra[] = {"--max-conns", "20000", NULL};
    start(&s, extra);
    long base_kb = ek_proc_mem_kb(s.pid, "Rss");

    static struct h_stream v[N];
    int64_t t0 = h_now_ms();
    for (int i = 0; i < N; i++)
        v[i] = (struct h_stream){.fd = h_connect_or_die(s.addrs[0]),
                                 .seed = 70000 + (uint64_t)i,
                                 .total = 64};
    int64_t connected = h_now_ms() - t0;
    /* All open at once, each echoing its 64 bytes. */
    CHECK_INT(h_streams_run(v, N, 120000, 0), ==, 0);
    long held_kb = ek_proc_mem_kb(s.pid, "Rss");
    int ok = 0;
    for (int i = 0; i < N; i++)
        ok += v[i].error == 0 && v[i].received == v[i].total;
    CHECK_INT(ok, ==, N);
    /* A newcomer is still served while all of them are open. */
    int extra_fd = h_connect_or_die(s.addrs[0]);
    CHECK(quick_echo(extra_fd, 1, 10000));
    close(extra_fd);
    for (int i = 0; i < N; i++)
        close(v[i].fd);
    printf("%s: %d connections open at once, all echoed (connected in %lld "
           "ms); server RSS %ld -> %ld KiB (%.0f B per connection)\n",
           model, N, (long long)connected, base_kb, held_kb,
           (double)(held_kb - base_kb) * 1024.0 / N);
    CHECK(held_kb - base_kb < 2L * N); /* under 2 KiB each, buffers included */
    stop_ok(&s);
}

void case_random_resets(void)
{
    enum { RESETTERS = 1000, BATCH = 50, STREAMERS = 4 };
    struct h_server s;
    if (model_has(EK_CAP_ONE_AT_A_TIME))
        SKIP("%s model: one client at a time, so the streamers would wait "
             "for each other while the resetters wait in the backlog",
             model);
    start(&s, NULL);
    srand(12345);

    /* Streamers: verified echoes running all along. */
    struct h_stream good[STREAMERS];
    for (int i = 0; i < STREAMERS; i++)
        good[i] = (struct h_stream){.fd = h_connect_or_die(s.addrs[0]),
                                    .seed = 80000 + (uint64_t)i,
                                    .total = 0};
    int resets = 0;
    for (int b = 0; b < RESETTERS / BATCH; b++) {
        int fds[BATCH];
        for (int i = 0; i < BATCH; i++) {
            fds[i] = h_connect_or_die(s.addrs[0]);
            size_t n = 1 + (size_t)rand() % ((size_t)64 * 1024);
            static unsigned char junk[64 * 1024];
            memset(junk, (int)i, n);
            ssize_t w = send(fds[i], junk, n, MSG_NOSIGNAL); /* may be short */
            (void)w;
        }
        if (rand() % 2) /* let some echo begin before the reset */
            h_sleep_ms(rand() % 5);
        for (int i = 0; i < BATCH; i++) {
            struct linger lg = {.l_onoff = 1, .l_linger = 0};
            CHECK(setsockopt(fds[i], SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) ==
                  0);
            close(fds[i]); /* RST, with data in flight both ways */
            resets++;
        }
        /* Between batches each streamer echoes 16 KiB more, verified. */
        for (int i = 0; i < STREAMERS; i++)
            good[i].total += 16 * KiB;
        CHECK_INT(h_streams_run(good, STREAMERS, 30000, 0), ==, 0);
    }
    for (int i = 0; i < STREAMERS; i++)
        close(good[i].fd);
    /* Nothing is left behind: "0 active" in the counters line once the
     * resets are processed (the process model reaps its children as they
     * exit; until then they count against --max-conns)... */
    int64_t deadline = h_now_ms() + 20000;
    bool settled = false;
    while (!settled && h_now_ms() < deadline) {
        CHECK(kill(s.pid, SIGUSR1) == 0);
        h_sleep_ms(100);
        const char *log = h_server_log(&s);
        const char *last = NULL;
        for (const char *p = strstr(log, "stats: "); p;
             p = strstr(p + 1, "stats: "))
            last = p;
        settled = last != NULL && strncmp(last, "stats: 0 active", 15) == 0;
    }
    CHECK(settled);
    /* ...and it still serves. */
    int fd = h_connect_or_die(s.addrs[0]);
    h_echo_check(fd, 90000, MiB, true);
    printf("%s: %d clients reset with data in flight, %d streamers verified "
           "throughout; 0 connections left open\n",
           model, resets, STREAMERS);
    stop_ok(&s);
}

void case_sigterm_under_load(void)
{
    enum { N = 40 };
    struct h_server s;
    if (model_has(EK_CAP_ONE_AT_A_TIME))
        SKIP("%s model: one client at a time, nothing to load", model);
    const char *extra[] = {"--drain-timeout", "30", NULL};
    start(&s, extra);
    struct h_stream v[N];
    for (int i = 0; i < N; i++)
        v[i] = (struct h_stream){.fd = h_connect_or_die(s.addrs[0]),
                                 .seed = 95000 + (uint64_t)i,
                                 .total = STREAM_EACH,
                                 .shut_wr = true,
                                 .expect_eof = true};
    /* The signal comes from a helper 200 ms in, while the streams run:
     * every one must still finish with every byte verified, and the server
     * exit 0 once they have. */
    pid_t killer = signal_later(s.pid, SIGTERM, 200);
    int64_t t0 = h_now_ms();
    CHECK_INT(h_streams_run(v, N, 60000, 0), ==, 0);
    CHECK(waitpid(killer, NULL, 0) == killer);
    uint64_t moved = 0;
    for (int i = 0; i < N; i++)
        moved += v[i].received;
    CHECK(strstr(h_server_log(&s), "draining") != NULL);
    for (int i = 0; i < N; i++)
        close(v[i].fd);
    int st = h_server_wait(&s, 20000);
    printf("%s: SIGTERM 200 ms into %d clients streaming %llu MiB each: all "
           "finished intact (%llu MiB echoed), exit %d after %lld ms\n",
           model, N, (unsigned long long)(STREAM_EACH / MiB),
           (unsigned long long)(moved / MiB), st, (long long)(h_now_ms() - t0));
    CHECK_INT(st, ==, 0);
}

/* A thousand clients that write and do not read: the server's memory must
 * stay within conns x (max-queue + 128 KiB) + a constant (README, "Memory
 * bound"); then they read, and get every byte back. At 256 KiB each, the
 * kernel's socket buffers hold most of it (measured: the event loops grow
 * by tens of KiB in all, the thread model by its stacks); slow_reader
 * fills a server queue with a single client writing 64 MiB. */
void case_slow_readers_1000(void)
{
    enum { N = 1000 };
    if (model_has(EK_CAP_ONE_AT_A_TIME))
        SKIP("%s model: one client at a time (slow_reader covers it)", model);
    if (model_has(EK_CAP_FORK_PER_CONN))
        SKIP("%s model: 1000 processes on a 2-core test box (slow_reader "
             "covers it)",
             model);
    raise_own_fd_limit(N + 200);
    struct h_server s;
    const char *extra[] = {"--max-queue", "16K", "--max-conns", "2000", NULL};
    start(&s, extra);
    long base_kb = ek_proc_mem_kb(s.pid, "Rss");
    static struct h_stream v[N];
    for (int i = 0; i < N; i++)
        v[i] = (struct h_stream){.fd = h_connect_or_die(s.addrs[0]),
                                 .seed = 120000 + (uint64_t)i,
                                 .total = STREAM_EACH / 64,
                                 .no_read = true};
    /* Write until nothing moves for a second: backpressure everywhere. */
    CHECK(h_streams_run(v, N, 120000, 1000) >= 0);
    long stalled_kb = ek_proc_mem_kb(s.pid, "Rss");
    uint64_t sent = streams_sent(v, N);
    long bound_kb = memory_bound_kb(N, 16);
    printf("%s: %d clients not reading: %llu MiB written, server RSS %ld -> "
           "%ld KiB (bound %ld KiB)\n",
           model, N, (unsigned long long)(sent / MiB), base_kb, stalled_kb,
           bound_kb);
    CHECK(stalled_kb - base_kb <= bound_kb);
    for (int i = 0; i < N; i++)
        v[i].no_read = false;
    CHECK_INT(h_streams_run(v, N, 120000, 0), ==, 0);
    for (int i = 0; i < N; i++)
        close(v[i].fd);
    stop_ok(&s);
}

/* Eight loops at a limit of 20 descriptors: the loops that cannot get
 * theirs (a wake pipe, an epoll fd or ring, listener copies) make the
 * server say so and exit 71 (EX_OSERR), the loops already started end,
 * and nothing crashes (under the sanitizers, nothing leaks). Never a
 * server quietly running fewer loops than asked. */
void case_threads_fd_limit(void)
{
    static const char *const models[] = {"epoll", "poll", "select", "uring"};
    const char *args[] = {"--listen", "127.0.0.1:0", "--threads", "8", NULL};
    int tried = 0;
    for (size_t i = 0; i < sizeof(models) / sizeof(models[0]); i++) {
        struct h_server s;
        int st = h_server_start(&s, models[i], args, 1, 20);
        if (st == 69) {
            printf("%s: not in this build, not tried\n", models[i]);
            continue;
        }
        if (st == 0)
            st = h_server_wait(&s, 20000);
        printf("%s --threads 8, ulimit -n 20: exit %d\n", models[i], st);
        CHECK_INT(st, ==, 71);
        /* The C library's words (musl: "No file descriptors available"). */
        char emfile[128];
        snprintf(emfile, sizeof(emfile), "cannot start: %s", strerror(EMFILE));
        CHECK_CONTAINS(h_server_log(&s), emfile);
        tried++;
    }
    CHECK_INT(tried, >=, 2);
}

/* --threads auto on a host with more CPUs than echokit runs loops (384,
 * reported by tests/sysconf_shim.c through LD_PRELOAD): 256 loops, said in
 * the log, and every connection served. Loops past the 256 slots of the
 * counters used to write past them: the 9th connection crashed the
 * server (exit 139). */
void case_threads_auto_many_cpus(void)
{
    enum { CONNS = 40 };
#ifdef EK_MUSL_STATIC
    SKIP("a static binary loads no library: LD_PRELOAD cannot fake its CPU "
         "count");
#endif
    setenv("LD_PRELOAD", EK_SYSCONF_SHIM, 1);
    setenv("EK_FAKE_CPUS", "384", 1);
    /* The shim comes before a sanitizer's runtime in the library list,
     * which AddressSanitizer refuses unless told it is fine. */
    setenv("ASAN_OPTIONS", "verify_asan_link_order=0", 1);
    struct h_server s;
    const char *args[] = {"--listen", "127.0.0.1:0", "--threads", "auto", NULL};
    int st = h_server_start(&s, "poll", args, 1, 0); /* in every build */
    unsetenv("LD_PRELOAD");
    unsetenv("EK_FAKE_CPUS");
    CHECK_INT(st, ==, 0);
    CHECK(log_shows(&s, "384 CPUs, running 256 loops", 5000));
    for (int i = 0; i < CONNS; i++) {
        int fd = h_connect_or_die(s.addrs[0]);
        h_echo_check(fd, 900 + (uint64_t)i, 1000, true);
    }
    printf("--threads auto with 384 CPUs: 256 loops, %d connections "
           "served\n",
           CONNS);
    stop_ok(&s);
}

/* SIGTERM from the moment the server says it listens to 22 ms later, while
 * its loops and threads may still be starting: it must drain and exit 0
 * each time. (This is when gcc 12's ThreadSanitizer runtime could lose the
 * signal, SECURITY.md; the window is too narrow for these 12 starts to
 * hit it reliably, so this guards the behaviour, not that workaround.)
 * 12 starts: the harness keeps at most 16 servers a case. */
void case_sigterm_at_start(void)
{
    enum { STARTS = 12 };
    int64_t slowest = 0;
    for (int i = 0; i < STARTS; i++) {
        struct h_server s;
        start(&s, NULL);
        h_sleep_ms(2 * i); /* 0 to 22 ms: across the loops' start-up */
        int64_t t0 = h_now_ms();
        stop_ok(&s);
        int64_t took = h_now_ms() - t0;
        slowest = took > slowest ? took : slowest;
    }
    printf("%s: SIGTERM as soon as listening, %d starts: exit 0 each time, "
           "within %lld ms\n",
           model, STARTS, (long long)slowest);
}

/* A client whose MSS is that of an Ethernet path (1460): loopback's 64
 * KiB MSS would give the server a send buffer of about 4 MiB for the
 * connection (Linux sizes it from the peer's MSS), which a few MiB per
 * client would not fill; with 1460 it is about 80 KiB, as across a real
 * network, and the server's sends stall soon. rcvbuf and sndbuf > 0 set
 * its buffers, before the connect so that the window it offers stays that
 * small: an echo to it is slow to leave the server.
 *
 * Two ways to stall TCP itself, not the server, both seen here under
 * load: a 4 KiB receive buffer lets the window Linux computes (the buffer
 * scaled by payload over truesize) fall below one segment, where it never
 * reopens by a whole segment however much the client reads; and megabytes
 * of autotuned buffers on 100 connections, times the cases running at
 * once, put the host's TCP in memory pressure (tcp_mem), which clamps
 * windows to 4 segments and drops. Either way the sender's zero-window
 * probes back off for minutes. So a 4 KiB buffer only for clients that
 * never read, and 64 KiB buffers for the flood. */
static int connect_ethernet_mss(const char *addr, int rcvbuf, int sndbuf)
{
    char host[64];
    unsigned port;
    CHECK(sscanf(addr, "%63[^:]:%u", host, &port) == 2);
    struct sockaddr_in to = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port)};
    CHECK(inet_pton(AF_INET, host, &to.sin_addr) == 1);
    int fd = h_client_socket(AF_INET);
    if (rcvbuf > 0)
        CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) ==
              0);
    if (sndbuf > 0)
        CHECK(setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) ==
              0);
    int mss = 1460;
    CHECK(setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof(mss)) == 0);
    CHECK(connect(fd, (struct sockaddr *)&to, sizeof(to)) == 0);
    CHECK(fcntl(fd, F_SETFL, O_NONBLOCK) == 0);
    return fd;
}

/* Writes 4 KiB on every attacker whose socket takes it; never reads. */
static void attack_round(const int *fds, int n, const char *chunk)
{
    for (int i = 0; i < n; i++) {
        ssize_t w = send(fds[i], chunk, 4096, MSG_NOSIGNAL);
        CHECK(w >= 0 || errno == EAGAIN || errno == EWOULDBLOCK);
    }
}

/* 120 clients with a 4 KiB receive buffer write 4 KiB every 5 ms for 4 s
 * and never read. An engine that parks its shared receive buffers on
 * echoes that cannot leave (io_uring sending straight from its provided
 * buffers did) stops receiving for everyone; the newcomers, one a second,
 * must each get their echo within 1 s all the same, and the server must
 * stay within its memory bound (README: conns x (max-queue + 128 KiB) +
 * a constant). */
void case_slow_readers_newcomers(void)
{
    enum { ATTACKERS = 120, NEWCOMERS = 3, ATTACK_MS = 4000, EVERY_MS = 5 };
    if (model_has(EK_CAP_ONE_AT_A_TIME))
        SKIP("%s model: one client at a time, so a client that never reads "
             "blocks everyone by design",
             model);
    struct h_server s;
    const char *extra[] = {"--max-queue", "64K", NULL};
    start(&s, extra);
    h_sleep_ms(200);
    long base_kb = ek_proc_mem_kb(s.pid, "Pss");

    /* Before the attack: a newcomer is echoed (the test itself works). */
    int probe = h_connect_or_die(s.addrs[0]);
    CHECK(quick_echo(probe, 3, 1000));
    close(probe);

    int fds[ATTACKERS];
    for (int i = 0; i < ATTACKERS; i++)
        fds[i] = connect_ethernet_mss(s.addrs[0], 4096, 0);
    static char chunk[4096];
    memset(chunk, 'a', sizeof(chunk));

    long peak_kb = base_kb;
    int served = 0;
    int64_t worst_ms = 0;
    int64_t t0 = h_now_ms();
    for (int round = 0; h_now_ms() - t0 < ATTACK_MS || served < NEWCOMERS;
         round++) {
        attack_round(fds, ATTACKERS, chunk);
        h_sleep_ms(EVERY_MS);
        /* A newcomer at 1, 2 and 3 s: 100 bytes, echo within 1 s (x
         * TIME_SLACK). While it waits the attackers pause, which can only
         * help the server. */
        int64_t at = h_now_ms() - t0;
        if (served < NEWCOMERS && at >= 1000 * (int64_t)(served + 1)) {
            int fd = h_connect_or_die(s.addrs[0]);
            int64_t w0 = h_now_ms();
            bool ok = quick_echo(fd, 100 + (uint64_t)served, 1000 * TIME_SLACK);
            int64_t waited = h_now_ms() - w0;
            close(fd);
            printf("%s: newcomer %d at %lld ms into the attack: %s after %lld "
                   "ms\n",
                   model, served + 1, (long long)at,
                   ok ? "echoed" : "NOT echoed", (long long)waited);
            CHECK(ok);
            if (waited > worst_ms)
                worst_ms = waited;
            served++;
        }
        if (round % 50 == 0) {
            long kb = ek_proc_mem_kb(s.pid, "Pss");
            if (kb > peak_kb)
                peak_kb = kb;
        }
    }
    long end_kb = ek_proc_mem_kb(s.pid, "Pss");
    if (end_kb > peak_kb)
        peak_kb = end_kb;
    CHECK_INT(served, ==, NEWCOMERS);

    long bound_kb = memory_bound_kb(ATTACKERS + 1, 64); /* + the probe */
    printf("%s: %d clients with 4 KiB receive buffers writing, never "
           "reading: newcomers served in at most %lld ms; server PSS %ld -> "
           "peak %ld KiB (+%ld, bound %ld KiB)\n",
           model, ATTACKERS, (long long)worst_ms, base_kb, peak_kb,
           peak_kb - base_kb, bound_kb);
    check_growth(peak_kb - base_kb, bound_kb);
    for (int i = 0; i < ATTACKERS; i++)
        close(fds[i]);
    /* Once they are gone the server is as before. */
    probe = h_connect_or_die(s.addrs[0]);
    CHECK(quick_echo(probe, 4, 5000));
    close(probe);
    stop_ok(&s);
}

/* 100 clients (Ethernet MSS, 64 KiB buffers) write 64 KiB at a time as fast
 * as their sockets take it, for 4 s, and never read, with --max-queue 64K:
 * the server must stop reading each at its queue's limit, so it grows by
 * at most conns x (max-queue + 128 KiB) plus a constant, and every byte
 * comes back once they read. (A guard on every model: it does not make
 * uring's former uncapped multishot receives overshoot, which the review
 * of issue 11 showed with a client that writes for 6 s without pause:
 * +138 MiB against this bound's 27 MiB.) */
void case_flood_bound(void)
{
    enum { N = 100 };
    if (model_has(EK_CAP_ONE_AT_A_TIME))
        SKIP("%s model: one client at a time (slow_reader covers it)", model);
    struct h_server s;
    const char *extra[] = {"--max-queue", "64K", NULL};
    start(&s, extra);
    h_sleep_ms(200);
    long base_kb = ek_proc_mem_kb(s.pid, "Pss");
    static struct h_stream v[N];
    for (int i = 0; i < N; i++)
        v[i] = (struct h_stream){
            .fd = connect_ethernet_mss(s.addrs[0], 65536, 65536),
            .seed = 130000 + (uint64_t)i,
            .total = STREAM_EACH / 2,
            .no_read = true};
    /* Keep writing for 4 s, whatever the server takes: backpressure
     * everywhere, and the server offered more the moment it reads. */
    int64_t until = h_now_ms() + 4000;
    while (h_now_ms() < until)
        CHECK(h_streams_run(v, N, 120000, 200) >= 0);
    long stalled_kb = ek_proc_mem_kb(s.pid, "Pss");
    uint64_t sent = streams_sent(v, N);
    long bound_kb = memory_bound_kb(N, 64);
    printf("%s: %d clients flooding, not reading: %llu MiB "
           "written, server "
           "PSS %ld -> %ld KiB (+%ld, bound %ld KiB)\n",
           model, N, (unsigned long long)(sent / MiB), base_kb, stalled_kb,
           stalled_kb - base_kb, bound_kb);
    check_growth(stalled_kb - base_kb, bound_kb);
    for (int i = 0; i < N; i++) {
        v[i].no_read = false;
        v[i].shut_wr = true;
        v[i].expect_eof = true;
    }
    CHECK_INT(h_streams_run(v, N, 120000, 0), ==, 0);
    for (int i = 0; i < N; i++)
        close(v[i].fd);
    stop_ok(&s);
}

/* One second into the run below, stops the server for 200 ms while
 * `idle` clients connect (an IPv4 addr), so that they are accepted in one
 * turn, then keeps them open and silent until killed. */
static pid_t idle_burst_later(pid_t server, const char *addr, int idle)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid > 0)
        return pid;
    struct sockaddr_in from, to;
    ipv4_endpoints("127.0.0.1", 0, addr, &from, &to);
    h_sleep_ms(1000);
    kill(server, SIGSTOP);
    int64_t stopped = h_now_ms();
    /* Non-blocking connects, not waited for (the kernel completes them in
     * the backlog): the server stays stopped 200 ms, not as long as a
     * loaded machine takes to wait for 1000 connects one by one, which
     * the busy connections' 2 s would not survive. */
    for (int i = 0; i < idle; i++) {
        /* Not h_client_socket: its exit() would run the harness's clean-up
         * in this child. */
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int one = 1;
        if (fd < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            fcntl(fd, F_SETFL, O_NONBLOCK) < 0 ||
            (connect(fd, (struct sockaddr *)&to, sizeof(to)) < 0 &&
             errno != EINPROGRESS))
            _exit(1);
    }
    int64_t left = stopped + 200 - h_now_ms();
    if (left > 0)
        h_sleep_ms((int)left);
    kill(server, SIGCONT);
    for (;;)
        pause();
}

/* 300 connections each echo 30000-byte messages, four in flight, for 3 s
 * with --max-queue 4K, so that every connection keeps wanting to read:
 * each must get every echo back, none waiting 2 s. A uring loop whose busy
 * connections took every receive buffer the moment it came back, ahead
 * of the ones that had waited for one, left 70 to 200 of the 300 without
 * an echo for the whole run. On the event loops, 1000 idle clients also
 * arrive in one burst a second in (accepted in one turn): a uring loop
 * that armed their receives, which find no data and never complete, and
 * then waited for a completion left the busy connections behind them in
 * line, with data waiting, for seconds (found by review). */
void case_fair_buffers(void)
{
    enum { IDLE = 1000 };
    if (!model_has(EK_CAP_CONCURRENT))
        SKIP("%s model: one client at a time", model);
    bool burst = model_has(EK_CAP_EVENT_LOOP);
    if (burst)
        raise_own_fd_limit(IDLE + 400);
    struct h_server s;
    const char *extra[] = {"--max-queue", "4K", NULL};
    start(&s, extra);
    pid_t idle = burst ? idle_burst_later(s.pid, s.addrs[0], IDLE) : -1;
    /* 5 s: the burst comes at 1 s, and a wait is a timeout only once it
     * has lasted 2 s before the run ends. Under the sanitizers (tenfold
     * slower; ThreadSanitizer and 300 threads on two cores could not echo
     * 30000 B to each within 2 s) 100 connections, still more than the
     * uring loop's 64 buffers. */
#ifdef EK_TEST_SANITIZED
    const char *conns_arg = "100";
#else
    const char *conns_arg = "300";
#endif
    const char *bench[] = {"bench",  "-m",       "rr", "-c",        conns_arg,
                           "-s",     "30000",    "-d", "4",         "-t",
                           "5",      "-w",       "0",  "--timeout", "2",
                           "--json", s.addrs[0], NULL};
    struct h_run r;
    int status = h_run_echokit(bench, -1, 60000, &r);
    int idle_status = 0;
    if (idle > 0) {
        kill(idle, SIGKILL); /* a child that failed has exited already */
        CHECK(waitpid(idle, &idle_status, 0) == idle);
    }
    double conns, timeouts, errors, msgs, max_us;
    CHECK(h_json_number(r.out, "conns_made", &conns) &&
          conns == atof(conns_arg));
    CHECK(h_json_number(r.out, "timeouts", &timeouts));
    CHECK(h_json_number(r.out, "errors", &errors));
    CHECK(h_json_number(r.out, "msgs", &msgs));
    const char *lat = strstr(r.out, "\"latency_us\"");
    CHECK(lat != NULL && h_json_number(lat, "max", &max_us));
    printf("%s: %s connections x 30000 B, --max-queue 4K%s: %.0f echoes, "
           "%.0f errors (%.0f waited 2 s), slowest %.0f ms\n",
           model, conns_arg, burst ? ", 1000 idle arriving at once" : "", msgs,
           errors, timeouts, max_us / 1000);
    CHECK(!burst || !WIFEXITED(idle_status)); /* killed, not failed */
    CHECK(timeouts == 0);
    CHECK(errors == 0);
    CHECK_INT(status, ==, 0);
    stop_ok(&s);
}

/* 20 clients that trickle 1000 bytes at a time and never read: once their
 * echoes fill the socket buffers, what the server has read and not sent
 * (its received minus sent bytes) is what it holds, and must be at most
 * --max-queue per connection, exactly. With 4K (less room than a uring
 * receive buffer: one-shot receives) and 128K + 1 (multishot receives with
 * a total cap). A uring multishot receive whose cap the kernel checks only
 * between completions read up to a whole buffer past the room. */
static void trickle_until_held(const char *max_queue_arg, long long max_queue)
{
    enum { N = 20 };
    struct h_server s;
    char maddr[256], body[8192];
    const char *extra[] = {"--max-queue", max_queue_arg, "--metrics",
                           "127.0.0.1:0", NULL};
    start(&s, extra);
    metrics_addr(&s, maddr, sizeof(maddr));
    int fds[N];
    for (int i = 0; i < N; i++)
        fds[i] = connect_ethernet_mss(s.addrs[0], 4096, 0);
    static char chunk[1000];
    memset(chunk, 'q', sizeof(chunk));
    /* Trickle until no client's socket takes more for 500 ms. */
    int64_t last_taken = h_now_ms(), until = last_taken + 30000;
    while (h_now_ms() - last_taken < 500 && h_now_ms() < until) {
        for (int i = 0; i < N; i++) {
            ssize_t w = send(fds[i], chunk, sizeof(chunk), MSG_NOSIGNAL);
            CHECK(w >= 0 || errno == EAGAIN || errno == EWOULDBLOCK);
            if (w > 0)
                last_taken = h_now_ms();
        }
        h_sleep_ms(1);
    }
    CHECK(h_now_ms() < until); /* the server stopped reading */
    CHECK_INT(http_get(maddr, "/metrics", body, sizeof(body)), ==, 200);
    long long in = metric(body, "echokit_received_bytes_total");
    long long out = metric(body, "echokit_sent_bytes_total");
    CHECK(in > 0 && out >= 0 && in >= out);
    printf("%s: %d clients trickling, never reading, --max-queue %s: "
           "%lld bytes read, %lld sent, %lld held (bound %lld)\n",
           model, N, max_queue_arg, in, out, in - out, N * max_queue);
    CHECK(in - out <= N * max_queue);
    CHECK(in - out > 0);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    stop_ok(&s);
}

void case_queue_exact(void)
{
    if (!model_has(EK_CAP_EVENT_LOOP))
        SKIP("%s model: a blocking model holds one read buffer per "
             "connection, not a queue (slow_reader covers it)",
             model);
    trickle_until_held("4K", 4096);
    trickle_until_held("131073", 131073);
}
