#include "harness.h"
#include "ek_json.h"
#include "check.h"
#include "ek_addr.h"
#include "ek_net.h"
#include "ek_util.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *h_echokit;

#define H_MAX_SERVERS 16
static struct h_server *servers[H_MAX_SERVERS];
static size_t nservers;
static pid_t fakes[H_MAX_SERVERS];
static size_t nfakes;
static char tmpdir[64];

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double h_median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), by_value);
    return v[n / 2];
}

int64_t h_now_ms(void)
{
    return ek_now_ms();
}

void h_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Copies the first line of FILE into buf (empty if unreadable). */
static void read_first_line(const char *file, char *buf, size_t size)
{
    buf[0] = '\0';
    FILE *f = fopen(file, "r");
    if (f == NULL)
        return;
    if (fgets(buf, (int)size, f) == NULL)
        buf[0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    fclose(f);
}

/* Prints, per thread, what /proc says: its state, pending and blocked
 * signals, kernel wait channel and the syscall it is in. */
static void print_tasks(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char file[sizeof(path) + sizeof(e->d_name) + 16], wchan[64], sys[128];
        snprintf(file, sizeof(file), "%s/%s/wchan", path, e->d_name);
        read_first_line(file, wchan, sizeof(wchan));
        snprintf(file, sizeof(file), "%s/%s/syscall", path, e->d_name);
        read_first_line(file, sys, sizeof(sys));
        sys[strcspn(sys, " ")] = '\0'; /* the number; the rest is registers */
        fprintf(stderr, "  task %s: wchan %s, syscall %s;", e->d_name, wchan,
                sys);
        snprintf(file, sizeof(file), "%s/%s/status", path, e->d_name);
        FILE *f = fopen(file, "r");
        char line[256];
        while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
            static const char *keep[] = {
                "Name:", "State:", "SigPnd:", "ShdPnd:", "SigBlk:"};
            for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
                if (strncmp(line, keep[i], strlen(keep[i])) == 0) {
                    line[strcspn(line, "\n")] = '\0';
                    fprintf(stderr, " %s", line);
                }
        }
        if (f != NULL)
            fclose(f);
        fputc('\n', stderr);
    }
    closedir(d);
}

/* A server that ignored its signal, or outlived a failed test: says where
 * each of its threads is, with gdb's backtraces when gdb is installed (CI
 * installs it), so that a hang seen once is a hang that can be fixed. */
static void report_hung(pid_t pid)
{
    fprintf(stderr, "threads of hung server %d:\n", (int)pid);
    print_tasks(pid);
    /* Its sockets as the kernel sees them: bytes waiting to be read
     * (Recv-Q) and not yet acknowledged (Send-Q), per connection. */
    char ss[128];
    snprintf(ss, sizeof(ss),
             "ss -tanpm 2>/dev/null | grep -A1 'pid=%d,' | head -400 >&2",
             (int)pid);
    if (system(ss) == -1)
        fprintf(stderr, "  cannot run ss: %s\n", strerror(errno));
    if (system("command -v gdb >/dev/null 2>&1") != 0) {
        fprintf(stderr, "  (no gdb installed: no backtraces)\n");
        return;
    }
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "timeout 60 gdb -p %d -batch -nx -ex 'thread apply all bt' "
             "-x '%s/tests/hung_uring.gdb' </dev/null 2>&1 | "
             "grep -v '^\\[' >&2",
             (int)pid, EK_SOURCE_DIR);
    if (system(cmd) == -1)
        fprintf(stderr, "  cannot run gdb: %s\n", strerror(errno));
}

