/*
 * itest_service: running as a service: --pidfile, --user, --inetd,
 * systemd socket activation with readiness notification, and the units
 * of contrib/ under systemd-analyze.
 */
#include "check.h"
#include "itest.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- --pidfile ------------------------------------------------------- */

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

    /* A hard link planted where the pidfile goes names another file: it
     * is refused (73) and the other file is left as it was (it used to be
     * truncated to the pid). So is a FIFO, without blocking. */
    char victim[200], back[32] = "";
    snprintf(victim, sizeof(victim), "%s/victim", h_tmpdir());
    fd = open(victim, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    CHECK(fd >= 0 && write(fd, "keep me\n", 8) == 8);
    close(fd);
    CHECK(link(victim, path) == 0);
    CHECK_INT(h_server_start(&second, NULL, args, 1, 0), ==, 73);
    CHECK_CONTAINS(h_server_log(&second), "not a regular file with a single "
                                          "link");
    fd = open(victim, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0 && read(fd, back, sizeof(back) - 1) == 8);
    close(fd);
    CHECK_STR(back, "keep me\n");
    CHECK(unlink(path) == 0);
    CHECK(mkfifo(path, 0644) == 0);
    CHECK_INT(h_server_start(&second, NULL, args, 1, 0), ==, 73);
    CHECK(unlink(path) == 0);
    printf("pidfile: written, locked against a second server (73), "
           "removed at exit, stale file taken over; a hard link to another "
           "file and a FIFO refused (73), the other file intact\n");
}

/* ---- --user ---------------------------------------------------------- */

