/*
 * itest_proxy: behind a load balancer: --proxy-protocol on every model
 * (v1 and v2 headers whole and a byte at a time, bad, denied and silent
 * clients, the header against --idle-timeout), and HAProxy with
 * contrib/haproxy.cfg in front of two servers, one killed mid-run.
 */
#include "check.h"
#include "itest.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- --proxy-protocol ------------------------------------------------ */

static void send_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    int64_t deadline = h_now_ms() + 10000;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd pf = {.fd = fd, .events = POLLOUT};
            CHECK(poll(&pf, 1, (int)(deadline - h_now_ms())) == 1);
            continue;
        }
        CHECK(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

/* Receives exactly n bytes within timeout_ms; false on EOF, error or
 * timeout. */
static bool recv_exact(int fd, void *buf, size_t n, int timeout_ms)
{
    char *p = buf;
    int64_t deadline = h_now_ms() + timeout_ms;
    while (n > 0) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int left = (int)(deadline - h_now_ms());
        if (left <= 0 || poll(&pf, 1, left) != 1)
            return false;
        ssize_t r = recv(fd, p, n, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r <= 0)
            return false;
        p += r;
        n -= (size_t)r;
    }
    return true;
}

/* Sends header (in pieces of `step` bytes, pausing between them; 0: with
 * the data in one write) and 100 bytes of pattern `seed`; checks that
 * exactly those 100 bytes come back (never the header), then a longer
 * stream on the same connection. */
static void proxied_echo(const char *addr, const void *header, size_t hlen,
                         size_t step, uint64_t seed)
{
    unsigned char buf[600], back[100];
    int fd = h_connect_or_die(addr);
    CHECK(hlen + 100 <= sizeof(buf));
    memcpy(buf, header, hlen);
    h_pattern(seed, 0, buf + hlen, 100);
    if (step == 0) {
        send_all(fd, buf, hlen + 100);
    } else {
        for (size_t off = 0; off < hlen; off += step) {
            send_all(fd, buf + off, off + step <= hlen ? step : hlen - off);
            h_sleep_ms(5);
        }
        send_all(fd, buf + hlen, 100);
    }
    CHECK(recv_exact(fd, back, sizeof(back), 10000));
    CHECK(memcmp(back, buf + hlen, sizeof(back)) == 0);
    h_echo_check(fd, seed + 1, 256 * KiB, true);
}

/* Sends bytes as a header and checks that the server closes without
 * echoing anything. */
static void proxied_refused(const char *addr, const void *bytes, size_t n)
{
    int fd = h_connect_or_die(addr);
    send_all(fd, bytes, n);
    char c;
    int64_t deadline = h_now_ms() + 10000;
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        CHECK(poll(&pf, 1, (int)(deadline - h_now_ms())) == 1);
        ssize_t r = recv(fd, &c, 1, 0);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        CHECK(r <= 0); /* closed (EOF or reset), and not one byte back */
        break;
    }
    close(fd);
}

