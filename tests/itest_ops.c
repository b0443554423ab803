/*
 * itest_ops: operating the server: counters (SIGUSR1, /metrics), the idle
 * timeout, access control, JSON logs, pid file, --user, inetd mode and
 * systemd socket activation with readiness notification.
 */
#include "check.h"
#include "itest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- helpers --------------------------------------------------------- */

/* The "HOST:PORT" of the server's "metrics on http://HOST:PORT/metrics"
 * line. */
static void metrics_addr(struct h_server *s, char *out, size_t size)
{
    CHECK(h_server_read_line(s, "metrics on http://", out, size, 10000));
    out[strcspn(out, "/")] = '\0';
}

/* GET path from addr over HTTP/1.0: the status code, body into body. */
static int http_get(const char *addr, const char *path, char *body, size_t size)
{
    char req[256], resp[16384];
    size_t len = 0;
    int fd = h_connect_or_die(addr);
    int n =
        snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: x\r\n\r\n", path);
    CHECK(send(fd, req, (size_t)n, MSG_NOSIGNAL) == n);
    int64_t deadline = h_now_ms() + 10000;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        CHECK(poll(&p, 1, (int)(deadline - h_now_ms())) == 1);
        ssize_t r = recv(fd, resp + len, sizeof(resp) - 1 - len, 0);
        if (r < 0 && errno == EAGAIN)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        CHECK(len < sizeof(resp) - 1);
    }
    close(fd);
    resp[len] = '\0';
    int status = 0;
    CHECK(sscanf(resp, "HTTP/1.0 %d", &status) == 1);
    const char *end = strstr(resp, "\r\n\r\n"); /* of the headers */
    CHECK(end != NULL);
    snprintf(body, size, "%s", end + 4);
    return status;
}

/* The value of the sample `name` (with its labels, if any) in Prometheus
 * text; -1 when absent. */
static long long metric(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *line = text; line && *line;
         line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, name, n) == 0 && line[n] == ' ')
            return atoll(line + n + 1);
    }
    return -1;
}

/* Scrapes until `name` reads `want` (counters are updated just after the
 * bytes move, so the client may see the echo a moment before the count). */
static long long metric_becomes(const char *addr, const char *name,
                                long long want)
{
    char body[8192];
    long long v = -1;
    for (int i = 0; i < 100 && v != want; i++) {
        if (i > 0)
            h_sleep_ms(20);
        CHECK_INT(http_get(addr, "/metrics", body, sizeof(body)), ==, 200);
        v = metric(body, name);
    }
    if (v != want)
        fprintf(stderr, "%s is %lld, expected %lld; last scrape:\n%s\n", name,
                v, want, body);
    return v;
}

/* Waits up to timeout_ms for the server's log to contain text. */
static bool log_shows(struct h_server *s, const char *text, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    while (strstr(h_server_log(s), text) == NULL) {
        if (h_now_ms() >= deadline)
            return false;
        h_sleep_ms(20);
    }
    return true;
}

/* ---- counters: SIGUSR1 and /metrics ------------------------------------ */

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

/* ---- --idle-timeout ---------------------------------------------------- */

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

/* ---- --allow / --deny --------------------------------------------------- */

/* from: src:src_port; to: addr, an IPv4 HOST:PORT. */
static void ipv4_endpoints(const char *src, unsigned src_port, const char *addr,
                           struct sockaddr_in *from, struct sockaddr_in *to)
{
    char host[64];
    unsigned port;
    CHECK(sscanf(addr, "%63[^:]:%u", host, &port) == 2);
    *from = (struct sockaddr_in){.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)src_port)};
    *to = (struct sockaddr_in){.sin_family = AF_INET,
                               .sin_port = htons((uint16_t)port)};
    CHECK(inet_pton(AF_INET, src, &from->sin_addr) == 1);
    CHECK(inet_pton(AF_INET, host, &to->sin_addr) == 1);
}