/* The real uid of a running process, from /proc. */
static long proc_uid(pid_t pid)
{
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    read_text_file(path, buf, sizeof(buf));
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

/* ---- --inetd --------------------------------------------------------- */

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

/* ---- systemd socket activation and sd_notify ------------------------- */

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

    /* TCP, with two event loops sharing the passed socket (the build's
     * best readiness loop: epoll, or poll without Linux extensions). */
    snprintf(listen_tcp, sizeof(listen_tcp), "127.0.0.1:%u", free_fixed_port());
    const char *args[] = {"--io", "auto", "--threads", "2", NULL};
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

/* ---- contrib/: the systemd units ------------------------------------- */

#define SYSTEMD_ANALYZE "/usr/bin/systemd-analyze"

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

/* The number after key in text, with systemd's and echokit's K/M/G
 * suffixes (1024s), or -1 when key is missing. */
static double unit_number(const char *text, const char *key)
{
    const char *at = strstr(text, key);
    if (at == NULL)
        return -1;
    char *end;
    double v = strtod(at + strlen(key), &end);
    const char *units = "KMG";
    const char *u = *end != '\0' ? strchr(units, *end) : NULL;
    for (long i = 0; u != NULL && i <= u - units; i++)
        v *= 1024;
    return v;
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

    /* The unit's memory holds what its options and the socket's buffers
     * let a server hold, kernel buffers included (README, "Memory
     * bound"); its tasks what --threads auto can run. The previous units
     * had neither MemoryMax= nor TasksMax=. */
    static char service[8192], sock[8192];
    read_source_file("contrib/echokit.service", service, sizeof(service));
    read_source_file("contrib/echokit.socket", sock, sizeof(sock));
    double conns = unit_number(service, "--max-conns "),
           queue = unit_number(service, "--max-queue "),
           rcv = unit_number(sock, "\nReceiveBuffer="),
           snd = unit_number(sock, "\nSendBuffer="),
           max = unit_number(service, "\nMemoryMax="),
           tasks = unit_number(service, "\nTasksMax=");
    /* The kernel doubles SO_RCVBUF and SO_SNDBUF. */
    double bound =
        conns * (queue + 128 * 1024 + 2 * rcv + 2 * snd) + 8 * 1024 * 1024;
    printf("contrib: MemoryMax=%.0f MiB, the bound %.0f x (%.0f KiB + 128 KiB "
           "+ 2 x %.0f KiB + 2 x %.0f KiB) + 8 MiB = %.0f MiB; TasksMax=%.0f\n",
           max / 1048576, conns, queue / 1024, rcv / 1024, snd / 1024,
           bound / 1048576, tasks);
    CHECK(conns > 0 && queue > 0 && rcv > 0 && snd > 0);
    CHECK(max >= bound);
    CHECK(tasks >= 256 + 2); /* 256 loops, the main and /metrics threads */
}

/* --io process: SIGKILL the parent while a child serves a client, and
 * start a new server at once on the same port, pidfile and --metrics
 * address. The orphan child keeps its client and nothing else: it used to
 * keep the pidfile's lock (73) and the /metrics listener (71). */
void case_process_orphan(void)
{
    struct h_server s, again;
    char pidfile[200], maddr[256];
    snprintf(pidfile, sizeof(pidfile), "%s/orphan.pid", h_tmpdir());
    const char *args[] = {"--listen",  "127.0.0.1:0", "--pidfile", pidfile,
                          "--metrics", "127.0.0.1:0", NULL};
    CHECK_INT(h_server_start(&s, "process", args, 1, 0), ==, 0);
    metrics_addr(&s, maddr, sizeof(maddr));
    int client = h_connect_or_die(s.addrs[0]);
    CHECK(quick_echo(client, 31, 5000)); /* its child is serving it */

    CHECK(kill(s.pid, SIGKILL) == 0);
    CHECK(h_server_wait(&s, 5000) != -1);
    const char *same[] = {"--listen",  s.addrs[0], "--pidfile", pidfile,
                          "--metrics", maddr,      NULL};
    int st = h_server_start(&again, "process", same, 1, 0);
    printf("process: parent killed with a client being served; a new "
           "server on the same port, pidfile and metrics address: exit "
           "%d%s\n",
           st, st == 0 ? " (started)" : "");
    CHECK_INT(st, ==, 0);
    CHECK(quick_echo(client, 32, 5000)); /* the orphan still serves it */
    int fresh = h_connect_or_die(s.addrs[0]);
    CHECK(quick_echo(fresh, 33, 5000));
    close(fresh);
    close(client); /* the orphan ends */
    stop_ok(&again);
}

/* ---- socket buffers: the kernel's part of a connection's memory ------- */

/* The sum of r + w + f (received, queued to send, reserved) over the
 * skmem of every established socket whose local port is port, and the
 * largest; *n the sockets seen, *rb and *tb the last one's buffer sizes. */
static void socket_memory(unsigned port, long *sum, long *most, int *n,
                          long *rb, long *tb)
{
    char cmd[128];
    static char out[1 << 16];
    snprintf(cmd, sizeof(cmd),
             "ss -Htmn state established '( sport = :%u )' 2>&1", port);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    size_t len = fread(out, 1, sizeof(out) - 1, p);
    out[len] = '\0';
    CHECK(pclose(p) == 0);
    *sum = *most = 0;
    *n = 0;
    for (const char *at = strstr(out, "skmem:("); at != NULL;
         at = strstr(at + 1, "skmem:(")) {
        long r, t, f, w;
        CHECK(sscanf(at, "skmem:(r%ld,rb%ld,t%ld,tb%ld,f%ld,w%ld", &r, rb, &t,
                     tb, &f, &w) == 6);
        *sum += r + w + f;
        *most = r + w + f > *most ? r + w + f : *most;
        ++*n;
    }
}

/* n clients that write and never read (their own receive buffer 4 KiB),
 * to port, until the server's buffers are full: no write goes through
 * for 300 ms, or 5 s passed. */
static void fill(unsigned port, int *fds, int n)
{
    static char chunk[64 * 1024];
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    for (int i = 0; i < n; i++) {
        int small = 4096;
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CHECK(fds[i] >= 0);
        CHECK(setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &small,
                         sizeof(small)) == 0);
        CHECK(connect(fds[i], (struct sockaddr *)&a, sizeof(a)) == 0);
        CHECK(fcntl(fds[i], F_SETFL, O_NONBLOCK) == 0);
    }
    int64_t deadline = h_now_ms() + 5000, quiet_since = h_now_ms();
    while (h_now_ms() < deadline && h_now_ms() - quiet_since < 300) {
        bool wrote = false;
        for (int i = 0; i < n; i++)
            while (send(fds[i], chunk, sizeof(chunk), MSG_NOSIGNAL) > 0)
                wrote = true;
        if (wrote)
            quiet_since = h_now_ms();
        h_sleep_ms(20);
    }
}

static void write_sysctl(const char *name, const char *value)
{
    char path[128];
    snprintf(path, sizeof(path), "/proc/sys/net/ipv4/%s", name);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    CHECK(write(fd, value, strlen(value)) == (ssize_t)strlen(value));
    close(fd);
}