void case_proxy_protocol(void)
{
    struct h_server s;
    char maddr[256];
    const char *extra[] = {"--proxy-protocol",
                           "--deny",
                           "198.51.100.0/24",
                           "--metrics",
                           "127.0.0.1:0",
                           "-v",
                           NULL};
    start(&s, extra);
    metrics_addr(&s, maddr, sizeof(maddr));
    const char *addr = s.addrs[0];

    static const char v1[] = "PROXY TCP4 192.0.2.1 127.0.0.1 40000 7\r\n";
    proxied_echo(addr, v1, sizeof(v1) - 1, 0, 501);
    proxied_echo(addr, v1, sizeof(v1) - 1, 7, 503);
    static const char v1_6[] = "PROXY TCP6 2001:db8::7 ::1 40001 7\r\n";
    proxied_echo(addr, v1_6, sizeof(v1_6) - 1, 0, 505);
    unsigned char v2[28] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a,
                            0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11,
                            0x00, 0x0c, 203,  0,    113,  9,    127,
                            0,    0,    1,    0x9c, 0x41, 0x00, 0x07};
    proxied_echo(addr, v2, sizeof(v2), 0, 507);
    proxied_echo(addr, v2, sizeof(v2), 1, 509);
    unsigned char local[16];
    memcpy(local, v2, 16);
    local[12] = 0x20; /* LOCAL: a health check, no address */
    local[13] = 0x00;
    local[15] = 0x00;
    proxied_echo(addr, local, sizeof(local), 0, 511);
    CHECK(log_shows(&s, "connection from 192.0.2.1:40000 via PROXY v1", 5000));
    CHECK(
        log_shows(&s, "connection from 203.0.113.9:40001 via PROXY v2", 5000));

    /* Refused, with nothing echoed: not a header, a malformed one, and a
     * client --deny names (the proxy itself is 127.0.0.1). */
    static const char http[] = "GET / HTTP/1.0\r\n\r\n";
    proxied_refused(addr, http, sizeof(http) - 1);
    static const char bad[] = "PROXY TCP4 192.0.2.1 127.0.0.1 99999 7\r\nhi";
    proxied_refused(addr, bad, sizeof(bad) - 1);
    static const char denied[] =
        "PROXY TCP4 198.51.100.7 127.0.0.1 40000 7\r\nhello";
    proxied_refused(addr, denied, sizeof(denied) - 1);
    CHECK(log_shows(&s,
                    "refused a connection from 198.51.100.7:40000 via "
                    "PROXY",
                    5000));

    /* A client that ends halfway through its header, with a FIN or with a
     * reset: refused as "proxy" like a bad header, by every engine (the
     * event loops once counted the reset as a connection error, and uring
     * counted neither). */
    static const char half[] = "PROXY TCP4 192.0.2.1 ";
    for (int reset = 0; reset < 2; reset++) {
        int fd = h_connect_or_die(addr);
        send_all(fd, half, sizeof(half) - 1);
        h_sleep_ms(100); /* read by the server before the end */
        if (reset)
            set_linger_zero(fd);
        close(fd);
    }

    /* A client that never sends its header is cut after 5 s. */
    int64_t t0 = h_now_ms();
    int silent = h_connect_or_die(addr);
    CHECK(closed_by_peer(silent, 15000));
    int64_t took = h_now_ms() - t0;
    close(silent);
    CHECK_INT(took, >=, 4500);
    CHECK_INT(
        metric_becomes(
            maddr, "echokit_connections_refused_total{reason=\"proxy\"}", 5),
        ==, 5);
    CHECK_INT(
        metric_becomes(maddr,
                       "echokit_connections_refused_total{reason=\"acl\"}", 1),
        ==, 1);
    printf("%s: proxy protocol: v1 (TCP4, TCP6), v2 (TCP4, LOCAL) whole and "
           "byte by byte, header never echoed; 2 bad headers, 2 cut short "
           "and 1 denied client closed with nothing echoed; silent client "
           "cut after %lld ms\n",
           model, (long long)took);
    stop_ok(&s);
}

/* --proxy-protocol with --idle-timeout 0.5: a header that takes 2.5 s, a
 * few bytes every 250 ms, is within its 5 s and must not count as idle
 * (the event loops keep the accept's stamp while the header is read;
 * epoll once closed this connection as idle after 0.5 s, uring did not). */