/* Connects to addr (an IPv4 HOST:PORT) from source address src. */
static int connect_from(const char *src, const char *addr)
{
    struct sockaddr_in from, to;
    ipv4_endpoints(src, 0, addr, &from, &to);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
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

/* ---- --log-format json --------------------------------------------------- */

void case_log_json(void)
{
    struct h_server s;
    const char *args[] = {"--listen", "127.0.0.1:0", "--log-format",
                          "json",     "-v",          NULL};
    CHECK_INT(h_server_start(&s, NULL, args, 1, 0), ==, 0);
    int fd = h_connect_or_die(s.addrs[0]);
    CHECK(quick_echo(fd, 81, 5000));
    close(fd);
    CHECK(kill(s.pid, SIGUSR1) == 0);
    CHECK(log_shows(&s, "stats: ", 5000));
    stop_ok(&s);

    static char log[1 << 16];
    snprintf(log, sizeof(log), "%s", h_server_log(&s));
    int lines = 0;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        if (!h_json_valid(line)) {
            fprintf(stderr, "not JSON: %s\n", line);
            exit(1);
        }
        CHECK(strncmp(line, "{\"ts\":\"", 7) == 0);
        CHECK_CONTAINS(line, "\"level\":\"");
        CHECK_CONTAINS(line, "\"msg\":\"");
        lines++;
    }
    printf("log-format json: %d lines, each one JSON object\n", lines);
    CHECK_INT(lines, >=, 5); /* start, connection open/close, stats, exit */
}

/* ---- --pidfile ------------------------------------------------------------
 */

void case_pidfile(void)
{
    struct h_server s, second;
    char path[200], text[32] = "";
    snprintf(path, sizeof(path), "%s/echokit.pid", h_tmpdir());
    const char *args[] = {"--listen", "127.0.0.1:0", "--pidfile", path, NULL};
    CHECK_INT(h_server_start(&s, NULL, args, 1, 0), ==, 0);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    CHECK(read(fd, text, sizeof(text) - 1) > 0);
    close(fd);
    CHECK_INT(atol(text), ==, s.pid);

    /* A second server with the same file refuses to start: 73. */
    CHECK_INT(h_server_start(&second, NULL, args, 1, 0), ==, 73);
    CHECK_CONTAINS(h_server_log(&second), "held by a running server");

    stop_ok(&s);
    CHECK(access(path, F_OK) != 0 && errno == ENOENT);

    /* A stale file (no server holds it) is taken over. */
    fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    CHECK(fd >= 0 && write(fd, "999999\n", 7) == 7);
    close(fd);
    CHECK_INT(h_server_start(&s, NULL, args, 1, 0), ==, 0);
    stop_ok(&s);
    printf("pidfile: written, locked against a second server (73), "
           "removed at exit, stale file taken over\n");
}

/* ---- --user ---------------------------------------------------------------
 */

/* The real uid of a running process, from /proc. */
static long proc_uid(pid_t pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    CHECK(n > 0);
    buf[n] = '\0';
    const char *uid = strstr(buf, "\nUid:");
    CHECK(uid != NULL);
    return atol(uid + 5);
}

void case_user(void)
{
    struct h_run r;
    const char *nouser[] = {"serve",  "--listen",        "127.0.0.1:0",
                            "--user", "no-such-user-ek", NULL};
    CHECK_INT(h_run_echokit(nouser, -1, 10000, &r), ==, 67);
    CHECK_CONTAINS(r.err, "no such user");
    if (geteuid() != 0)
        SKIP("not root: cannot test dropping privileges (--user)");

    /* Root, a privileged port, no --user: refused, with the way out. */
    const char *low[] = {"serve", "--listen", "127.0.0.1:7", NULL};
    CHECK_INT(h_run_echokit(low, -1, 10000, &r), ==, 64);
    CHECK_CONTAINS(r.err, "refusing to serve as root only to bind port 7");

    /* Bound as root, then serving as nobody. */
    struct h_server s;
    const char *args[] = {"--listen", "127.0.0.1:0", "--user", "nobody", NULL};
    CHECK_INT(h_server_start(&s, NULL, args, 1, 0), ==, 0);
    CHECK_INT(proc_uid(s.pid), ==, 65534);
    int fd = h_connect_or_die(s.addrs[0]);
    h_echo_check(fd, 91, 256 * KiB, true);
    CHECK_CONTAINS(h_server_log(&s), "running as nobody");
    stop_ok(&s);

    /* The privileged port itself, when it is free here. */
    const char *seven[] = {"--listen", "127.0.0.1:7", "--user", "nobody", NULL};
    int st = h_server_start(&s, NULL, seven, 1, 0);
    if (st == 71) {
        printf("user: port 7 is taken on this machine; privileged-port bind "
               "not tried\n");
    } else {
        CHECK_INT(st, ==, 0);
        CHECK_INT(proc_uid(s.pid), ==, 65534);
        fd = h_connect_or_die(s.addrs[0]);
        CHECK(quick_echo(fd, 92, 5000));
        close(fd);
        stop_ok(&s);
        printf("user: bound 127.0.0.1:7 as root, served as uid 65534\n");
    }
}