/* echokit serve on a listener made here with SO_RCVBUF and SO_SNDBUF of
 * size, passed as systemd passes echokit.socket's (LISTEN_FDS). Returns
 * its pid; *port the listener's. */
static pid_t serve_on_listener(int size, unsigned *port)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    CHECK(l >= 0);
    CHECK(setsockopt(l, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)) == 0);
    CHECK(setsockopt(l, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)) == 0);
    CHECK(bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 64) == 0);
    CHECK(getsockname(l, (struct sockaddr *)&a, &alen) == 0);
    *port = ntohs(a.sin_port);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        char me[32];
        snprintf(me, sizeof(me), "%d", (int)getpid());
        int null = open("/dev/null", O_WRONLY);
        if (dup2(l, 3) < 0 || null < 0 || dup2(null, 1) < 0 ||
            dup2(null, 2) < 0 || setenv("LISTEN_PID", me, 1) != 0 ||
            setenv("LISTEN_FDS", "1", 1) != 0 ||
            prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
            _exit(126);
        execl(h_echokit, h_echokit, "serve", "--max-queue", "64K",
              (char *)NULL);
        _exit(127);
    }
    close(l);
    return pid;
}

/* What 20 clients that write and never read make the kernel hold for the
 * server (the issue: 200 of them held 4.7 MiB each, outside the 256Mi the
 * Kubernetes manifests reasoned with): on Linux's default buffer maxima,
 * then with the two ways contrib/ caps them, which the memory limits
 * count: the pod's net.ipv4.tcp_rmem and tcp_wmem maxima (256 KiB), and
 * echokit.socket's ReceiveBuffer= and SendBuffer= (128K, doubled by the
 * kernel), which accepted sockets inherit. In a network namespace of the
 * test's own, whose sysctls are its own. */
void case_socket_memory(void)
{
    own_network(NULL);
    enum { N = 20 };
    static const struct {
        const char *what, *rmem, *wmem;
        int listener; /* SO_RCVBUF and SO_SNDBUF, 0: none */
        long cap;     /* each way, per connection; 0: none checked */
    } runs[] = {
        {"Linux's defaults", "4096 131072 6291456", "4096 16384 4194304", 0, 0},
        {"tcp_rmem, tcp_wmem max 256 KiB (the pods)", "4096 131072 262144",
         "4096 16384 262144", 0, 256 * 1024L},
        {"listener's buffers 128K (echokit.socket)", "4096 131072 6291456",
         "4096 16384 4194304", 128 * 1024, 256 * 1024L},
    };
    for (size_t k = 0; k < sizeof(runs) / sizeof(runs[0]); k++) {
        write_sysctl("tcp_rmem", runs[k].rmem);
        write_sysctl("tcp_wmem", runs[k].wmem);
        struct h_server s;
        pid_t pid = 0;
        unsigned port;
        if (runs[k].listener == 0) {
            const char *args[] = {"--listen", "127.0.0.1:0", "--max-queue",
                                  "64K", NULL};
            CHECK_INT(h_server_start(&s, NULL, args, 1, 0), ==, 0);
            port = (unsigned)atoi(strrchr(s.addrs[0], ':') + 1);
        } else {
            pid = serve_on_listener(runs[k].listener, &port);
        }
        int fds[N];
        fill(port, fds, N);
        long sum, most, rb = 0, tb = 0;
        int n;
        socket_memory(port, &sum, &most, &n, &rb, &tb);
        printf("%s: %d connections, the kernel holds %ld KiB each on "
               "average, %ld KiB at most (buffers %ld and %ld KiB)\n",
               runs[k].what, n, sum / (n ? n : 1) / 1024, most / 1024,
               rb / 1024, tb / 1024);
        CHECK_INT(n, ==, N);
        /* A socket may go past its buffer by what one write queued. */
        if (runs[k].cap > 0)
            CHECK(most <= 2 * runs[k].cap + 64 * 1024L);
        for (int i = 0; i < N; i++)
            close(fds[i]);
        if (pid == 0) {
            stop_ok(&s);
        } else {
            CHECK(kill(pid, SIGTERM) == 0);
            int st;
            CHECK(waitpid(pid, &st, 0) == pid);
        }
    }
}