void case_proxy_idle(void)
{
    struct h_server s;
    const char *extra[] = {"--proxy-protocol", "--idle-timeout", "0.5", NULL};
    start(&s, extra);
    static const char v1[] = "PROXY TCP4 192.0.2.1 127.0.0.1 40000 7\r\n";
    int fd = h_connect_or_die(s.addrs[0]);
    int64_t t0 = h_now_ms();
    for (size_t off = 0; off < sizeof(v1) - 1; off += 4) {
        size_t n = sizeof(v1) - 1 - off < 4 ? sizeof(v1) - 1 - off : 4;
        send_all(fd, v1 + off, n);
        h_sleep_ms(250);
    }
    unsigned char data[100], back[100];
    h_pattern(601, 0, data, sizeof(data));
    send_all(fd, data, sizeof(data));
    CHECK(recv_exact(fd, back, sizeof(back), 10000));
    CHECK(memcmp(back, data, sizeof(back)) == 0);
    int64_t took = h_now_ms() - t0;
    /* Past the header, the idle timeout holds again. */
    CHECK(closed_by_peer(fd, 5000));
    printf("%s: PROXY header over %lld ms with --idle-timeout 0.5: echoed, "
           "then closed once idle\n",
           model, (long long)took);
    close(fd);
    stop_ok(&s);
}

/* ---- HAProxy in front of two servers: failover ----------------------- */

#define HAPROXY "/usr/sbin/haproxy"

static pid_t haproxy_pid = -1;

static void haproxy_end(void)
{
    if (haproxy_pid > 0) {
        kill(haproxy_pid, SIGKILL);
        waitpid(haproxy_pid, NULL, 0);
        haproxy_pid = -1;
    }
}

/* Writes contrib/haproxy.cfg to path with the test's ports in place of
 * the frontend's :7 and the servers' 7001 and 7002. */
static void haproxy_config(const char *path, const char *front, const char *a,
                           const char *b)
{
    char text[8192];
    read_source_file("contrib/haproxy.cfg", text, sizeof(text));
    const char *swap[][2] = {
        {"bind :7\n", front}, {"127.0.0.1:7001", a}, {"127.0.0.1:7002", b}};
    FILE *out = fopen(path, "w");
    CHECK(out != NULL);
    for (const char *p = text; *p;) {
        const char *hit = NULL;
        size_t which = 0;
        for (size_t i = 0; i < 3; i++) {
            const char *h = strstr(p, swap[i][0]);
            if (h != NULL && (hit == NULL || h < hit)) {
                hit = h;
                which = i;
            }
        }
        if (hit == NULL) {
            fputs(p, out);
            break;
        }
        fwrite(p, 1, (size_t)(hit - p), out);
        if (which == 0)
            fprintf(out, "bind %s\n", front);
        else
            fputs(swap[which][1], out);
        p = hit + strlen(swap[which][0]);
    }
    CHECK(fclose(out) == 0);
}

/* One round: n sessions through addr at once, each 1 MiB of its own
 * pattern, half-closed, echo checked byte by byte. Adds to the counts. */
struct failover_counts {
    unsigned sessions, echoed, broken, corrupted, unreachable;
};

static unsigned failover_round(const char *addr, unsigned n, uint64_t seed,
                               struct failover_counts *k)
{
    struct h_stream v[16];
    unsigned opened = 0, ok = 0;
    CHECK(n <= 16);
    for (unsigned i = 0; i < n; i++) {
        int fd = h_connect(addr);
        k->sessions++;
        if (fd < 0) {
            k->unreachable++;
            continue;
        }
        v[opened++] = (struct h_stream){.fd = fd,
                                        .seed = seed + i,
                                        .total = MiB,
                                        .shut_wr = true,
                                        .expect_eof = true,
                                        .quiet = true};
    }
    h_streams_run(v, opened, 20000, 0);
    for (unsigned i = 0; i < opened; i++) {
        if (v[i].error == EPROTO) {
            k->corrupted++; /* a wrong byte: the one thing never allowed */
            fprintf(stderr, "session %llu: corrupted\n",
                    (unsigned long long)v[i].seed);
        } else if (v[i].error != 0 || v[i].received != v[i].total) {
            k->broken++; /* cut by the kill: the client reconnects */
        } else {
            k->echoed++;
            ok++;
        }
        close(v[i].fd);
    }
    return ok;
}