static void cleanup_at_exit(void)
{
    for (size_t i = 0; i < nservers; i++) {
        struct h_server *s = servers[i];
        if (s->exit_status != -1 || s->pid <= 0)
            continue;
        /* Still running at exit: the test failed on the way. Show the log,
         * then end the server (ours, by PID). */
        fprintf(stderr, "--- server %d log ---\n%s--- end ---\n", (int)s->pid,
                h_server_log(s));
        report_hung(s->pid);
        kill(s->pid, SIGKILL);
        waitpid(s->pid, NULL, 0);
    }
    for (size_t i = 0; i < nfakes; i++) {
        kill(fakes[i], SIGKILL);
        waitpid(fakes[i], NULL, 0);
    }
    if (tmpdir[0] != '\0')
        nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *h_tmpdir(void)
{
    if (tmpdir[0] == '\0') {
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/echokit-test-XXXXXX");
        CHECK(mkdtemp(tmpdir) != NULL);
        chmod(tmpdir, 0755); /* reachable by an unprivileged server */
    }
    return tmpdir;
}

static int decode_status(int wstatus)
{
    if (WIFEXITED(wstatus))
        return WEXITSTATUS(wstatus);
    if (WIFSIGNALED(wstatus))
        return 128 + WTERMSIG(wstatus);
    return -1;
}

/* Reads one line from fd (no buffering beyond it: the server's later
 * output stays in the pipe). Returns its length, 0 on EOF, -1 on timeout. */
static int read_line(int fd, char *buf, size_t size, int64_t deadline)
{
    size_t n = 0;
    while (n + 1 < size) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int left = (int)(deadline - h_now_ms());
        if (left <= 0 || poll(&p, 1, left) == 0)
            return -1;
        ssize_t r = read(fd, buf + n, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        if (buf[n] == '\n')
            break;
        n++;
    }
    buf[n] = '\0';
    return (int)n;
}

/* Whatever a test starts is ended when it exits, pass or fail. */
static void clean_up_at_exit(void)
{
    static bool hooked;
    if (!hooked) {
        atexit(cleanup_at_exit);
        hooked = true;
    }
}

static void register_server(struct h_server *s)
{
    clean_up_at_exit();
    CHECK(nservers < H_MAX_SERVERS);
    servers[nservers++] = s;
}

static _Noreturn void exec_server(const char *model, const char *const *args,
                                  int out_fd, int log_fd, long nofile)
{
    const char *argv[64];
    int n = 0;
    static char name[64];
    for (size_t i = 0; h_server_wrapper != NULL && h_server_wrapper[i]; i++)
        argv[n++] = h_server_wrapper[i];
    argv[n++] = h_echokit;
    argv[n++] = "serve";
    if (model != NULL) {
        /* "epoll-t2": --io epoll --threads 2 */
        const char *t = strstr(model, "-t");
        snprintf(name, sizeof(name), "%.*s",
                 (int)(t != NULL ? (size_t)(t - model) : strlen(model)), model);
        argv[n++] = "--io";
        argv[n++] = name;
        if (t != NULL) {
            argv[n++] = "--threads";
            argv[n++] = t + 2;
        }
    }
    for (size_t i = 0; args != NULL && args[i] != NULL && n < 63; i++)
        argv[n++] = args[i];
    argv[n] = NULL;

    if (nofile > 0) {
        struct rlimit rl = {(rlim_t)nofile, (rlim_t)nofile};
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            _exit(126);
    }
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(out_fd, 1) < 0 ||
        dup2(log_fd, 2) < 0)
        _exit(126);
    execv(argv[0], (char *const *)argv);
    _exit(127);
}

const char *const *h_server_wrapper;

bool h_server_read_line(struct h_server *s, const char *prefix, char *out,
                        size_t size, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    char line[256];
    while (read_line(s->stdout_fd, line, sizeof(line), deadline) > 0)
        if (strncmp(line, prefix, strlen(prefix)) == 0) {
            snprintf(out, size, "%s", line + strlen(prefix));
            return true;
        }
    return false;
}