/* ---- --inetd ----------------------------------------------------------------
 */

/* Runs `echokit serve --inetd [-v]` with stdin and stdout (and stderr when
 * shared_stderr) on one end of a socket pair, as inetd does. */
static pid_t inetd_child(int sock, bool shared_stderr, int log_fd)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (dup2(sock, 0) < 0 || dup2(sock, 1) < 0 ||
            dup2(shared_stderr ? sock : log_fd, 2) < 0)
            _exit(126);
        execl(h_echokit, h_echokit, "serve", "--inetd", "-vv", (char *)NULL);
        _exit(127);
    }
    return pid;
}

void case_inetd(void)
{
    char log_path[200];
    snprintf(log_path, sizeof(log_path), "%s/inetd.log", h_tmpdir());
    int log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(log_fd >= 0);
    for (int shared = 0; shared < 2; shared++) {
        int sp[2];
        CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
        pid_t pid = inetd_child(sp[1], shared, log_fd);
        close(sp[1]);
        CHECK(fcntl(sp[0], F_SETFL, O_NONBLOCK) == 0);
        /* Every byte back and then the end: nothing else (no log line) in
         * the stream, even with stderr on the same socket. */
        struct h_stream st = {.fd = sp[0],
                              .seed = 100 + (uint64_t)shared,
                              .total = 4 * MiB,
                              .shut_wr = true,
                              .expect_eof = true};
        CHECK_INT(h_streams_run(&st, 1, 30000, 0), ==, 0);
        close(sp[0]);
        int ws;
        CHECK(waitpid(pid, &ws, 0) == pid);
        CHECK(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    }
    close(log_fd);

    /* On pipes too (a file in, a pipe out). */
    unsigned char data[48 * 1024];
    h_pattern(7, 0, data, sizeof(data));
    int in = write_temp_file("inetd.in", 7, sizeof(data));
    struct h_run r;
    const char *argv[] = {"serve", "--inetd", NULL};
    CHECK_INT(h_run_echokit(argv, in, 10000, &r), ==, 0);
    close(in);
    CHECK_INT(r.out_len, ==, sizeof(data));
    CHECK(memcmp(r.out, data, sizeof(data)) == 0);
    printf("inetd: 4 MiB echoed exactly on a socket pair (stderr apart and "
           "shared), 48 KiB through pipes\n");
}

/* ---- systemd socket activation and sd_notify --------------------------------
 */

#define SOCKET_ACTIVATE "/usr/bin/systemd-socket-activate"

/* A datagram socket standing in for systemd's notification socket. */
static int notify_socket(const char *path)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    CHECK(strlen(path) < sizeof(sun.sun_path));
    memcpy(sun.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    CHECK(bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0);
    return fd;
}

/* Waits for a notification containing text; false after timeout_ms. */
static bool notified(int fd, const char *text, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    for (;;) {
        char msg[1024];
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(deadline - h_now_ms());
        if (left <= 0 || poll(&p, 1, left) != 1)
            return false;
        ssize_t n = recv(fd, msg, sizeof(msg) - 1, 0);
        if (n <= 0)
            continue;
        msg[n] = '\0';
        if (strstr(msg, text) != NULL)
            return true;
    }
}

/* A TCP port outside the ephemeral range, free right now. */
static unsigned free_fixed_port(void)
{
    for (unsigned port = 20000 + (unsigned)getpid() % 9000; port < 30000;
         port += 97) {
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons((uint16_t)port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(fd >= 0);
        int ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
        close(fd);
        if (ok)
            return port;
    }
    SKIP("no free port found in 20000-29999");
}

/* Starts `systemd-socket-activate -l ADDR [wrapper_args] echokit serve
 * ARGS`. It binds ADDR, then waits for a first client before it runs
 * echokit: so a client connects (and waits in the backlog), and then the
 * server must announce ADDR as its listener. Returns the client. */
static int start_activated(struct h_server *s, const char *addr,
                           const char *const *wrapper_args,
                           const char *const *args)
{
    const char *wrap[16] = {SOCKET_ACTIVATE, "-l", addr};
    size_t n = 3;
    for (size_t i = 0; wrapper_args != NULL && wrapper_args[i] && n < 15; i++)
        wrap[n++] = wrapper_args[i];
    wrap[n] = NULL;
    h_server_wrapper = wrap;
    CHECK_INT(h_server_start(s, NULL, args, 0, 0), ==, 0);
    h_server_wrapper = NULL;
    CHECK(log_shows(s, "Listening on", 10000));
    const char *at = strncmp(addr, "/", 1) == 0 ? NULL : addr;
    char unix_addr[256];
    if (at == NULL) {
        snprintf(unix_addr, sizeof(unix_addr), "unix:%s", addr);
        at = unix_addr;
    }
    return h_connect_or_die(at);
}

void case_socket_activation(void)
{
    if (access(SOCKET_ACTIVATE, X_OK) != 0)
        SKIP("%s (Debian package systemd) is not installed", SOCKET_ACTIVATE);
    char sock_path[200], notify_path[200], notify_env[260], listen_tcp[64];
    char line[256], want[256];
    snprintf(sock_path, sizeof(sock_path), "%s/activated.sock", h_tmpdir());
    snprintf(notify_path, sizeof(notify_path), "%s/notify", h_tmpdir());
    snprintf(notify_env, sizeof(notify_env), "NOTIFY_SOCKET=%s", notify_path);
    int nfd = notify_socket(notify_path);

    /* A unix socket from the service manager: served, readiness told, the
     * socket file left to its owner at exit. */
    struct h_server s;
    const char *env[] = {"-E", notify_env, "--fdname=echo", NULL};
    int fd = start_activated(&s, sock_path, env, NULL);
    CHECK(h_server_read_line(&s, "listening on ", line, sizeof(line), 10000));
    snprintf(want, sizeof(want), "unix:%s", sock_path);
    CHECK_STR(line, want);
    CHECK(notified(nfd, "READY=1", 10000));
    h_echo_check(fd, 111, MiB, true);
    CHECK_CONTAINS(h_server_log(&s), "socket activation: 1 socket");
    CHECK_CONTAINS(h_server_log(&s), "sockets named echo");
    CHECK_CONTAINS(h_server_log(&s), "(from systemd)");
    CHECK(kill(s.pid, SIGTERM) == 0);
    CHECK(notified(nfd, "STOPPING=1", 10000));
    CHECK_INT(h_server_wait(&s, 10000), ==, 0);
    struct stat sb;
    CHECK(stat(sock_path, &sb) == 0 && S_ISSOCK(sb.st_mode));
    close(nfd);

    /* TCP, with two event loops sharing the passed socket. */
    snprintf(listen_tcp, sizeof(listen_tcp), "127.0.0.1:%u", free_fixed_port());
    const char *args[] = {"--io", "epoll", "--threads", "2", NULL};
    struct h_stream v[20];
    v[0] = (struct h_stream){.fd = start_activated(&s, listen_tcp, NULL, args),
                             .seed = 200,
                             .total = 64 * KiB};
    CHECK(h_server_read_line(&s, "listening on ", line, sizeof(line), 10000));
    CHECK_STR(line, listen_tcp);
    for (int i = 1; i < 20; i++)
        v[i] = (struct h_stream){.fd = h_connect_or_die(listen_tcp),
                                 .seed = 200 + (uint64_t)i,
                                 .total = 64 * KiB};
    CHECK_INT(h_streams_run(v, 20, 30000, 0), ==, 0);
    for (int i = 0; i < 20; i++)
        close(v[i].fd);
    stop_ok(&s);

    /* Accept=yes: a connection per process, on stdin/stdout (--inetd). */
    snprintf(sock_path, sizeof(sock_path), "%s/per-conn.sock", h_tmpdir());
    const char *per_conn[] = {"--accept", "--inetd", NULL};
    const char *inetd[] = {"--inetd", NULL};
    fd = start_activated(&s, sock_path, per_conn, inetd);
    h_echo_check(fd, 300, MiB, true);
    snprintf(want, sizeof(want), "unix:%s", sock_path);
    int fd2 = h_connect_or_die(want);
    h_echo_check(fd2, 301, MiB, true);
    CHECK_INT(h_server_stop(&s, SIGTERM, 10000), !=, -1);
    printf("socket activation: unix socket served (READY=1, STOPPING=1 "
           "received, socket file kept), TCP socket served by 2 loops, "
           "--inetd per connection (Accept=yes)\n");
}

/* ---- contrib/: the systemd units ------------------------------------------
 */

#define SYSTEMD_ANALYZE "/usr/bin/systemd-analyze"

/* Reads the source tree's file rel (e.g. "contrib/haproxy.cfg") whole
 * into buf, NUL-terminated; the test fails if it is missing or too big.
 * Returns its length. */
static size_t read_source_file(const char *rel, char *buf, size_t size)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", EK_SOURCE_DIR, rel);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    CHECK(n > 0 && n < (ssize_t)size - 1);
    buf[n] = '\0';
    return (size_t)n;
}

/* Copies contrib/name into dir, pointing ExecStart at the binary under
 * test (systemd-analyze checks that the executable exists). */
static void copy_unit(const char *name, const char *dir)
{
    char rel[256], dst[512], buf[8192];
    snprintf(rel, sizeof(rel), "contrib/%s", name);
    read_source_file(rel, buf, sizeof(buf));
    snprintf(dst, sizeof(dst), "%s/%s", dir, name);
    FILE *out = fopen(dst, "w");
    CHECK(out != NULL);
    const char *from = "/usr/local/bin/echokit";
    for (const char *p = buf; *p;) {
        const char *hit = strstr(p, from);
        if (hit == NULL) {
            fputs(p, out);
            break;
        }
        fwrite(p, 1, (size_t)(hit - p), out);
        fputs(h_echokit, out);
        p = hit + strlen(from);
    }
    CHECK(fclose(out) == 0);
}

void case_contrib_units(void)
{
    if (access(SYSTEMD_ANALYZE, X_OK) != 0)
        SKIP("%s (Debian package systemd) is not installed", SYSTEMD_ANALYZE);
    if (h_echokit[0] != '/')
        SKIP("the binary's path is relative: units need an absolute one");
    const char *dir = h_tmpdir();
    copy_unit("echokit.service", dir);
    copy_unit("echokit.socket", dir);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "cd %s && " SYSTEMD_ANALYZE " verify --man=no ./echokit.socket "
             "./echokit.service",
             dir);
    int st = system(cmd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* The sandboxing, as systemd rates it (lower is better; "OK" < 4). */
    snprintf(cmd, sizeof(cmd),
             "cd %s && " SYSTEMD_ANALYZE " security --offline=yes "
             "--threshold=30 ./echokit.service | tail -n 1",
             dir);
    st = system(cmd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    printf("contrib: echokit.socket and echokit.service pass systemd-analyze "
           "verify and security --threshold=30\n");
}

/* ---- --proxy-protocol
 * -------------------------------------------------------- */

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

    /* A client that never sends its header is cut after 5 s. */
    int64_t t0 = h_now_ms();
    int silent = h_connect_or_die(addr);
    CHECK(closed_by_peer(silent, 15000));
    int64_t took = h_now_ms() - t0;
    close(silent);
    CHECK_INT(took, >=, 4500);
    CHECK_INT(
        metric_becomes(
            maddr, "echokit_connections_refused_total{reason=\"proxy\"}", 3),
        ==, 3);
    CHECK_INT(
        metric_becomes(maddr,
                       "echokit_connections_refused_total{reason=\"acl\"}", 1),
        ==, 1);
    printf("%s: proxy protocol: v1 (TCP4, TCP6), v2 (TCP4, LOCAL) whole and "
           "byte by byte, header never echoed; 2 bad headers and 1 denied "
           "client closed with nothing echoed; silent client cut after %lld "
           "ms\n",
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

/* ---- HAProxy in front of two servers: failover -----------------------------
 */

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
    pid_t killer = fork();
    CHECK(killer >= 0);
    if (killer == 0) {
        h_sleep_ms(1000);
        kill(a.pid, SIGKILL);
        _exit(0);
    }
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

/* ---- UDP ------------------------------------------------------------------
 */

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

/* ---- the man page and --help say the same ----------------------------- */

/* Appends each "--long-option" in text to list (no duplicates). */
static size_t long_options(const char *text, char list[][40], size_t n,
                           size_t max)
{
    for (const char *p = strstr(text, "--"); p != NULL;
         p = strstr(p + 2, "--")) {
        size_t len = 2;
        while ((p[len] >= 'a' && p[len] <= 'z') || p[len] == '-')
            len++;
        while (len > 2 && p[len - 1] == '-')
            len--;
        if (len < 4 || len >= 40 || (p > text && p[-1] == '-'))
            continue;
        bool seen = false;
        for (size_t i = 0; i < n && !seen; i++)
            seen = strncmp(list[i], p, len) == 0 && list[i][len] == '\0';
        if (!seen && n < max) {
            memcpy(list[n], p, len);
            list[n++][len] = '\0';
        }
    }
    return n;
}

/* The man page with its "\-" escapes turned into "-". */
static char *man_text(void)
{
    static char text[1 << 17];
    char *raw = malloc(sizeof(text));
    CHECK(raw != NULL);
    size_t n = read_source_file("docs/echokit.1", raw, sizeof(text));
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (raw[i] == '\\' && i + 1 < n && raw[i + 1] == '-')
            continue; /* "\-" is a hyphen */
        text[j++] = raw[i];
    }
    text[j] = '\0';
    free(raw);
    return text;
}

/* The text of man section `name` (up to the next .SH). */
static char *man_section(const char *man, const char *name, char *out,
                         size_t size)
{
    char head[64];
    snprintf(head, sizeof(head), "\n.SH %s\n", name);
    const char *s = strstr(man, head);
    CHECK(s != NULL);
    s += strlen(head);
    const char *e = strstr(s, "\n.SH ");
    size_t len = e ? (size_t)(e - s) : strlen(s);
    CHECK(len < size);
    memcpy(out, s, len);
    out[len] = '\0';
    return out;
}

void case_help_matches_man(void)
{
    static const char *const cmds[][2] = {{"serve", "SERVE OPTIONS"},
                                          {"send", "SEND"},
                                          {"ping", "PING"},
                                          {"bench", "BENCH"}};
    const char *man = man_text();
    static char section[1 << 16];
    int checked = 0;
    for (size_t c = 0; c < 4; c++) {
        struct h_run r;
        const char *argv[] = {cmds[c][0], "--help", NULL};
        CHECK_INT(h_run_echokit(argv, -1, 10000, &r), ==, 0);
        char help[96][40], doc[96][40];
        size_t nh = long_options(r.out, help, 0, 96);
        size_t nd = long_options(
            man_section(man, cmds[c][1], section, sizeof(section)), doc, 0, 96);
        for (size_t i = 0; i < nh; i++) { /* every option documented */
            if (strstr(man, help[i]) == NULL) {
                fprintf(stderr, "%s --help has %s; the man page does not\n",
                        cmds[c][0], help[i]);
                exit(1);
            }
            checked++;
        }
        for (size_t i = 0; i < nd; i++) { /* and every documented one real */
            bool found = strcmp(doc[i], "--daemon") == 0; /* "no --daemon" */
            for (size_t k = 0; k < nh && !found; k++)
                found = strcmp(doc[i], help[k]) == 0;
            if (!found) {
                fprintf(stderr,
                        "man page section %s has %s; %s --help does "
                        "not\n",
                        cmds[c][1], doc[i], cmds[c][0]);
                exit(1);
            }
        }
    }
    printf("help vs man: %d options of serve, send, ping, bench in both\n",
           checked);
}