void case_haproxy_failover(void)
{
    if (access(HAPROXY, X_OK) != 0)
        SKIP("%s (Debian package haproxy) is not installed", HAPROXY);
    struct h_server a, b;
    char maddr[256], front[64], cfg[256], log_path[256];
    const char *args[] = {"--listen",  "127.0.0.1:0", "--proxy-protocol",
                          "--metrics", "127.0.0.1:0", NULL};
    CHECK_INT(h_server_start(&a, NULL, args, 1, 0), ==, 0);
    CHECK_INT(h_server_start(&b, NULL, args, 1, 0), ==, 0);
    metrics_addr(&b, maddr, sizeof(maddr));
    snprintf(front, sizeof(front), "127.0.0.1:%u", free_fixed_port());
    snprintf(cfg, sizeof(cfg), "%s/haproxy.cfg", h_tmpdir());
    snprintf(log_path, sizeof(log_path), "%s/haproxy.log", h_tmpdir());
    haproxy_config(cfg, front, a.addrs[0], b.addrs[0]);

    atexit(haproxy_end);
    haproxy_pid = fork();
    CHECK(haproxy_pid >= 0);
    if (haproxy_pid == 0) {
        int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (log < 0 || dup2(log, 1) < 0 || dup2(log, 2) < 0)
            _exit(126);
        execl(HAPROXY, HAPROXY, "-db", "-f", cfg, (char *)NULL);
        _exit(127);
    }
    /* Ready once the frontend answers and both servers passed a check. */
    int64_t deadline = h_now_ms() + 15000;
    struct failover_counts k = {0};
    while (failover_round(front, 4, 1000, &k) < 4) {
        CHECK(h_now_ms() < deadline);
        h_sleep_ms(100);
    }
    memset(&k, 0, sizeof(k));

    /* Traffic, and server a killed in the middle of it: by a helper
     * process, so that the kill lands while sessions are in flight. */
    int64_t t0 = h_now_ms(), killed_at = 0, recovered_at = 0;
    unsigned clean_after = 0, round = 0;
    pid_t killer = signal_later(a.pid, SIGKILL, 1000);
    while (clean_after < 5) {
        CHECK(h_now_ms() - t0 < 30000);
        if (killed_at == 0 && h_server_wait(&a, 0) != -1)
            killed_at = h_now_ms();
        unsigned before = k.broken + k.unreachable;
        unsigned ok = failover_round(front, 16, 10000 + 100ull * round++, &k);
        if (killed_at != 0 && ok == 16 && k.broken + k.unreachable == before) {
            if (clean_after++ == 0)
                recovered_at = h_now_ms();
        } else if (killed_at != 0) {
            clean_after = 0;
        }
    }
    long long b_bytes = -1;
    char body[8192];
    CHECK_INT(http_get(maddr, "/metrics", body, sizeof(body)), ==, 200);
    b_bytes = metric(body, "echokit_received_bytes_total");
    CHECK(waitpid(killer, NULL, 0) == killer);
    printf("haproxy failover: %u sessions of 1 MiB through HAProxy, %u "
           "echoed and verified, %u cut by the kill, %u unreachable, %u "
           "corrupted; server a gone %lld ms in, every session clean "
           "again %lld ms after; server b received %lld bytes\n",
           k.sessions, k.echoed, k.broken, k.unreachable, k.corrupted,
           (long long)(killed_at - t0), (long long)(recovered_at - killed_at),
           b_bytes);
    CHECK_INT(k.corrupted, ==, 0);
    CHECK_INT(k.broken, <=, 16); /* only what was in flight to a */
    CHECK_INT(k.echoed, >=, 5 * 16);
    CHECK(b_bytes > 0);
    haproxy_end();
    CHECK_INT(h_server_wait(&a, 5000), ==, 128 + SIGKILL);
    stop_ok(&b);
}