int h_server_start(struct h_server *s, const char *model,
                   const char *const *args, int expect, long nofile)
{
    static int serial;
    int out[2];

    memset(s, 0, sizeof(*s));
    s->exit_status = -1;
    snprintf(s->log_path, sizeof(s->log_path), "%s/server-%d.log", h_tmpdir(),
             serial++);
    int log_fd =
        open(s->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    CHECK(log_fd >= 0);
    CHECK(pipe2(out, O_CLOEXEC) == 0);

    s->pid = fork();
    CHECK(s->pid >= 0);
    if (s->pid == 0)
        exec_server(model, args, out[1], log_fd, nofile);
    close(out[1]);
    close(log_fd);
    s->stdout_fd = out[0];
    register_server(s);

    /* Sanitizer builds start slowly on a loaded machine: be generous. */
    int64_t deadline = h_now_ms() + 30000;
    while (s->naddrs < expect) {
        char line[256];
        int n = read_line(s->stdout_fd, line, sizeof(line), deadline);
        if (n < 0) {
            fprintf(stderr, "server did not print its addresses in time\n");
            exit(1);
        }
        if (n == 0) { /* EOF: it exited before listening */
            int st = h_server_wait(s, 10000);
            return st == 0 ? 255 : st;
        }
        const char *prefix = "listening on ";
        CHECK(strncmp(line, prefix, strlen(prefix)) == 0);
        CHECK(s->naddrs < H_MAX_LISTENERS);
        memcpy(s->addrs[s->naddrs++], line + strlen(prefix),
               strlen(line + strlen(prefix)) + 1);
    }
    return 0;
}

void h_server_start_or_skip(struct h_server *s, const char *model,
                            const char *const *args, int expect)
{
    int st = h_server_start(s, model, args, expect, 0);
    if (st == 0)
        return;
    const char *log = h_server_log(s);
    if (st == 69 && strstr(log, "not available") != NULL) {
        const char *why = strstr(log, "--io");
        SKIP("%.*s", (int)strcspn(why ? why : log, "\n"), why ? why : log);
    }
    fprintf(stderr, "server exited with %d before listening:\n%s\n", st, log);
    exit(1);
}

int h_server_wait(struct h_server *s, int timeout_ms)
{
    int64_t deadline = h_now_ms() + timeout_ms;
    if (s->exit_status != -1)
        return s->exit_status;
    for (;;) {
        int wstatus;
        pid_t r = waitpid(s->pid, &wstatus, WNOHANG);
        if (r == s->pid) {
            s->exit_status = decode_status(wstatus);
            close(s->stdout_fd);
            return s->exit_status;
        }
        if (h_now_ms() >= deadline)
            return -1;
        h_sleep_ms(5);
    }
}

int h_server_stop(struct h_server *s, int sig, int timeout_ms)
{
    if (s->exit_status != -1)
        return s->exit_status;
    kill(s->pid, sig);
    int st = h_server_wait(s, timeout_ms);
    if (st == -1) {
        fprintf(stderr, "server %d did not exit within %d ms of signal %d\n",
                (int)s->pid, timeout_ms, sig);
        report_hung(s->pid);
        kill(s->pid, SIGKILL);
        h_server_wait(s, 5000);
        return -1;
    }
    return st;
}

const char *h_server_log(const struct h_server *s)
{
    static char buf[1 << 16];
    buf[0] = '\0';
    int fd = open(s->log_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return buf;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

int h_client_socket(int family)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
        fprintf(stderr, "client socket: %s\n", strerror(errno));
        exit(1);
    }
    return fd;
}

int h_connect(const char *addr)
{
    struct ek_addr_spec spec;
    const char *why;
    struct ek_sockaddr *sa;
    size_t n;
    if (ek_addr_parse(addr, &spec, &why) < 0)
        return -EINVAL;
    if (ek_addr_resolve(&spec, false, &sa, &n) != 0 || n == 0)
        return -EADDRNOTAVAIL;
    int fd = ek_net_connect(&sa[0], NULL, 10000);
    free(sa);
    return fd;
}

int h_connect_or_die(const char *addr)
{
    int fd = h_connect(addr);
    if (fd < 0) {
        fprintf(stderr, "connect %s: %s\n", addr, strerror(-fd));
        exit(1);
    }
    return fd;
}

static void drain_fd(int fd, char *buf, size_t size, size_t *len)
{
    for (;;) {
        char tmp[4096];
        ssize_t n = read(fd, tmp, sizeof(tmp));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        size_t k = (size_t)n;
        if (*len + k > size - 1)
            k = size - 1 - *len;
        memcpy(buf + *len, tmp, k);
        *len += k;
        buf[*len] = '\0';
        if (k < (size_t)n)
            continue; /* full: discard the rest, keep the pipe flowing */
        return;
    }
}

int h_run_echokit(const char *const *argv, int in_fd, int timeout_ms,
                  struct h_run *r)
{
    return h_run_echokit_signal(argv, in_fd, timeout_ms, -1, 0, r);
}

int h_run_echokit_signal(const char *const *argv, int in_fd, int timeout_ms,
                         int signal_after_ms, int sig, struct h_run *r)
{
    int out[2], err[2];
    const char *full[32];
    int n = 0;
    full[n++] = h_echokit;
    for (size_t i = 0; argv[i] != NULL && n < 31; i++)
        full[n++] = argv[i];
    full[n] = NULL;

    memset(r, 0, sizeof(*r));
    CHECK(pipe2(out, O_CLOEXEC) == 0 && pipe2(err, O_CLOEXEC) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int in = in_fd >= 0 ? in_fd : open("/dev/null", O_RDONLY);
        if (in < 0 || dup2(in, 0) < 0 || dup2(out[1], 1) < 0 ||
            dup2(err[1], 2) < 0)
            _exit(126);
        execv(h_echokit, (char *const *)full);
        _exit(127);
    }
    close(out[1]);
    close(err[1]);

    size_t err_len = 0;
    int64_t t0 = h_now_ms(), deadline = t0 + timeout_ms;
    int64_t signal_at = signal_after_ms >= 0 ? t0 + signal_after_ms : -1;
    struct pollfd p[2] = {{.fd = out[0], .events = POLLIN},
                          {.fd = err[0], .events = POLLIN}};
    while (p[0].fd >= 0 || p[1].fd >= 0) {
        int64_t now = h_now_ms();
        if (signal_at >= 0 && now >= signal_at) {
            kill(pid, sig);
            signal_at = -1;
        }
        int64_t until = signal_at >= 0 ? signal_at : deadline;
        int left = (int)(until - now);
        if (deadline - now <= 0)
            break;
        if (left < 0)
            left = 0;
        if (poll(p, 2, left) == 0)
            continue;
        for (int i = 0; i < 2; i++) {
            if (p[i].fd < 0 || p[i].revents == 0)
                continue;
            size_t before = i == 0 ? r->out_len : err_len;
            if (i == 0)
                drain_fd(p[i].fd, r->out, sizeof(r->out), &r->out_len);
            else
                drain_fd(p[i].fd, r->err, sizeof(r->err), &err_len);
            size_t after = i == 0 ? r->out_len : err_len;
            if (after == before && (p[i].revents & (POLLHUP | POLLERR))) {
                close(p[i].fd);
                p[i].fd = -1;
            }
        }
    }
    for (int i = 0; i < 2; i++)
        if (p[i].fd >= 0)
            close(p[i].fd);

    int wstatus;
    struct rusage ru;
    for (;;) {
        pid_t w = wait4(pid, &wstatus, WNOHANG, &ru);
        if (w == pid) {
            r->status = decode_status(wstatus);
            break;
        }
        if (h_now_ms() >= deadline) {
            kill(pid, SIGKILL);
            wait4(pid, &wstatus, 0, &ru);
            r->status = -1;
            break;
        }
        h_sleep_ms(5);
    }
    r->wall_ms = h_now_ms() - t0;
    r->cpu_s = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
    r->max_rss_kb = ru.ru_maxrss;
    return r->status;
}

/* splitmix64: a counter-based generator, so any offset is computed
 * directly and two streams with different seeds are unrelated. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void h_pattern(uint64_t seed, uint64_t off, unsigned char *buf, size_t n)
{
    uint64_t key = mix(seed);
    size_t i = 0;
    while (i < n) {
        uint64_t word = mix(key ^ ((off + i) >> 3));
        unsigned shift = (unsigned)((off + i) & 7);
        for (; shift < 8 && i < n; shift++, i++)
            buf[i] = (unsigned char)(word >> (shift * 8));
    }
}

#define H_IO_BUF ((size_t)64 * 1024)

/* Per-stream diagnostics are capped: with a thousand streams failing the
 * same way, the first few say it all. */
static int h_diag_budget = 10;

static bool stream_done(const struct h_stream *s)
{
    if (s->error != 0)
        return true;
    if (s->received < s->total)
        return false;
    return !s->expect_eof || s->eof;
}

static int stream_send(struct h_stream *s, unsigned char *buf)
{
    size_t chunk = s->chunk ? s->chunk : H_IO_BUF;
    uint64_t left = s->total - s->sent;
    size_t n = left < chunk ? (size_t)left : chunk;
    if (n > H_IO_BUF)
        n = H_IO_BUF;
    h_pattern(s->seed, s->sent, buf, n);
    ssize_t w = send(s->fd, buf, n, MSG_NOSIGNAL);
    if (w < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    s->sent += (uint64_t)w;
    return w > 0;
}

static int stream_recv(struct h_stream *s, unsigned char *buf,
                       unsigned char *want)
{
    ssize_t r = recv(s->fd, buf, H_IO_BUF, 0);
    if (r < 0)
        return errno == EAGAIN || errno == EINTR ? 0 : -errno;
    if (r == 0) {
        s->eof = true;
        if (s->received < s->total) {
            if (!s->quiet && h_diag_budget-- > 0)
                fprintf(stderr, "stream %llu: EOF after %llu of %llu bytes\n",
                        (unsigned long long)s->seed,
                        (unsigned long long)s->received,
                        (unsigned long long)s->total);
            return -EPIPE;
        }
        return 1;
    }
    if (s->received + (uint64_t)r > s->sent) {
        fprintf(stderr, "stream %llu: %llu bytes back, only %llu sent\n",
                (unsigned long long)s->seed,
                (unsigned long long)s->received + (uint64_t)r,
                (unsigned long long)s->sent);
        return -EPROTO;
    }
    h_pattern(s->seed, s->received, want, (size_t)r);
    if (memcmp(buf, want, (size_t)r) != 0) {
        size_t i = 0;
        while (buf[i] == want[i])
            i++;
        fprintf(stderr,
                "stream %llu: byte %llu differs (got %02x, want "
                "%02x)\n",
                (unsigned long long)s->seed,
                (unsigned long long)s->received + i, buf[i], want[i]);
        return -EPROTO;
    }
    s->received += (uint64_t)r;
    return 1;
}

static void stream_step(struct h_stream *s, short revents, unsigned char *buf,
                        unsigned char *want, int64_t now)
{
    int rc = 0;
    if ((revents & (POLLOUT | POLLERR | POLLHUP)) && s->sent < s->total) {
        rc = stream_send(s, buf);
        if (rc > 0)
            s->last_progress = now;
    }
    if (rc >= 0 && !s->no_read && (revents & (POLLIN | POLLERR | POLLHUP)) &&
        !s->eof) {
        rc = stream_recv(s, buf, want);
        if (rc > 0)
            s->last_progress = now;
    }
    if (rc >= 0 && s->shut_wr && s->sent == s->total && !s->wr_closed) {
        if (shutdown(s->fd, SHUT_WR) < 0)
            rc = -errno;
        s->wr_closed = true;
    }
    if (rc < 0)
        s->error = -rc;
}

/* Both ends of a TCP connection as the kernel sees them (queues, windows,
 * timers, retransmissions), for a stream that stopped moving: tells a
 * stalled server from a stalled TCP. */
static void print_tcp_ends(int fd)
{
    struct sockaddr_storage a = {0};
    socklen_t len = sizeof(a);
    if (getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return;
    unsigned port;
    if (a.ss_family == AF_INET)
        port = ntohs(((struct sockaddr_in *)&a)->sin_port);
    else if (a.ss_family == AF_INET6)
        port = ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
    else
        return; /* a unix socket: nothing ss can filter on */
    char cmd[160];
    snprintf(cmd, sizeof(cmd),
             "ss -tnmio '( sport = :%u or dport = :%u )' 2>/dev/null | "
             "sed 's/^/    /' >&2",
             port, port);
    if (system(cmd) == -1)
        fprintf(stderr, "    cannot run ss: %s\n", strerror(errno));
}

int h_streams_run(struct h_stream *v, size_t n, int timeout_ms, int stall_ms)
{
    struct pollfd *p = calloc(n, sizeof(*p));
    unsigned char *buf = calloc(1, H_IO_BUF), *want = calloc(1, H_IO_BUF);
    CHECK(p != NULL && buf != NULL && want != NULL);
    int64_t start = h_now_ms(), deadline = start + timeout_ms;
    int64_t last_any = start;
    int result = -1;

    for (size_t i = 0; i < n; i++)
        if (v[i].last_progress == 0)
            v[i].last_progress = start;
    for (;;) {
        size_t open = 0;
        for (size_t i = 0; i < n; i++) {
            struct h_stream *s = &v[i];
            short ev = 0;
            if (!stream_done(s)) {
                if (s->sent < s->total)
                    ev |= POLLOUT;
                if (!s->no_read && !s->eof)
                    ev |= POLLIN;
                if (s->shut_wr && s->sent == s->total && !s->wr_closed)
                    ev |= POLLOUT;
                open++;
            }
            p[i] = (struct pollfd){.fd = ev ? s->fd : -1, .events = ev};
        }
        if (open == 0) {
            result = 0;
            for (size_t i = 0; i < n; i++)
                if (v[i].error != 0) {
                    if (!v[i].quiet && h_diag_budget-- > 0)
                        fprintf(stderr,
                                "stream %zu (seed %llu): %s after %llu "
                                "sent, %llu received\n",
                                i, (unsigned long long)v[i].seed,
                                strerror(v[i].error),
                                (unsigned long long)v[i].sent,
                                (unsigned long long)v[i].received);
                    result = -1;
                }
            break;
        }
        int64_t now = h_now_ms();
        if (now >= deadline) {
            fprintf(stderr,
                    "streams: timeout after %d ms, %zu of %zu still "
                    "open\n",
                    timeout_ms, open, n);
            /* The ones still open tell what went wrong. */
            for (size_t i = 0, shown = 0; i < n && shown < 5; i++) {
                if (stream_done(&v[i]))
                    continue;
                fprintf(stderr,
                        "  stream %zu: sent %llu received %llu of "
                        "%llu eof %d\n",
                        i, (unsigned long long)v[i].sent,
                        (unsigned long long)v[i].received,
                        (unsigned long long)v[i].total, v[i].eof);
                print_tcp_ends(v[i].fd);
                shown++;
            }
            /* Why the kernel dropped segments, since boot: a stall with
             * data queued in the sender's socket (Send-Q) and a backed-off
             * retransmission timer is TCP's, not the server's. */
            if (system("nstat -saz 2>/dev/null | grep -E "
                       "'Drop|Window|Backlog|PAWS|Prune|Collapse|Pressure' "
                       "| awk '$2 != 0' >&2") == -1)
                fprintf(stderr, "  cannot run nstat: %s\n", strerror(errno));
            break;
        }
        if (stall_ms > 0 && now - last_any >= stall_ms) {
            result = 1;
            break;
        }
        int wait = (int)(deadline - now);
        if (stall_ms > 0 && wait > stall_ms)
            wait = stall_ms;
        int rc = poll(p, (nfds_t)n, wait);
        if (rc < 0 && errno != EINTR) {
            perror("poll");
            break;
        }
        now = h_now_ms();
        for (size_t i = 0; i < n; i++) {
            if (p[i].fd < 0 || p[i].revents == 0)
                continue;
            int64_t before = v[i].last_progress;
            stream_step(&v[i], p[i].revents, buf, want, now);
            if (v[i].last_progress != before)
                last_any = now;
        }
    }
    free(p);
    free(buf);
    free(want);
    return result;
}

void h_echo_check(int fd, uint64_t seed, uint64_t total, bool close_after)
{
    struct h_stream s = {.fd = fd, .seed = seed, .total = total};
    if (h_streams_run(&s, 1, 60000, 0) != 0) {
        fprintf(stderr, "echo of %llu bytes (seed %llu) failed\n",
                (unsigned long long)total, (unsigned long long)seed);
        exit(1);
    }
    if (close_after)
        close(fd);
}

enum fake_how { FAKE_CORRUPT, FAKE_SHORT, FAKE_SILENT };

struct fake_conn {
    int fd;
    uint64_t echoed;
    bool eof; /* silent: the client half-closed; keep the connection */
};

/* Echoes what one connection sent, misbehaving as asked. Returns false
 * when the connection is over. */
static bool fake_echo(struct fake_conn *c, enum fake_how how, uint64_t param,
                      uint64_t *total)
{
    unsigned char buf[65536];
    ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
    if (how == FAKE_SILENT) {
        c->eof = n <= 0; /* stay connected, say nothing, stop polling */
        return true;
    }
    if (n <= 0)
        return false;
    size_t len = (size_t)n;
    if (how == FAKE_SHORT && c->echoed + len >= param)
        len = (size_t)(param - c->echoed);
    for (size_t i = 0; how == FAKE_CORRUPT && i < len; i++)
        if ((*total + i + 1) % param == 0)
            buf[i] ^= 0x20;
    *total += len;
    c->echoed += len;
    for (size_t off = 0; off < len;) { /* blocking: the clients all read */
        ssize_t w = send(c->fd, buf + off, len - off, MSG_NOSIGNAL);
        if (w <= 0)
            return false;
        off += (size_t)w;
    }
    return !(how == FAKE_SHORT && c->echoed >= param);
}

static _Noreturn void fake_loop(int lfd, enum fake_how how, uint64_t param)
{
    enum { MAX = 8192 };
    static struct fake_conn conns[MAX];
    static struct pollfd p[MAX + 1];
    size_t n = 0;
    uint64_t total = 0;
    for (;;) {
        p[0] = (struct pollfd){.fd = lfd, .events = POLLIN};
        for (size_t i = 0; i < n; i++)
            p[i + 1] = (struct pollfd){.fd = conns[i].eof ? -1 : conns[i].fd,
                                       .events = POLLIN};
        if (poll(p, n + 1, -1) < 0)
            continue;
        for (size_t i = n; i-- > 0;)
            if (p[i + 1].revents && !fake_echo(&conns[i], how, param, &total)) {
                close(conns[i].fd);
                conns[i] = conns[--n];
            }
        if ((p[0].revents & POLLIN) && n < MAX) {
            int fd = accept(lfd, NULL, NULL);
            if (fd >= 0)
                conns[n++] = (struct fake_conn){.fd = fd};
        }
    }
}

int h_loopback_socket(int type, unsigned *port)
{
    /* SO_REUSEADDR, as echokit's listeners: the TIME_WAITs of the
     * connections it closes first keep it, and never block a server that
     * later binds its (ephemeral) port. */
    int fd = type == SOCK_STREAM ? h_client_socket(AF_INET)
                                 : socket(AF_INET, type | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0);
    CHECK(type != SOCK_STREAM || listen(fd, SOMAXCONN) == 0);
    CHECK(getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    *port = ntohs(a.sin_port);
    return fd;
}

pid_t h_fork_server(int fd, unsigned max_s)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        alarm(max_s);
        return 0;
    }
    close(fd);
    return pid;
}

pid_t h_fake_server(const char *how, uint64_t param, char *addr, size_t size)
{
    enum fake_how h = strcmp(how, "corrupt") == 0 ? FAKE_CORRUPT
                      : strcmp(how, "short") == 0 ? FAKE_SHORT
                                                  : FAKE_SILENT;
    unsigned port;
    int lfd = h_loopback_socket(SOCK_STREAM, &port);
    snprintf(addr, size, "127.0.0.1:%u", port);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0)
        fake_loop(lfd, h, param);
    close(lfd);
    clean_up_at_exit();
    CHECK(nfakes < H_MAX_SERVERS);
    fakes[nfakes++] = pid;
    return pid;
}

void h_fake_end(pid_t pid)
{
    for (size_t i = 0; i < nfakes; i++)
        if (fakes[i] == pid)
            fakes[i] = fakes[--nfakes];
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

bool h_json_valid(const char *text)
{
    return ek_json_parse(text, NULL) == 0;
}

bool h_json_number(const char *text, const char *key, double *out)
{
    char pattern[128];
    snprintf(pattern, sizeof(pattern), "\"%s\":", key);
    const char *p = strstr(text, pattern);
    if (p == NULL)
        return false;
    p += strlen(pattern);
    char *end;
    *out = strtod(p, &end);
    return end != p;
}