/* A PROXY v2 header's unix source path is 108 bytes of the client's
 * choosing, and the server logs it (-v). A newline and a fake timestamp
 * in it forged a log line; an escape sequence reached the terminal; with
 * --log-json bytes from 0x7f up went out raw (invalid UTF-8). Now every
 * byte outside printable ASCII is escaped, in both formats. */
void case_log_injection(void)
{
    static const char forged[] =
        "x\n2026-01-01T00:00:00.000Z error: FORGED LINE\x1b[31m\xc3\xff\x7f";
    unsigned char hdr[16 + 216] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
                                   0x21, 0x31, 0x00, 216}; /* unix stream */
    memcpy(hdr + 16, forged, sizeof(forged));              /* the source path */
    memcpy(hdr + 16 + 108, "/dst", 4);
    for (int json = 0; json <= 1; json++) {
        struct h_server s;
        const char *args[] = {
            "-v",           "--proxy-protocol",     "--listen", "127.0.0.1:0",
            "--log-format", json ? "json" : "text", NULL};
        CHECK_INT(h_server_start(&s, NULL, args, 1, 0), ==, 0);
        proxied_echo(s.addrs[0], hdr, sizeof(hdr), 0, 701);
        CHECK(log_shows(&s, "connection closed", 5000));
        const char *log = h_server_log(&s);
        CHECK(strstr(log, "\n2026-01-01T00:00:00.000Z") == NULL);
        for (const unsigned char *p = (const unsigned char *)log; *p; p++)
            CHECK(*p == '\n' || (*p >= 0x20 && *p < 0x7f));
        CHECK_CONTAINS(log, json ? "FORGED LINE\\u001b[31m\\u00c3\\u00ff"
                                 : "FORGED LINE\\x1b[31m\\xc3\\xff\\x7f");
        if (json) {
            char line[4096];
            for (const char *l = log; *l;) {
                size_t n = strcspn(l, "\n");
                CHECK(n < sizeof(line));
                memcpy(line, l, n);
                line[n] = '\0';
                CHECK(h_json_valid(line));
                l += n + (l[n] == '\n');
            }
        }
        stop_ok(&s);
    }
    printf("log injection: a PROXY v2 unix path with a newline, a forged "
           "line and escape sequences is logged escaped, as text and as "
           "JSON (valid, ASCII)\n");
}

/* Whether a client from src that sends header then 100 bytes gets exactly
 * those 100 bytes back (true) or is closed with nothing echoed (false). */
static bool proxied_from(const char *src, const char *addr, const void *header,
                         size_t hlen)
{
    unsigned char buf[400], back[100];
    CHECK(hlen + 100 <= sizeof(buf));
    int fd = connect_from(src, addr);
    memcpy(buf, header, hlen);
    h_pattern(77, 0, buf + hlen, 100);
    send_all(fd, buf, hlen + 100);
    bool ok = recv_exact(fd, back, sizeof(back), 3000) &&
              memcmp(back, buf + hlen, sizeof(back)) == 0;
    close(fd);
    return ok;
}

/* Whether a client running as uid (-1: as we are) that connects to the
 * unix socket addr and sends header then 100 bytes gets them back. */
static bool proxied_as(int uid, const char *addr, const void *header,
                       size_t hlen)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (uid >= 0 && (setgid((gid_t)uid) != 0 || setuid((uid_t)uid) != 0))
            _exit(2);
        unsigned char buf[400], back[100];
        int fd = h_connect(addr);
        if (fd < 0 || hlen + 100 > sizeof(buf))
            _exit(3);
        memcpy(buf, header, hlen);
        h_pattern(78, 0, buf + hlen, 100);
        send_all(fd, buf, hlen + 100);
        bool ok = recv_exact(fd, back, sizeof(back), 3000) &&
                  memcmp(back, buf + hlen, sizeof(back)) == 0;
        _exit(ok ? 0 : 1);
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) <= 1);
    return WEXITSTATUS(st) == 0;
}

/* --proxy-protocol trusts the header only from --proxy-from (by default
 * this host). In a network namespace of its own with 10.9.9.1 on its
 * loopback, as a host elsewhere: a client there that claims an allowed
 * address was served (--allow 10.0.0.0/8 and "PROXY TCP4 10.1.2.3"); now
 * it is refused at once and counted (proxy_untrusted). A v2 header with a
 * unix source named no address the rules could judge and passed them; now
 * the rules judge the proxy. */
void case_proxy_trust(void)
{
    own_network("10.9.9.1");
    static const char v1[] = "PROXY TCP4 10.1.2.3 127.0.0.1 40000 7\r\n";
    unsigned char v2_unix[16 + 216] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                       0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
                                       0x21, 0x31, 0x00, 216};
    memcpy(v2_unix + 16, "/run/client.sock", 16);
    struct h_server s;
    char maddr[256];
    const char *dflt[] = {"--proxy-protocol", "--allow",     "10.0.0.0/8",
                          "--listen",         "127.0.0.1:0", "--metrics",
                          "127.0.0.1:0",      NULL};
    CHECK_INT(h_server_start(&s, NULL, dflt, 1, 0), ==, 0);
    metrics_addr(&s, maddr, sizeof(maddr));
    bool remote = proxied_from("10.9.9.1", s.addrs[0], v1, strlen(v1));
    bool local = proxied_from("127.0.0.1", s.addrs[0], v1, strlen(v1));
    bool unix_src =
        proxied_from("127.0.0.1", s.addrs[0], v2_unix, sizeof(v2_unix));
    printf("proxy trust, default: a header from 10.9.9.1 %s, from "
           "127.0.0.1 %s; a unix source via 127.0.0.1 under --allow "
           "10.0.0.0/8 %s\n",
           remote ? "served" : "refused", local ? "served" : "refused",
           unix_src ? "served" : "refused");
    CHECK(!remote);
    CHECK(local);
    CHECK(!unix_src);
    CHECK_INT(metric_becomes(maddr,
                             "echokit_connections_refused_total{reason="
                             "\"proxy_untrusted\"}",
                             1),
              ==, 1);
    CHECK(log_shows(&s, "not a trusted proxy (--proxy-from)", 5000));
    stop_ok(&s);

    /* --proxy-from names the proxies, instead of this host. */
    const char *from[] = {"--proxy-protocol", "--proxy-from", "10.9.9.1",
                          "--listen",         "127.0.0.1:0",  NULL};
    CHECK_INT(h_server_start(&s, NULL, from, 1, 0), ==, 0);
    CHECK(proxied_from("10.9.9.1", s.addrs[0], v1, strlen(v1)));
    CHECK(!proxied_from("127.0.0.1", s.addrs[0], v1, strlen(v1)));
    stop_ok(&s);

    /* An abstract unix socket has no file whose permissions choose who
     * connects: only a peer running as the server's user (or root) may
     * send the header. Another user (nobody) was trusted as a socket
     * file's peer is (found by review). */
    char abstract[64];
    snprintf(abstract, sizeof(abstract), "unix:@echokit-trust-%d",
             (int)getpid());
    const char *on_abstract[] = {"--proxy-protocol", "--allow", "10.0.0.0/8",
                                 "--listen",         abstract,  NULL};
    CHECK_INT(h_server_start(&s, NULL, on_abstract, 1, 0), ==, 0);
    CHECK(proxied_as(-1, abstract, v1, strlen(v1)));     /* us: root */
    CHECK(!proxied_as(65534, abstract, v1, strlen(v1))); /* nobody */
    stop_ok(&s);

    /* --proxy-from without --proxy-protocol is a usage error. */
    struct h_run r;
    const char *alone[] = {"serve", "--proxy-from", "10.0.0.0/8", NULL};
    CHECK_INT(h_run_echokit(alone, -1, 10000, &r), ==, 64);
}
