/*
 * itest_tls: TLS listeners and clients. Certificates are made at test time
 * with the openssl command (a CA, a server certificate for localhost and
 * 127.0.0.1, a second one for other.test, a client certificate and a
 * self-signed rogue one); none is committed. The peers are the field's own
 * tools: openssl s_client, socat and ncat as clients of `echokit serve`,
 * socat as the server `echokit send --tls` talks to.
 */
#include "check.h"
#include "itest.h"

#ifndef EK_HAVE_TLS
#include "ek_tls.h"

#define NO_TLS(name)                                                           \
    void case_##name(void)                                                     \
    {                                                                          \
        SKIP("%s", EK_TLS_UNAVAILABLE);                                        \
    }
NO_TLS(tls_echo)
NO_TLS(tls_bad_input)
NO_TLS(tls_proxy)
NO_TLS(tls_slow_reader)
NO_TLS(tls_idle_drain)
NO_TLS(tls_half_close)
NO_TLS(tls_reload_ca)
NO_TLS(tls_features)
NO_TLS(tls_client)
NO_TLS(tls_client_timeout)
NO_TLS(tls_truncation)
NO_TLS(tls_file_errors)
NO_TLS(tls_hello_bound)
NO_TLS(tls_clock_counts)
NO_TLS(tls_alert)
NO_TLS(tls_burst_idle)
NO_TLS(tls_ticket_rotate)
NO_TLS(tls_ciphers)
NO_TLS(tls_flight_bound)
#else
#include "ek_cli.h"
#include "ek_conn.h"
#include "ek_model.h"
#include "ek_proc.h"
#include "ek_tls_hello.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/ssl.h>

/* ---- helpers ---------------------------------------------------------- */

static char dir[256]; /* where the certificates are */

static const char *path(const char *name)
{
    static char buf[8][320];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof(buf[0]), "%s/%s", dir, name);
    return p;
}

/* Whether a command is on PATH. */
static bool have(const char *cmd)
{
    char line[256];
    snprintf(line, sizeof(line), "command -v %s >/dev/null 2>&1", cmd);
    return system(line) == 0;
}

/* A CA, and certificates it signs: server (localhost, 127.0.0.1, ::1),
 * other (other.test), client; rogue is self-signed. ECDSA P-256. */
static void make_certs(void)
{
    if (!have("openssl"))
        SKIP("no openssl command to make test certificates (Debian: openssl)");
    snprintf(dir, sizeof(dir), "%s/tls", h_tmpdir());
    char cmd[4096];
    snprintf(
        cmd, sizeof(cmd),
        "set -e; mkdir -p %s; cd %s; "
        "key() { openssl genpkey -algorithm EC -pkeyopt "
        "ec_paramgen_curve:P-256 -out $1.key 2>/dev/null; }; "
        "key ca; openssl req -x509 -new -key ca.key -out ca.pem -days 2 "
        "-subj /CN=echokit-test-ca 2>/dev/null; "
        "sign() { key $1; openssl req -new -key $1.key -subj /CN=$2 -out "
        "$1.csr 2>/dev/null; printf 'subjectAltName=%%s\\n' \"$3\" > $1.ext; "
        "openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca.key "
        "-CAcreateserial -days 2 -extfile $1.ext -out $1.pem 2>/dev/null; }; "
        "sign server localhost 'DNS:localhost,IP:127.0.0.1,IP:::1'; "
        "sign other other.test 'DNS:other.test'; "
        "sign client echokit-client 'DNS:client.test'; "
        "key rogue; openssl req -x509 -new -key rogue.key -out rogue.pem "
        "-days 2 -subj /CN=rogue 2>/dev/null",
        dir, dir);
    CHECK_INT(system(cmd), ==, 0);
}

/* A command with stdin and stdout on pipes. */
struct child {
    pid_t pid;
    int in, out; /* its stdin (ours to write), its stdout */
};

static void spawn(struct child *c, const char *const *argv)
{
    int in[2], out[2];
    /* Close-on-exec: the child must not hold our end of its own stdin
     * (it would never see its end), nor a later child's. */
    CHECK(pipe2(in, O_CLOEXEC) == 0 && pipe2(out, O_CLOEXEC) == 0);
    c->pid = fork();
    CHECK(c->pid >= 0);
    if (c->pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        int null = open("/dev/null", O_WRONLY);
        dup2(null, STDERR_FILENO);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    c->in = in[1];
    c->out = out[0];
    fcntl(c->in, F_SETFL, O_NONBLOCK);
    fcntl(c->out, F_SETFL, O_NONBLOCK);
}

/* Waits up to timeout_ms for the child's exit; kills it after. Returns
 * its status (-1: killed). */
static int child_end(struct child *c, int timeout_ms)
{
    if (c->in >= 0)
        close(c->in);
    close(c->out);
    int64_t end = h_now_ms() + timeout_ms;
    int st;
    while (waitpid(c->pid, &st, WNOHANG) == 0) {
        if (h_now_ms() >= end) {
            kill(c->pid, SIGKILL);
            waitpid(c->pid, &st, 0);
            return -1;
        }
        h_sleep_ms(10);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Writes n bytes of data to the child while reading its stdout into got,
 * until `want` bytes came back (or EOF, or timeout_ms), closing its stdin
 * after the last byte with end_after_send. Returns how many came back. */
static size_t exchange(struct child *c, const unsigned char *data, size_t n,
                       unsigned char *got, size_t want, int timeout_ms,
                       bool end_after_send)
{
    size_t sent = 0, recvd = 0;
    int64_t end = h_now_ms() + timeout_ms;
    while (recvd < want && h_now_ms() < end) {
        struct pollfd p[2] = {{.fd = c->out, .events = POLLIN},
                              {.fd = sent < n ? c->in : -1, .events = POLLOUT}};
        if (poll(p, 2, 100) < 0)
            continue;
        if (p[1].revents) {
            ssize_t w = write(c->in, data + sent, n - sent);
            if (w > 0)
                sent += (size_t)w;
            if (sent == n && end_after_send) {
                close(c->in);
                c->in = -1;
            }
        }
        if (p[0].revents) {
            ssize_t r = read(c->out, got + recvd, want - recvd);
            if (r == 0)
                break;
            if (r > 0)
                recvd += (size_t)r;
        }
    }
    return recvd;
}

/* Sends line (to an s_client child) and checks that it comes back as it
 * was, within 5 s. */
static void echo_line(struct child *c, const char *line)
{
    unsigned char got[64];
    size_t n = strlen(line);
    CHECK(n <= sizeof(got));
    CHECK_INT(exchange(c, (const unsigned char *)line, n, got, n, 5000, false),
              ==, n);
    CHECK(memcmp(got, line, n) == 0);
}

/* One MiB through a client command, checked byte for byte. The command
 * gets stdin's end once the echo is all back (s_client would otherwise
 * quit at stdin's end with the echo still on its way), or, with
 * end_after_send, once all is sent: ncat reads the socket only when it is
 * readable, so the records OpenSSL holds for it (its last 8 KiB) come out
 * only when the server's close_notify arrives. */
static void mib_through(const char *what, const char *const *argv,
                        bool end_after_send)
{
    static unsigned char data[1 << 20], got[1 << 20];
    h_pattern(4242, 0, data, sizeof(data));
    memset(got, 0, sizeof(got));
    struct child c;
    spawn(&c, argv);
    size_t n = exchange(&c, data, sizeof(data), got, sizeof(got), 30000,
                        end_after_send);
    child_end(&c, 5000);
    if (n != sizeof(data) || memcmp(data, got, n) != 0) {
        fprintf(stderr, "%s: %zu of %zu bytes came back%s\n", what, n,
                sizeof(data), n == sizeof(data) ? ", and differ" : "");
        exit(1);
    }
}

/* The server under test with a TLS listener (addrs[0]) and a plain one
 * (addrs[1]), the test's certificate, and extra arguments. */
static void start_tls(struct h_server *s, const char *const *extra)
{
    if (!model_has(EK_CAP_TLS))
        SKIP("--io %s serves no tls: listeners yet", tested_model()->name);
    const char *args[40] = {
        "--listen",   "tls:127.0.0.1:0",  "--listen",  "127.0.0.1:0",
        "--tls-cert", path("server.pem"), "--tls-key", path("server.key")};
    size_t n = 8;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 39; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    h_server_start_or_skip(s, model, args, 2);
    CHECK(strncmp(s->addrs[0], "tls:", 4) == 0);
}

/* A server with --io io (NULL: the default model) and a TLS listener
 * alone, the test's certificate, and extra arguments. */
static void start_tls_only(struct h_server *s, const char *io,
                           const char *const *extra)
{
    const char *args[40] = {"--listen",   "tls:127.0.0.1:0",
                            "--tls-cert", path("server.pem"),
                            "--tls-key",  path("server.key")};
    size_t n = 6;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 39; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    h_server_start_or_skip(s, io, args, 1);
}

/* "127.0.0.1:PORT" of a listener printed as "tls:127.0.0.1:PORT". */
static const char *bare(const char *addr)
{
    return strncmp(addr, "tls:", 4) == 0 ? addr + 4 : addr;
}

static const char *port_of(const char *addr)
{
    return strrchr(addr, ':') + 1;
}

/* The client side of TLS from echokit's own library, on fd (connected),
 * trusting the test CA and checking host, with the client certificate
 * cert and its key (NULL: none); the handshake starts with the first read
 * or write. */
static void library_client_as(int fd, const char *host, const char *cert,
                              const char *key, struct ek_tls_client **tc,
                              struct ek_conn *c)
{
    struct ek_tls_client_options o = {
        .ca = path("ca.pem"), .cert = cert, .key = key};
    CHECK_INT(ek_tls_client_new(&o, tc), ==, 0);
    CHECK_INT(ek_client_conn_open("itest", *tc, c, fd, host), ==, 0);
}

static void library_client(int fd, const char *host, struct ek_tls_client **tc,
                           struct ek_conn *c)
{
    library_client_as(fd, host, NULL, NULL, tc, c);
}

/* The handshake of c on fd, waited for up to 5 s: as ek_tls_handshake. */
static int handshake_done(struct ek_conn *c, int fd)
{
    unsigned wait = 0;
    int rc;
    int64_t end = h_now_ms() + 5000;
    while ((rc = ek_tls_handshake(c, fd, &wait)) == -EAGAIN && h_now_ms() < end)
        poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1, 50);
    return rc;
}

static void library_client_end(struct ek_tls_client *tc, struct ek_conn *c)
{
    ek_conn_release(c);
    ek_client_tls_free(tc);
}

/* The TLS client of echokit's own library, in this process: the
 * handshake and a 64 KiB echo on fd, already connected (and maybe past a
 * PROXY header). Returns 0, or -errno. */
/* A 64 KiB echo through c, on fd, its handshake done or not. Returns 0,
 * or -errno. */
static int library_echo_conn(struct ek_conn *c, int fd)
{
    static unsigned char data[64 * 1024], got[64 * 1024];
    h_pattern(99, 0, data, sizeof(data));
    size_t sent = 0, recvd = 0;
    int err = 0;
    int64_t end = h_now_ms() + 10000;
    while (recvd < sizeof(got) && err == 0 && h_now_ms() < end) {
        if (sent < sizeof(data)) {
            struct iovec iov = {.iov_base = data + sent,
                                .iov_len = sizeof(data) - sent};
            ssize_t w = ek_conn_tp(c)->writev(c, fd, &iov, 1);
            if (w > 0)
                sent += (size_t)w;
            else if (w != -EAGAIN)
                err = (int)w;
        }
        ssize_t r =
            ek_conn_tp(c)->read(c, fd, got + recvd, sizeof(got) - recvd);
        if (r > 0)
            recvd += (size_t)r;
        else if (r == 0)
            err = -ECONNRESET;
        else if (r != -EAGAIN)
            err = (int)r;
        else
            poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1, 10);
    }
    if (err == 0 && (recvd != sizeof(got) || memcmp(data, got, recvd) != 0))
        err = -EIO;
    return err;
}

static int library_echo(int fd, const char *host)
{
    struct ek_tls_client *tc;
    struct ek_conn c;
    library_client(fd, host, &tc, &c);
    int err = library_echo_conn(&c, fd);
    library_client_end(tc, &c);
    return err;
}

/* Whether this kernel takes TLS (the "tls" upper layer protocol): on a
 * connected TCP socket, setsockopt(TCP_ULP, "tls") fails with ENOENT
 * when the module is missing. */
static bool kernel_has_tls(void)
{
    int ls = h_client_socket(AF_INET);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    CHECK(bind(ls, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
          listen(ls, 1) == 0 &&
          getsockname(ls, (struct sockaddr *)&sa, &len) == 0);
    int c = h_client_socket(AF_INET);
    CHECK(connect(c, (struct sockaddr *)&sa, sizeof(sa)) == 0);
    bool has = setsockopt(c, IPPROTO_TCP, TCP_ULP, "tls", 3) == 0;
    printf("kernel TLS: %s\n",
           has ? "this kernel has it" : "this kernel has no tls module");
    close(c);
    close(ls);
    return has;
}

/* The TLS counter of the server's metrics at addr. */
static long long tls_metric(const char *maddr, const char *name)
{
    char body[8192];
    CHECK_INT(http_get(maddr, "/metrics", body, sizeof(body)), ==, 200);
    return metric(body, name);
}

/* A plain connection kept open beside the TLS ones, on the models that
 * serve more than one client at a time; -1 on the others. */
static int open_beside(struct h_server *s)
{
    if (!model_has(EK_CAP_CONCURRENT))
        return -1;
    int fd = h_connect_or_die(s->addrs[1]);
    CHECK(quick_echo(fd, 1, 5000));
    return fd;
}

/* It still echoes. */
static void check_beside(int fd)
{
    if (fd < 0)
        return;
    CHECK(quick_echo(fd, 2, 5000));
    close(fd);
}

#define FAILED(reason)                                                         \
    "echokit_tls_handshake_failures_total{reason=\"" reason "\"}"

/* ---- cases ------------------------------------------------------------ */

/* The clients of the field against every model: s_client (TLS 1.3 and
 * 1.2), socat, ncat and echokit send each exchange 1 MiB, verified; the
 * plain listener beside goes on. */
void case_tls_echo(void)
{
    make_certs();
    struct h_server s;
    char maddr[256];
    const char *extra[] = {"--metrics", "127.0.0.1:0", "-v", NULL};
    start_tls(&s, extra);
    metrics_addr(&s, maddr, sizeof(maddr));
    const char *addr = bare(s.addrs[0]);
    int plain = open_beside(&s);

    char connect[300];
    snprintf(connect, sizeof(connect), "localhost:%s", port_of(addr));
    for (int v = 0; v < 2; v++) {
        const char *s_client[] = {"openssl", "s_client", "-connect", addr,
                                  "-CAfile", path("ca.pem"),
                                  "-verify_return_error",
                                  /* quiet, but quits at stdin's end, and
                                     takes no "Q" or "R" line of the data
                                     for a command */
                                  "-quiet", "-no_ign_eof", "-nocommands",
                                  v ? "-tls1_2" : "-tls1_3", NULL};
        mib_through(v ? "s_client -tls1_2" : "s_client -tls1_3", s_client,
                    false);
    }
    CHECK(log_shows(&s, "TLSv1.2", 5000));
    CHECK(log_shows(&s, "TLSv1.3", 5000));

    if (have("socat")) {
        char target[400];
        snprintf(target, sizeof(target), "OPENSSL:%s,cafile=%s", connect,
                 path("ca.pem"));
        const char *socat[] = {"socat", "-t", "10", "-", target, NULL};
        mib_through("socat", socat, false);
    } else {
        printf("socat: not installed, not run (Debian: socat)\n");
    }
    if (have("ncat")) {
        const char *ncat[] = {
            "ncat",         "--ssl",     "--ssl-verify", "--ssl-trustfile",
            path("ca.pem"), "localhost", port_of(addr),  NULL};
        mib_through("ncat --ssl", ncat, true);
    } else {
        printf("ncat: not installed, not run (Debian: ncat)\n");
    }

    /* echokit's own client: a message, and 1 MiB through pipe mode. */
    struct h_run r;
    const char *hello[] = {"send",         "--tls", "--tls-ca",
                           path("ca.pem"), addr,    NULL};
    CHECK_INT(h_run_echokit(hello, -1, 10000, &r), ==, 0);
    CHECK_STR(r.out, "Received 'Hello, world'\n");
    int in = write_temp_file("mib", 77, 1 << 20);
    const char *pipe_mode[] = {
        "send",     "--tls",    "--tls-ca", path("ca.pem"),
        "--verify", s.addrs[0], "-",        NULL};
    CHECK_INT(h_run_echokit(pipe_mode, in, 20000, &r), ==, 0);
    close(in);

    check_beside(plain);
    CHECK(tls_metric(maddr, "echokit_tls_handshakes_total") >= 6);

    /* The connection rate over TLS, sessions resumed: the server counts
     * what bench saw. */
    double done, resumed;
    const char *rate[] = {"bench",    "-m",           "connect",      "--tls",
                          "--tls-ca", path("ca.pem"), "--tls-resume", "-c",
                          "2",        "-t",           "0.5",          "-w",
                          "0",        "--json",       addr,           NULL};
    CHECK_INT(h_run_echokit(rate, -1, 30000, &r), ==, 0);
    CHECK(h_json_number(r.out, "conns_done", &done) && done > 5);
    CHECK(h_json_number(r.out, "conns_resumed", &resumed) && resumed > 0);
    CHECK_CONTAINS(r.out, "\"handshake_us\":{");
    CHECK(tls_metric(maddr, "echokit_tls_resumed_total") >= (long long)resumed);

    /* A stream over TLS: every byte checked, and only the window's
     * counted. A bench worker once stayed in the read loop of a connection
     * whose records kept coming, past the window: 8.6 GB "in" 0.5 s. What
     * one client CPU second can encrypt, decrypt and check is far below
     * 4 GiB. */
    double bytes, cpu;
    int64_t t0 = h_now_ms();
    const char *stream[] = {
        "bench", "-m", "stream", "--tls", "--insecure", "-c",     "1",  "-s",
        "65536", "-t", "0.5",    "-w",    "0.1",        "--json", addr, NULL};
    CHECK_INT(h_run_echokit(stream, -1, 30000, &r), ==, 0);
    CHECK(h_now_ms() - t0 < 10000);
    CHECK(h_json_number(r.out, "bytes", &bytes) && bytes > 0);
    CHECK(h_json_number(r.out, "client_cpu_s", &cpu));
    CHECK(bytes < 4.0 * 1024 * 1024 * 1024 * (cpu > 0.05 ? cpu : 0.05));
    stop_ok(&s);
}

/* What is not TLS, or not a finished handshake, is closed with nothing
 * echoed and counted by reason, while the other connections go on. */
void case_tls_bad_input(void)
{
    make_certs();
    struct h_server s;
    char maddr[256];
    const char *extra[] = {
        "--metrics", "127.0.0.1:0", "--tls-handshake-timeout", "1", "-v", NULL};
    start_tls(&s, extra);
    metrics_addr(&s, maddr, sizeof(maddr));
    const char *addr = bare(s.addrs[0]);
    int plain = open_beside(&s);

    /* Plain text, HTTP, random bytes: protocol errors, nothing echoed. */
    static const char text[] = "hello, plain text\n";
    static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    unsigned char noise[4096];
    h_pattern(5, 0, noise, sizeof(noise));
    const struct {
        const void *p;
        size_t n;
    } garbage[] = {{text, sizeof(text) - 1},
                   {http, sizeof(http) - 1},
                   {noise, sizeof(noise)}};
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        int fd = h_connect_or_die(addr);
        CHECK(send(fd, garbage[i].p, garbage[i].n, MSG_NOSIGNAL) > 0);
        CHECK(closed_by_peer(fd, 5000)); /* an alert at most, never an echo */
        char buf[64];
        ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        CHECK(n <= 0 || memcmp(buf, garbage[i].p, 4) != 0);
        close(fd);
    }
    CHECK_INT(metric_becomes(maddr, FAILED("protocol"), 3), ==, 3);

    /* A ClientHello cut short and left there, and a client that says
     * nothing: closed at the handshake deadline (1 s). */
    static const unsigned char hello_start[] = {0x16, 0x03, 0x01, 0x00, 0xc8,
                                                0x01, 0x00, 0x00, 0xc4, 0x03,
                                                0x03, 0x11, 0x22, 0x33};
    int cut = h_connect_or_die(addr);
    CHECK(send(cut, hello_start, sizeof(hello_start), MSG_NOSIGNAL) > 0);
    int mute = h_connect_or_die(addr);
    int64_t t0 = h_now_ms();
    CHECK(closed_by_peer(cut, 5000));
    CHECK(closed_by_peer(mute, 5000));
    CHECK(h_now_ms() - t0 >= 900);
    close(cut);
    close(mute);
    CHECK_INT(metric_becomes(maddr, FAILED("timeout"), 2), ==, 2);

    /* The same ClientHello start, then the client leaves. */
    int gone = h_connect_or_die(addr);
    CHECK(send(gone, hello_start, sizeof(hello_start), MSG_NOSIGNAL) > 0);
    h_sleep_ms(50);
    close(gone);
    CHECK_INT(metric_becomes(maddr, FAILED("closed"), 1), ==, 1);

    /* TLS 1.2 renegotiation asked by the client ("R" to s_client). */
    const char *reneg[] = {"openssl", "s_client", "-connect",     addr,
                           "-tls1_2", "-CAfile",  path("ca.pem"), NULL};
    struct child c;
    spawn(&c, reneg);
    h_sleep_ms(500); /* the handshake first: s_client reads commands after */
    CHECK(write(c.in, "R\n", 2) == 2);
    CHECK_INT(metric_becomes(maddr, FAILED("renegotiation"), 1), ==, 1);
    child_end(&c, 5000);

    /* The connection beside went on, and new ones are served. */
    check_beside(plain);
    struct h_run r;
    const char *hello[] = {"send",         "--tls", "--tls-ca",
                           path("ca.pem"), addr,    NULL};
    CHECK_INT(h_run_echokit(hello, -1, 10000, &r), ==, 0);
    CHECK_INT(tls_metric(maddr, FAILED("client_cert")), ==, 0);
    stop_ok(&s);
}

/* A TLS client that writes and does not read: the server stops reading it
 * within --max-queue plus TLS's own (OpenSSL's state and record buffers,
 * the handshake's flight), on every model; every byte comes back once it
 * reads. */
void case_tls_slow_reader(void)
{
    make_certs();
    struct h_server s;
    const char *extra[] = {"--max-queue", "64K", NULL};
    start_tls(&s, extra);
    int fd = h_connect_or_die(bare(s.addrs[0]));
    struct ek_tls_client *tc;
    struct ek_conn c;
    library_client(fd, "localhost", &tc, &c);
    h_sleep_ms(200);
    long base = ek_proc_mem_kb(s.pid, "Pss");

    /* Write without reading until nothing moves for a second. */
    static unsigned char chunk[16384];
    uint64_t sent = 0, limit = 64 * MiB;
    int64_t last_move = h_now_ms();
    while (sent < limit && h_now_ms() - last_move < 1000) {
        h_pattern(7, sent, chunk, sizeof(chunk));
        struct iovec iov = {.iov_base = chunk, .iov_len = sizeof(chunk)};
        ssize_t w = ek_conn_tp(&c)->writev(&c, fd, &iov, 1);
        if (w > 0) {
            sent += (uint64_t)w;
            last_move = h_now_ms();
        } else {
            CHECK_INT(w, ==, -EAGAIN);
            poll(&(struct pollfd){.fd = fd, .events = POLLOUT}, 1, 100);
        }
    }
    CHECK(sent < limit); /* the server stopped reading */
    h_sleep_ms(300);
    long stalled = ek_proc_mem_kb(s.pid, "Pss");
    printf("%s: TLS slow reader: server stopped reading after %llu bytes; "
           "server PSS %ld KiB (+%ld KiB)\n",
           model, (unsigned long long)sent, stalled, stalled - base);
#ifndef EK_TEST_TSAN
    /* 64 KiB of queue, OpenSSL's 2 x 17 KiB of record buffers and its
     * state, a thread's stack or a child's pages: well under 16 MiB. */
    CHECK_INT(stalled - base, <, MEM_SLACK * 16 * 1024);
#endif

    /* Now read: every byte comes back, in order. */
    static unsigned char got[65536], want[65536];
    uint64_t recvd = 0;
    int64_t end = h_now_ms() + 60000;
    while (recvd < sent && h_now_ms() < end) {
        size_t k =
            sent - recvd < sizeof(got) ? (size_t)(sent - recvd) : sizeof(got);
        ssize_t r = ek_conn_tp(&c)->read(&c, fd, got, k);
        if (r > 0) {
            h_pattern(7, recvd, want, (size_t)r);
            CHECK(memcmp(got, want, (size_t)r) == 0);
            recvd += (uint64_t)r;
        } else {
            CHECK_INT(r, ==, -EAGAIN);
            poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1, 100);
        }
    }
    CHECK_INT(recvd, ==, sent);
    library_client_end(tc, &c);
    close(fd);
    stop_ok(&s);
}

/* The client's last data and its close_notify in one segment, TCP left
 * open: the server reads the end right after the data (no readiness
 * comes for it), echoes the data, sends its own close_notify and closes.
 * The readiness loops used to keep the end in OpenSSL unread: the echo
 * came back, the close_notify never did (found by review). */
void case_tls_half_close(void)
{
    make_certs();
    struct h_server s;
    start_tls(&s, NULL);
    int fd = h_connect_or_die(bare(s.addrs[0]));
    struct ek_tls_client *tc;
    struct ek_conn c;
    library_client(fd, "localhost", &tc, &c);
    CHECK_INT(handshake_done(&c, fd), ==, 0);
    h_sleep_ms(100); /* the server's tickets, read now, not with the end */
    unsigned char buf[256];
    CHECK_INT(ek_conn_tp(&c)->read(&c, fd, buf, sizeof(buf)), ==, -EAGAIN);

    int on = 1, off = 0;
    CHECK(setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on)) == 0);
    static const char msg[] = "the last words";
    struct iovec iov = {.iov_base = (void *)msg, .iov_len = sizeof(msg) - 1};
    CHECK_INT(ek_conn_tp(&c)->writev(&c, fd, &iov, 1), ==, sizeof(msg) - 1);
    CHECK_INT(ek_conn_tp(&c)->finish(&c, fd), ==, 0); /* close_notify */
    CHECK(setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof(off)) == 0);

    size_t got = 0;
    ssize_t n = -EAGAIN;
    int64_t end = h_now_ms() + 3000;
    while (h_now_ms() < end) {
        n = ek_conn_tp(&c)->read(&c, fd, buf + got, sizeof(buf) - got);
        if (n > 0)
            got += (size_t)n;
        else if (n == -EAGAIN)
            poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1, 50);
        else
            break;
    }
    CHECK_INT(got, ==, sizeof(msg) - 1);
    CHECK(memcmp(buf, msg, got) == 0);
    CHECK_INT(n, ==, 0); /* the server's close_notify */
    library_client_end(tc, &c);
    close(fd);
    stop_ok(&s);
}

/* A PROXY header before the ClientHello, in the same segment. */
void case_tls_proxy(void)
{
    make_certs();
    struct h_server s;
    const char *extra[] = {"--proxy-protocol", "-v", NULL};
    start_tls(&s, extra);
    int fd = h_connect_or_die(bare(s.addrs[0]));
    static const char v1[] = "PROXY TCP4 192.0.2.9 127.0.0.1 40009 7\r\n";
    /* MSG_MORE: held back, to leave in one segment with the ClientHello
     * (the server must not take the start of the handshake for data). */
    CHECK(send(fd, v1, sizeof(v1) - 1, MSG_NOSIGNAL | MSG_MORE) ==
          (ssize_t)sizeof(v1) - 1);
    CHECK_INT(library_echo(fd, "localhost"), ==, 0);
    close(fd);
    CHECK(log_shows(&s, "connection from 192.0.2.9:40009 via PROXY v1", 5000));
    stop_ok(&s);
}

/* Runs `echokit send --tls ARGS... ADDR` with a message: its exit status. */
static int send_tls(const char *addr, const char *const *args, struct h_run *r)
{
    const char *argv[24] = {"send", "--tls"};
    size_t n = 2;
    for (size_t i = 0; args[i] != NULL && n < 20; i++)
        argv[n++] = args[i];
    argv[n++] = addr;
    argv[n++] = "tls";
    argv[n] = NULL;
    return h_run_echokit(argv, -1, 10000, r);
}

/* s_client's report of one connection with extra options and no data:
 * its stdout into out. */
static void s_client_report(const char *addr, const char *const *opts,
                            char *out, size_t size)
{
    const char *argv[24] = {"openssl", "s_client", "-connect",
                            addr,      "-CAfile",  path("ca.pem")};
    size_t n = 6;
    for (size_t i = 0; opts[i] != NULL && n < 23; i++)
        argv[n++] = opts[i];
    argv[n] = NULL;
    struct child c;
    spawn(&c, argv);
    /* s_client prints the session once the handshake is done, and quits
     * at stdin's end; its report and tickets need a moment. */
    h_sleep_ms(300);
    close(c.in);
    c.in = -1;
    size_t len = 0;
    int64_t end = h_now_ms() + 5000;
    while (len + 1 < size && h_now_ms() < end) {
        poll(&(struct pollfd){.fd = c.out, .events = POLLIN}, 1, 100);
        ssize_t k = read(c.out, out + len, size - 1 - len);
        if (k == 0)
            break;
        if (k > 0)
            len += (size_t)k;
    }
    out[len] = '\0';
    child_end(&c, 5000);
}

/* Mutual TLS (and no resumption under it), SNI, ALPN, the lowest version,
 * kernel TLS's fallback, and a reload by SIGHUP while a connection goes
 * on. */
void case_tls_features(void)
{
    make_certs();
    struct h_server s;
    struct h_run r;
    char maddr[256], report[16384];
    const char *args[] = {"--listen",
                          "tls:127.0.0.1:0",
                          "--tls-cert",
                          path("server.pem"),
                          "--tls-key",
                          path("server.key"),
                          "--tls-cert",
                          path("other.pem"),
                          "--tls-key",
                          path("other.key"),
                          "--tls-client-ca",
                          path("ca.pem"),
                          "--tls-alpn",
                          "echo,h2",
                          "--ktls",
                          "--metrics",
                          "127.0.0.1:0",
                          "-v",
                          NULL};
    CHECK_INT(h_server_start(&s, NULL, args, 1, 0), ==, 0);
    metrics_addr(&s, maddr, sizeof(maddr));
    const char *addr = bare(s.addrs[0]);

    /* mTLS: a client certificate the CA signed is accepted; none, or a
     * self-signed one, is refused and counted. */
    const char *mine[] = {
        "--tls-ca",  path("ca.pem"),     "--tls-cert", path("client.pem"),
        "--tls-key", path("client.key"), NULL};
    CHECK_INT(send_tls(addr, mine, &r), ==, 0);
    CHECK_STR(r.out, "Received 'tls'\n");
    const char *none[] = {"--tls-ca", path("ca.pem"), NULL};
    CHECK_INT(send_tls(addr, none, &r), !=, 0);
    const char *rogue[] = {
        "--tls-ca",  path("ca.pem"),    "--tls-cert", path("rogue.pem"),
        "--tls-key", path("rogue.key"), NULL};
    CHECK_INT(send_tls(addr, rogue, &r), !=, 0);
    CHECK_INT(metric_becomes(maddr, FAILED("client_cert"), 2), ==, 2);

    /* SNI: other.test gets the certificate that names it (send verifies
     * the name it asked for); localhost and no SNI the first. */
    const char *other[] = {
        "--sni",        "other.test",       "--tls-ca",
        path("ca.pem"), "--tls-cert",       path("client.pem"),
        "--tls-key",    path("client.key"), NULL};
    CHECK_INT(send_tls(addr, other, &r), ==, 0);
    const char *wrong[] = {
        "--sni",        "nowhere.test",     "--tls-ca",
        path("ca.pem"), "--tls-cert",       path("client.pem"),
        "--tls-key",    path("client.key"), NULL};
    CHECK_INT(send_tls(addr, wrong, &r), ==, EK_EXIT_TLS);
    CHECK_CONTAINS(r.err, "hostname mismatch");

    /* ALPN: our first protocol the client offers. Under mTLS no session
     * resumes (issue 20, finding 8: a session skipped the certificate for
     * two hours): the server issues no ticket, so s_client has no session
     * to save (-sess_out), and every connection shows its certificate. */
    const char *alpn[] = {
        "-cert", path("client.pem"), "-key",      path("client.key"),
        "-alpn", "h2,echo",          "-sess_out", path("session.pem"),
        NULL};
    unlink(path("session.pem"));
    s_client_report(addr, alpn, report, sizeof(report));
    CHECK_CONTAINS(report, "ALPN protocol: echo");
    CHECK_CONTAINS(report, "New, TLSv1.3");
    CHECK(access(path("session.pem"), F_OK) != 0);
    CHECK_INT(tls_metric(maddr, "echokit_tls_resumed_total"), ==, 0);

    /* Kernel TLS asked: whether the kernel took it is logged (this
     * machine's kernel has no tls module: both "no", and the echo went on
     * in user space all the same, as the sends above show). */
    CHECK(log_shows(&s, "kernel TLS: send ", 5000));
    if (!kernel_has_tls())
        CHECK(log_shows(&s, "kernel TLS: send no, receive no", 5000));

    /* SIGHUP: a connection opened before goes on with its session, a new
     * one gets the certificate now in the files (other.pem's). */
    const char *keep[] = {
        "openssl", "s_client",         "-connect", addr,
        "-CAfile", path("ca.pem"),     "-cert",    path("client.pem"),
        "-key",    path("client.key"), "-quiet",   NULL};
    struct child c;
    spawn(&c, keep);
    echo_line(&c, "one\n");
    char swap[1024];
    snprintf(swap, sizeof(swap), "cp %s %s && cp %s %s", path("other.pem"),
             path("server.pem"), path("other.key"), path("server.key"));
    CHECK_INT(system(swap), ==, 0);
    kill(s.pid, SIGHUP);
    CHECK(log_shows(&s, "SIGHUP: 2 certificates reloaded", 5000));
    echo_line(&c, "two\n");
    child_end(&c, 5000);
    const char *fresh[] = {
        "-cert",       path("client.pem"), "-key", path("client.key"),
        "-servername", "localhost",        NULL};
    s_client_report(addr, fresh, report, sizeof(report));
    CHECK_CONTAINS(report, "CN = other.test");
    stop_ok(&s);

    /* --tls-min-version 1.3 refuses a TLS 1.2 client. */
    const char *strict[] = {"--listen",
                            "tls:127.0.0.1:0",
                            "--tls-cert",
                            path("client.pem"),
                            "--tls-key",
                            path("client.key"),
                            "--tls-min-version",
                            "1.3",
                            NULL};
    CHECK_INT(h_server_start(&s, NULL, strict, 1, 0), ==, 0);
    const char *tls12[] = {"-tls1_2", NULL};
    s_client_report(bare(s.addrs[0]), tls12, report, sizeof(report));
    CHECK(strstr(report, "Cipher is (NONE)") != NULL ||
          strstr(report, "Cipher    : 0000") != NULL ||
          strstr(report, "TLSv1.2") == NULL);
    stop_ok(&s);
}

/* --idle-timeout and the drain, over TLS: an idle TLS client is closed
 * when its time is up; one that is busy when SIGTERM comes goes on until
 * it closes, and the server then exits 0. */
void case_tls_idle_drain(void)
{
    make_certs();
    struct h_server s;
    char maddr[256];
    const char *extra[] = {"--idle-timeout", "1", "--metrics", "127.0.0.1:0",
                           NULL};
    start_tls(&s, extra);
    metrics_addr(&s, maddr, sizeof(maddr));
    const char *argv[] = {"openssl",        "s_client", "-connect",
                          bare(s.addrs[0]), "-CAfile",  path("ca.pem"),
                          "-quiet",         NULL};
    struct child idle, busy;
    spawn(&idle, argv);
    echo_line(&idle, "one\n");
    CHECK_INT(metric_becomes(maddr, "echokit_connections_idle_closed_total", 1),
              ==, 1);
    child_end(&idle, 5000);

    spawn(&busy, argv);
    echo_line(&busy, "two\n");
    kill(s.pid, SIGTERM);
    CHECK(log_shows(&s, "draining 1 connection", 5000));
    echo_line(&busy, "six\n");
    child_end(&busy, 5000);
    CHECK_INT(h_server_wait(&s, 10000), ==, 0);
}

/* A session made under one --tls-client-ca does not resume once a reload
 * trusts other CAs: it would skip the client certificate the new CAs
 * refuse (found by review: it resumed, and went on resuming; then by the
 * digest of the file in the session context; now no session resumes
 * under --tls-client-ca at all, issue 20). And no finite-field key
 * exchange: a replayable ffdhe8192 ClientHello cost the loop 140 ms of
 * CPU each. */
void case_tls_reload_ca(void)
{
    make_certs();
    char cas[300], cmd[700], report[16384];
    snprintf(cas, sizeof(cas), "%s", path("clientca.pem"));
    snprintf(cmd, sizeof(cmd), "cp %s %s", path("ca.pem"), cas);
    CHECK_INT(system(cmd), ==, 0);
    struct h_server s;
    const char *args[] = {"--listen",
                          "tls:127.0.0.1:0",
                          "--tls-cert",
                          path("server.pem"),
                          "--tls-key",
                          path("server.key"),
                          "--tls-client-ca",
                          cas,
                          "-v",
                          NULL};
    CHECK_INT(h_server_start(&s, NULL, args, 1, 0), ==, 0);
    const char *addr = bare(s.addrs[0]);
    const char *first[] = {
        "-cert",     path("client.pem"),     "-key", path("client.key"),
        "-sess_out", path("ca-session.pem"), NULL};
    s_client_report(addr, first, report, sizeof(report));
    CHECK_CONTAINS(report, "New, TLSv1.3");
    snprintf(cmd, sizeof(cmd), "cp %s %s", path("rogue.pem"), cas);
    CHECK_INT(system(cmd), ==, 0);
    kill(s.pid, SIGHUP);
    CHECK(log_shows(&s, "SIGHUP: 1 certificate reloaded", 5000));
    const char *again[] = {"-sess_in", path("ca-session.pem"), NULL};
    s_client_report(addr, again, report, sizeof(report));
    CHECK(strstr(report, "Reused") == NULL);

    const char *ffdhe[] = {"-groups", "ffdhe8192", NULL};
    s_client_report(addr, ffdhe, report, sizeof(report));
    CHECK(strstr(report, "Server Temp Key") == NULL);
    CHECK(log_shows(&s, "TLS handshake failed", 5000));
    stop_ok(&s);
}

/* echokit send --tls against socat's TLS echo server. */
void case_tls_client(void)
{
    make_certs();
    if (!have("socat"))
        SKIP("socat is not installed (Debian: socat)");
    unsigned port = free_fixed_port();
    char listen[600], addr[64];
    snprintf(listen, sizeof(listen),
             "OPENSSL-LISTEN:%u,bind=127.0.0.1,reuseaddr,fork,cert=%s,key=%s,"
             "verify=0",
             port, path("server.pem"), path("server.key"));
    snprintf(addr, sizeof(addr), "localhost:%u", port);
    const char *socat[] = {"socat", listen, "PIPE", NULL};
    struct child srv;
    spawn(&srv, socat);
    struct h_run r;
    const char *hello[] = {"send",         "--tls", "--tls-ca",
                           path("ca.pem"), addr,    NULL};
    int st = -1;
    for (int i = 0; i < 50 && st != 0; i++) { /* until socat listens */
        st = h_run_echokit(hello, -1, 10000, &r);
        if (st != 0)
            h_sleep_ms(50);
    }
    CHECK_INT(st, ==, 0);
    CHECK_STR(r.out, "Received 'Hello, world'\n");
    int in = write_temp_file("mib", 78, 1 << 20);
    const char *pipe_mode[] = {"send",     "--tls", "--tls-ca", path("ca.pem"),
                               "--verify", addr,    "-",        NULL};
    CHECK_INT(h_run_echokit(pipe_mode, in, 20000, &r), ==, 0);
    close(in);
    /* bench over TLS: request/response, every echo verified. */
    double v;
    const char *bench[] = {"bench",  "--tls", "--tls-ca", path("ca.pem"), "-c",
                           "2",      "-t",    "0.5",      "-w",           "0.1",
                           "--json", addr,    NULL};
    CHECK_INT(h_run_echokit(bench, -1, 30000, &r), ==, 0);
    CHECK(h_json_number(r.out, "errors", &v) && v == 0);
    CHECK(h_json_number(r.out, "msgs", &v) && v > 10);
    CHECK_CONTAINS(r.out, "\"tls\":true");
    kill(srv.pid, SIGTERM);
    child_end(&srv, 5000);
}
/* send --tls to a peer that accepts and never answers the handshake (a
 * tarpit, a stalled proxy, a server waiting for a PROXY header): it gives
 * up at -t, idle while it waits. The previous build polled for
 * writability while OpenSSL waited to read: 100% CPU, and -t was checked
 * only when poll timed out, which it never did (killed after 10 s, with
 * ~9 s of CPU). */
void case_tls_client_timeout(void)
{
    char addr[64];
    pid_t fake = h_fake_server("silent", 0, addr, sizeof(addr));
    struct h_run r;
    const char *argv[] = {"send", "--tls", "--insecure", "-t",
                          "2",    addr,    "hi",         NULL};
    int st = h_run_echokit(argv, -1, 10000, &r);
    printf("send --tls -t 2 to a silent peer: exit %d after %.2f s, "
           "%.3f s of CPU\n",
           st, (double)r.wall_ms / 1000.0, r.cpu_s);
    CHECK_INT(st, ==, 75);
    CHECK_CONTAINS(r.err, "no handshake within 2.0 s");
    CHECK_INT(r.wall_ms, >=, 1900);
    /* 3 s and 0.2 s of CPU (the issue's bounds), with room for the
     * sanitizers' slower start. */
    CHECK_INT(r.wall_ms, <, 2000 + 1000 * TIME_SLACK);
    CHECK(r.cpu_s < 0.2 * TIME_SLACK);
    h_fake_end(fake);
}
/* A TLS echo server, in a child, for one connection: it echoes the first
 * `cut` bytes, then ends TCP (a FIN) with no close_notify, as an attacker
 * on the path or a crashed proxy would; it reads the rest and drops it,
 * so that its close sends no reset. Returns its pid (h_fake_end ends it
 * too); *addr gets "localhost:PORT". */
static pid_t truncating_server(uint64_t cut, char *addr, size_t size)
{
    unsigned port;
    int lfd = h_loopback_socket(SOCK_STREAM, &port);
    snprintf(addr, size, "localhost:%u", port);
    pid_t pid = h_fork_server(lfd, 20);
    if (pid > 0)
        return pid;
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL ||
        SSL_CTX_use_certificate_chain_file(ctx, path("server.pem")) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, path("server.key"),
                                    SSL_FILETYPE_PEM) != 1)
        _exit(2);
    int fd = accept(lfd, NULL, NULL);
    SSL *ssl = SSL_new(ctx);
    struct timeval tv = {.tv_sec = 10};
    if (fd < 0 || ssl == NULL || SSL_set_fd(ssl, fd) != 1 ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        SSL_accept(ssl) != 1)
        _exit(3);
    static char buf[16384];
    uint64_t echoed = 0;
    while (echoed < cut) {
        int n = SSL_read(ssl, buf, sizeof(buf));
        if (n <= 0)
            _exit(4);
        if ((uint64_t)n > cut - echoed)
            n = (int)(cut - echoed);
        if (SSL_write(ssl, buf, n) != n)
            _exit(5);
        echoed += (uint64_t)n;
    }
    shutdown(fd, SHUT_WR);
    while (read(fd, buf, sizeof(buf)) > 0)
        ;
    _exit(0);
}

/* A server that ends TLS with a FIN and no close_notify: the stream may
 * be cut anywhere, and send says so and exits 1 (the previous build took
 * the FIN for the end: exit 0 with 40000 of 200000 bytes); with
 * --allow-truncation, that is the end, as before. ping too (it exits 1
 * on any close; now it says what kind). */
void case_tls_truncation(void)
{
    make_certs();
    enum { SIZE = 200000, CUT = 40000 };
    static unsigned char want[CUT];
    h_pattern(81, 0, want, sizeof(want));
    char addr[64];
    struct h_run r;
    const char *strict[] = {"send", "--tls", "--tls-ca", path("ca.pem"),
                            addr,   "-",     NULL};
    const char *lax[] = {
        "send", "--tls", "--tls-ca", path("ca.pem"), "--allow-truncation",
        addr,   "-",     NULL};
    const char *const *modes[] = {strict, lax};
    for (int m = 0; m < 2; m++) {
        pid_t srv = truncating_server(CUT, addr, sizeof(addr));
        int in = write_temp_file("cut.bin", 81, SIZE);
        int st = h_run_echokit(modes[m], in, 20000, &r);
        close(in);
        printf("send %s: exit %d, %zu bytes on stdout; %s",
               m ? "lax" : "strict", st, r.out_len, r.err);
        CHECK_INT(r.out_len, ==, CUT); /* what came is passed on */
        CHECK(memcmp(r.out, want, CUT) == 0);
        if (m == 0) {
            CHECK_INT(st, ==, 1);
            CHECK_CONTAINS(r.err, "without close_notify after 40000 of");
            CHECK_CONTAINS(r.err, "--allow-truncation");
        } else {
            CHECK_INT(st, ==, 0);
        }
        h_fake_end(srv);
    }

    pid_t srv = truncating_server(64, addr, sizeof(addr));
    const char *ping[] = {"ping", "--tls", "--tls-ca", path("ca.pem"), "-c",
                          "3",    "-i",    "0.05",     addr,           NULL};
    CHECK_INT(h_run_echokit(ping, -1, 10000, &r), ==, 1);
    CHECK_CONTAINS(r.out, "1 received");
    CHECK_CONTAINS(r.err, "without a TLS close_notify");
    h_fake_end(srv);
}
/* A certificate, key or CA file that cannot be used is named with the
 * cause, by serve and by the clients alike (one loader): the system's
 * reason, what the file holds instead of a certificate or a key, a key
 * that is not the certificate's. And a client whose handshake is answered
 * by its own ClientHello says the server looks like a plain echo server.
 * The previous build gave OpenSSL's words: "unknown error; system lib;
 * system lib", "no start line; PEM lib", "key values mismatch",
 * "unexpected message". */
void case_tls_file_errors(void)
{
    make_certs();
    char plain_dir[300];
    snprintf(plain_dir, sizeof(plain_dir), "%s/a-directory", dir);
    CHECK(mkdir(plain_dir, 0700) == 0);
    const struct {
        const char *opts[5];
        const char *says;
    } t[] = {
        {{"--tls-cert", "/nonexistent.pem", "--tls-key", path("client.key")},
         "--tls-cert /nonexistent.pem: No such file or directory"},
        {{"--tls-cert", plain_dir, "--tls-key", path("client.key")},
         "a-directory: Is a directory"},
        {{"--tls-cert", path("client.key"), "--tls-key", path("client.pem")},
         "client.key: not a PEM certificate: it holds a PEM PRIVATE KEY "
         "(--tls-cert and --tls-key swapped?)"},
        {{"--tls-cert", path("client.pem"), "--tls-key", path("ca.pem")},
         "ca.pem: not a PEM private key: it holds a PEM CERTIFICATE"},
        {{"--tls-cert", path("client.pem"), "--tls-key", path("rogue.key")},
         "rogue.key: the key does not match the certificate of --tls-cert"},
        {{"--tls-ca", "/nonexistent.pem"},
         "--tls-ca /nonexistent.pem: No such file or directory"},
        {{"--tls-ca", plain_dir}, "a-directory: Is a directory"},
        {{"--tls-ca", path("ca.key")},
         "ca.key: not a PEM CA certificate: it holds a PEM PRIVATE KEY"},
    };
    struct h_run r;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        const char *says = t[i].says;
        for (int cmd = 0; cmd < 2; cmd++) {
            const char *argv[12] = {cmd ? "ping" : "send", "--tls"};
            size_t n = 2;
            for (size_t k = 0; k < 4 && t[i].opts[k] != NULL; k++)
                argv[n++] = t[i].opts[k];
            argv[n++] = "localhost:9";
            argv[n] = NULL;
            CHECK_INT(h_run_echokit(argv, -1, 10000, &r), ==, 78);
            CHECK_CONTAINS(r.err, says);
        }
        /* serve: the certificate and key options are its own too. */
        if (strcmp(t[i].opts[0], "--tls-cert") == 0) {
            const char *serve[] = {
                "serve",      "--listen",   "tls:127.0.0.1:0", t[i].opts[0],
                t[i].opts[1], t[i].opts[2], t[i].opts[3],      NULL};
            CHECK_INT(h_run_echokit(serve, -1, 10000, &r), ==, 78);
            CHECK_CONTAINS(r.err, says);
        }
    }
    /* serve's --tls-client-ca, and bench (the clients' shared path). */
    const char *client_ca[] = {"serve",
                               "--listen",
                               "tls:127.0.0.1:0",
                               "--tls-cert",
                               path("server.pem"),
                               "--tls-key",
                               path("server.key"),
                               "--tls-client-ca",
                               "/nonexistent.pem",
                               NULL};
    CHECK_INT(h_run_echokit(client_ca, -1, 10000, &r), ==, 78);
    CHECK_CONTAINS(
        r.err, "--tls-client-ca /nonexistent.pem: No such file or directory");
    const char *bench[] = {"bench",   "--tls",       "--tls-ca",
                           plain_dir, "localhost:9", NULL};
    CHECK_INT(h_run_echokit(bench, -1, 10000, &r), ==, 78);
    CHECK_CONTAINS(r.err, "a-directory: Is a directory");

    /* TLS to a plain echo port: the ClientHello comes back. */
    struct h_server s;
    const char *args[] = {"--listen", "127.0.0.1:0", NULL};
    CHECK_INT(h_server_start(&s, NULL, args, 1, 0), ==, 0);
    const char *send[] = {"send",     "--tls", "--insecure",
                          s.addrs[0], "hi",    NULL};
    const char *ping[] = {"ping", "--tls",    "--insecure", "-c",
                          "1",    s.addrs[0], NULL};
    const char *bench_plain[] = {"bench", "--tls", "--insecure", "-t", "0.2",
                                 "-w",    "0",     s.addrs[0],   NULL};
    const char *const *cmds[] = {send, ping, bench_plain};
    for (size_t i = 0; i < 3; i++) {
        CHECK_INT(h_run_echokit(cmds[i], -1, 10000, &r), ==, EK_EXIT_TLS);
        CHECK_CONTAINS(r.err, "the server sent our ClientHello back: it "
                              "looks like a plain echo server");
        CHECK_INT(r.out_len, ==, 0);
    }
    stop_ok(&s);
}

/* ---- issue 20: bounded handshakes, the uring engine's TLS ------------- */

/* Reads what the server sends on fd until it closes, within timeout_ms:
 * how many bytes came into buf (at most size), -1 if it stayed open. */
static ssize_t read_to_close(int fd, unsigned char *buf, size_t size,
                             int timeout_ms)
{
    size_t got = 0;
    int64_t end = h_now_ms() + timeout_ms;
    while (h_now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        unsigned char sink[4096];
        ssize_t n = recv(fd, got < size ? buf + got : sink,
                         got < size ? size - got : sizeof(sink), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return (ssize_t)got;
        if (n > 0 && got < size)
            got += (size_t)n;
    }
    return -1;
}

/* What stalls a handshake at the gate's bound: one record carrying a
 * ClientHello of the largest length it lets through, all of it but its
 * last byte. */
static size_t hello_at_bound(unsigned char *buf, size_t size)
{
    size_t claim = EK_TLS_HELLO_MAX - 9, len = 4 + claim;
    CHECK(size >= 5 + len - 1);
    memset(buf, 1, 5 + len - 1);
    const unsigned char head[9] = {22,
                                   3,
                                   1,
                                   (unsigned char)(len >> 8),
                                   (unsigned char)len,
                                   1,
                                   0,
                                   (unsigned char)(claim >> 8),
                                   (unsigned char)claim};
    memcpy(buf, head, sizeof(head));
    return 5 + len - 1;
}

/* An OpenSSL client on fd, not echokit's (whose groups are fixed), that
 * offers `groups`, with a key share for the first: "ffdhe2048:X25519"
 * makes the server, which takes elliptic curves only, ask for X25519 in
 * a HelloRetryRequest, as a client whose first guess missed. */
static SSL *raw_client(int fd, const char *groups)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    CHECK(ctx != NULL);
    CHECK(SSL_CTX_set1_groups_list(ctx, groups) == 1);
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx); /* the session keeps its reference */
    CHECK(ssl != NULL && SSL_set_fd(ssl, fd) == 1);
    SSL_set_connect_state(ssl);
    return ssl;
}

/* A client's msg callback: the server's HelloRetryRequest came. */
static void on_server_hello(int write_p, int version, int content_type,
                            const void *buf, size_t len, SSL *ssl, void *arg)
{
    (void)version;
    (void)ssl;
    const unsigned char *p = buf;
    if (!write_p && content_type == SSL3_RT_HANDSHAKE && len >= 38 &&
        p[0] == SSL3_MT_SERVER_HELLO &&
        memcmp(p + 6, ek_tls_hrr_random, sizeof(ek_tls_hrr_random)) == 0)
        *(bool *)arg = true;
}

/* A real client that the server asks again (HelloRetryRequest): its
 * handshake and the echo of a word. Whether both happened. */
static bool retried_echo(const char *addr)
{
    int fd = h_connect_or_die(addr);
    struct timeval tv = {.tv_sec = 5}; /* blocking, 5 s at most a call */
    CHECK(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) == 0);
    CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0 &&
          setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0);
    SSL *ssl = raw_client(fd, "ffdhe2048:X25519");
    bool retried = false;
    SSL_set_msg_callback(ssl, on_server_hello);
    SSL_set_msg_callback_arg(ssl, &retried);
    char got[8];
    int n = 0, k = 1;
    bool ok = SSL_connect(ssl) == 1 && SSL_write(ssl, "retried", 7) == 7;
    while (ok && n < 7 && k > 0)
        n += k = SSL_read(ssl, got + n, 7 - n);
    SSL_free(ssl);
    close(fd);
    return ok && n == 7 && memcmp(got, "retried", 7) == 0 && retried;
}

/* The first ClientHello of raw_client with "ffdhe2048:X25519", caught on
 * a socketpair: one the server answers with a HelloRetryRequest. Returns
 * its length. */
static size_t hello_to_retry(unsigned char *buf, size_t size)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    SSL *ssl = raw_client(sv[0], "ffdhe2048:X25519");
    CHECK_INT(SSL_do_handshake(ssl), ==, -1); /* waits for the answer */
    ssize_t n = recv(sv[1], buf, size, 0);
    CHECK(n > 9 && buf[0] == 22 && buf[5] == 1); /* a handshake record */
    SSL_free(ssl);
    close(sv[0]);
    close(sv[1]);
    return (size_t)n;
}

/* Reads the server's first record on fd, within 5 s: a HelloRetryRequest
 * (what follows it, its change_cipher_spec, stays unread). */
static void expect_retry(int fd)
{
    unsigned char rec[512];
    size_t got = 0, want = 5;
    int64_t end = h_now_ms() + 5000;
    while (got < want && h_now_ms() < end) {
        poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1, 50);
        ssize_t k = recv(fd, rec + got, want - got, MSG_DONTWAIT);
        if (k == 0)
            break;
        if (k > 0)
            got += (size_t)k;
        if (got == 5)
            want = 5 + ((size_t)rec[3] << 8 | rec[4]);
        CHECK(want <= sizeof(rec));
    }
    CHECK_INT(got, ==, want);
    CHECK(got >= 5 + 38 && rec[0] == 22 && rec[5] == SSL3_MT_SERVER_HELLO);
    CHECK(memcmp(rec + 11, ek_tls_hrr_random, sizeof(ek_tls_hrr_random)) == 0);
}

/* The change_cipher_spec record a TLS 1.3 client sends before its second
 * ClientHello (middlebox compatibility). */
static const unsigned char ccs_record[6] = {20, 3, 3, 0, 1, 1};

/* What stalls a handshake at the gate's bound after a HelloRetryRequest:
 * the first ClientHello (hello_to_retry's), then the change_cipher_spec
 * and one record carrying a second ClientHello of the largest length the
 * gate lets through with it, all of it but its last byte: all at once, as
 * a client that does not wait for the answer (the gate keeps what comes
 * after the first until OpenSSL has answered). Returns the length. */
static size_t retry_at_bound(unsigned char *buf, size_t size)
{
    size_t n = hello_to_retry(buf, size);
    CHECK(size >= n + EK_TLS_HELLO_MAX);
    memcpy(buf + n, ccs_record, sizeof(ccs_record));
    n += sizeof(ccs_record);
    size_t claim = EK_TLS_HELLO_MAX - sizeof(ccs_record) - 9, len = 4 + claim;
    memset(buf + n, 1, 5 + len - 1);
    const unsigned char head[9] = {22,
                                   3,
                                   3,
                                   (unsigned char)(len >> 8),
                                   (unsigned char)len,
                                   1,
                                   0,
                                   (unsigned char)(claim >> 8),
                                   (unsigned char)claim};
    memcpy(buf + n, head, sizeof(head));
    return n + 5 + len - 1;
}

/* What a stalled handshake may hold per connection in server PSS: `kib`,
 * the figure of the README, plus what the model adds per connection of
 * its own: a forked child's pages (process: a TLS child writes to more of
 * the parent's pages than a plain one, about 90 KiB in all here;
 * idle_memory's allowance for a child), a thread and the stack its
 * handshake used (thread, about 34 KiB), and under the sanitizers a
 * thread's own state; and 12 KiB for the heap's own steps, which vary
 * from run to run (under mTLS on uring with two loops, 60-62 KiB a
 * connection, and once in fifteen runs 72). */
static long stall_bound(long kib)
{
    long bound = MEM_SLACK * (kib + 12) * 1024;
    if (model_has(EK_CAP_FORK_PER_CONN))
        bound += MEM_SLACK * 1024 * 1024;
    if (model_has(EK_CAP_THREAD_PER_CONN))
        bound += MEM_SLACK * 40 * 1024;
#ifdef EK_TEST_SANITIZED
    if (model_has(EK_CAP_THREAD_PER_CONN))
        bound += MEM_SLACK * 64 * 1024;
#endif
    return bound;
}

/* Checks per, stalled_each's bytes per connection, against
 * stall_bound(kib). Not under ThreadSanitizer, which measures no memory
 * bound here; and, when quarantined (measured after OpenSSL took a whole
 * ClientHello and freed what it used), not under the sanitizers at all:
 * AddressSanitizer's quarantine keeps the freed memory (5.2 times the
 * figure, past MEM_SLACK's 4). */
static void check_stall(long per, long kib, bool quarantined)
{
#if defined(EK_TEST_TSAN)
    bool measured = false;
#elif defined(EK_TEST_SANITIZED)
    bool measured = !quarantined;
#else
    bool measured = true;
#endif
    (void)quarantined;
    if (measured)
        CHECK_INT(per, <=, stall_bound(kib));
}

/* The PSS (KiB) of the uring loops' provided receive buffers in process
 * pid: one anonymous mapping of 64 x 64 KiB (and its header) per loop,
 * whose pages become resident as receives first fill them, a constant of
 * the loop and not of its connections (README, "Memory bound"); how far
 * the connections measured fill each buffer varies, and would otherwise
 * count as theirs. 0 for the other models. */
static long ring_kb(pid_t pid)
{
    char smaps[64], line[512];
    snprintf(smaps, sizeof(smaps), "/proc/%d/smaps", (int)pid);
    FILE *f = fopen(smaps, "r");
    CHECK(f != NULL);
    long total = 0, size = 0;
    bool anon = false;
    while (fgets(line, sizeof(line), f) != NULL) {
        unsigned long lo, hi;
        char perms[8], file[256] = "";
        long v;
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %255s", &lo, &hi, perms,
                   file) >= 3 &&
            strchr(line, '-') < strchr(line, ' ')) {
            size = (long)((hi - lo) / 1024);
            anon = file[0] == '\0';
        } else if (sscanf(line, "Pss: %ld kB", &v) == 1 && anon &&
                   size >= 4096 && size <= 4160) {
            total += v;
        }
    }
    fclose(f);
    return total;
}

/* The server's PSS (KiB), its children's included, but for the uring
 * loops' receive buffers (ring_kb). */
static long pss_but_ring_kb(pid_t pid)
{
    return ek_proc_mem_kb(pid, "Pss") - ring_kb(pid);
}

/* n connections to addr that each send the len bytes of data and stall,
 * beside one more sent first (the one-time allocations are not the ones
 * measured): the server's PSS (but uring's receive buffers) per stalled
 * connection, in bytes, which
 * `what` names in the line printed. Their fds are left in fds[0, n]. */
static long stalled_each(const struct h_server *s, const char *addr,
                         const unsigned char *data, size_t len, int n, int *fds,
                         const char *what)
{
    fds[0] = h_connect_or_die(addr);
    CHECK(send(fds[0], data, len, MSG_NOSIGNAL) == (ssize_t)len);
    h_sleep_ms(300);
    long base = pss_but_ring_kb(s->pid);
    for (int i = 1; i <= n; i++) {
        fds[i] = h_connect_or_die(addr);
        CHECK(send(fds[i], data, len, MSG_NOSIGNAL) == (ssize_t)len);
    }
    h_sleep_ms(500 * TIME_SLACK);
    long held = pss_but_ring_kb(s->pid);
    long per = (held - base) * 1024 / n;
    printf("%s: %d handshakes stalled %s (%zu bytes each): server PSS %ld "
           "-> %ld KiB, %ld bytes each\n",
           model, n, what, len, base, held, per);
    return per;
}

/* Issue 20, finding 1. A ClientHello whose length field claims 131396
 * bytes (OpenSSL's own limit, which it buffered whole: 165 KiB per stalled
 * connection on epoll, 250 on uring) is refused at its ninth byte with an
 * alert, long before the handshake deadline; connections that stall at
 * the gate's bound hold at most 48 KiB each; and --max-handshakes refuses
 * the connections past it, counted, until the handshakes under way end.
 * Its review: the second ClientHello, after a HelloRetryRequest, went to
 * OpenSSL unjudged (150-186 KiB per connection that claimed 131396 bytes
 * there and stalled): it is judged as the first, a real client asked
 * again is served, and a stall at its bound holds at most 64 KiB. */
void case_tls_hello_bound(void)
{
    make_certs();
    bool many = model_has(EK_CAP_CONCURRENT);
    int n = many ? 200 : 0, spare = 10;
    char limit[16], maddr[256];
    snprintf(limit, sizeof(limit), "%d", n + spare);
    const char *extra[] = {"--metrics", "127.0.0.1:0", "--max-handshakes",
                           limit,       "-v",          NULL};
    raise_own_fd_limit((rlim_t)n + 100);
    struct h_server s;
    start_tls(&s, extra);
    metrics_addr(&s, maddr, sizeof(maddr));
    const char *addr = bare(s.addrs[0]);

    static const unsigned char huge[9] = {22, 3, 1, 0, 4, 1, 0x02, 0x01, 0x44};
    static const unsigned char alert[7] = {21, 3, 3, 0, 2, 2, 47};
    unsigned char got[64];
    int fd = h_connect_or_die(addr);
    int64_t t0 = h_now_ms();
    CHECK(send(fd, huge, sizeof(huge), MSG_NOSIGNAL) == sizeof(huge));
    ssize_t k = read_to_close(fd, got, sizeof(got), 5000);
    printf("%s: a ClientHello claiming 131396 bytes: %zd bytes back, closed "
           "after %lld ms\n",
           model, k, (long long)(h_now_ms() - t0));
    CHECK_INT(k, ==, sizeof(alert)); /* illegal_parameter, then the end */
    CHECK(memcmp(got, alert, sizeof(alert)) == 0);
    close(fd);
    CHECK_INT(metric_becomes(maddr, FAILED("too_large"), 1), ==, 1);

    /* The same claim in the second ClientHello, after the server's
     * HelloRetryRequest and the client's change_cipher_spec: refused at
     * its ninth byte too (the server's own change_cipher_spec may come
     * before the alert). A real client asked again is served. */
    CHECK(retried_echo(addr));
    static unsigned char retry[2048 + EK_TLS_HELLO_MAX];
    size_t retry_len = hello_to_retry(retry, sizeof(retry));
    fd = h_connect_or_die(addr);
    CHECK(send(fd, retry, retry_len, MSG_NOSIGNAL) == (ssize_t)retry_len);
    expect_retry(fd);
    unsigned char again[sizeof(ccs_record) + sizeof(huge)];
    memcpy(again, ccs_record, sizeof(ccs_record));
    memcpy(again + sizeof(ccs_record), huge, sizeof(huge));
    t0 = h_now_ms();
    CHECK(send(fd, again, sizeof(again), MSG_NOSIGNAL) == sizeof(again));
    k = read_to_close(fd, got, sizeof(got), 5000);
    printf("%s: after a HelloRetryRequest, a second ClientHello claiming "
           "131396 bytes: %zd bytes back, closed after %lld ms\n",
           model, k, (long long)(h_now_ms() - t0));
    CHECK(k >= (ssize_t)sizeof(alert));
    CHECK(memcmp(got + k - sizeof(alert), alert, sizeof(alert)) == 0);
    close(fd);
    CHECK_INT(metric_becomes(maddr, FAILED("too_large"), 2), ==, 2);

    if (many) {
        /* Each connection stalled one byte short of the gate's bound
         * costs at most 48 KiB (OpenSSL has none of it yet), the figure
         * of the issue, beside what the model adds per connection. */
        static unsigned char stall[EK_TLS_HELLO_MAX];
        size_t len = hello_at_bound(stall, sizeof(stall));
        static int fds[256];
        CHECK(n + spare + 5 <= 256);
        long per = stalled_each(&s, addr, stall, len, n, fds,
                                "at the ClientHello's bound");
        check_stall(per, 48, false);
        /* --max-handshakes: n + 1 under way; 9 more are taken (mute), the
         * 5 after them refused at once and counted. */
        for (int i = n + 1; i < n + spare; i++)
            fds[i] = h_connect_or_die(addr);
        CHECK_INT(metric_becomes(maddr, "echokit_tls_handshakes_in_progress",
                                 n + spare),
                  ==, n + spare);
        for (int i = 0; i < 5; i++) {
            int extra_fd = h_connect_or_die(addr);
            CHECK(closed_by_peer(extra_fd, 5000));
            close(extra_fd);
        }
        CHECK_INT(metric_becomes(maddr,
                                 "echokit_connections_refused_total{reason="
                                 "\"handshakes\"}",
                                 5),
                  ==, 5);
        CHECK(log_shows(&s, "handshakes under way (--max-handshakes)", 5000));
        for (int i = 0; i < n + spare; i++)
            close(fds[i]);
        CHECK_INT(
            metric_becomes(maddr, "echokit_tls_handshakes_in_progress", 0), ==,
            0);

        /* Stalled one byte short of the bound of the second ClientHello:
         * OpenSSL's state after its HelloRetryRequest, and the gate's
         * 16 KiB: at most 64 KiB each (measured 53-54 KiB on epoll and
         * uring). */
        len = retry_at_bound(retry, sizeof(retry));
        per = stalled_each(&s, addr, retry, len, n, fds,
                           "at the second ClientHello's bound");
        check_stall(per, 64, false);
        for (int i = 0; i <= n; i++)
            close(fds[i]);
        CHECK_INT(
            metric_becomes(maddr, "echokit_tls_handshakes_in_progress", 0), ==,
            0);
    }
    /* A real client is served all along. */
    int real = h_connect_or_die(addr);
    CHECK_INT(library_echo(real, "localhost"), ==, 0);
    close(real);
    stop_ok(&s);
}

/* The ClientHello of echokit's own client (TLS 1.3 and 1.2 offered),
 * caught on a socketpair: bytes to send as a client that goes no
 * further. Returns its length. */
static size_t client_hello(unsigned char *buf, size_t size)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    struct ek_tls_client *tc;
    struct ek_conn c;
    library_client(sv[0], "localhost", &tc, &c);
    unsigned wait = 0;
    CHECK_INT(ek_tls_handshake(&c, sv[0], &wait), ==, -EAGAIN);
    ssize_t n = recv(sv[1], buf, size, 0);
    CHECK(n > 9 && buf[0] == 22 && buf[5] == 1); /* a handshake record */
    library_client_end(tc, &c);
    close(sv[0]);
    close(sv[1]);
    return (size_t)n;
}

/* Issue 20, finding 5. The uring engine restarted the handshake's clock
 * when the server's flight went out, and counted the records it sent as
 * echoed bytes (sent_bytes_total 2,003,682 for a 1,000,000-byte echo).
 * On every model: the payload is counted once, and a client whose
 * ClientHello comes 1.8 s after the connect and who then stalls is closed
 * by the 2 s deadline counted from the connect (the sweep runs every
 * 0.5 s), not 2 s after its ClientHello. */
void case_tls_clock_counts(void)
{
    make_certs();
    char maddr[256];
    const char *extra[] = {"--metrics", "127.0.0.1:0",
                           "--tls-handshake-timeout", "2", NULL};
    struct h_server s;
    start_tls(&s, extra);
    metrics_addr(&s, maddr, sizeof(maddr));
    const char *addr = bare(s.addrs[0]);

    int fd = h_connect_or_die(addr);
    CHECK_INT(library_echo(fd, "localhost"), ==, 0);
    close(fd);
    CHECK_INT(metric_becomes(maddr, "echokit_received_bytes_total", 65536), ==,
              65536);
    CHECK_INT(metric_becomes(maddr, "echokit_sent_bytes_total", 65536), ==,
              65536);

    unsigned char hello[2048];
    size_t hello_len = client_hello(hello, sizeof(hello));
    fd = h_connect_or_die(addr);
    int64_t t0 = h_now_ms();
    h_sleep_ms(1800);
    CHECK(send(fd, hello, hello_len, MSG_NOSIGNAL) == (ssize_t)hello_len);
    bool closed = closed_by_peer(fd, 5000); /* reads the server's flight */
    int64_t at = h_now_ms() - t0;
    printf("%s: ClientHello at 1.8 s, then silence: closed %s%lld ms after "
           "the connect (deadline 2 s)\n",
           model, closed ? "" : "not within ", (long long)at);
    CHECK(closed);
    CHECK(at >= 1900);
    CHECK(at < 3300); /* 1.8 + 2 = 3.8 s when the flight restarts it */
    close(fd);
    CHECK_INT(metric_becomes(maddr, FAILED("timeout"), 1), ==, 1);
    stop_ok(&s);

    /* Issue 20's review, finding 5: --idle-timeout counts from the
     * handshake's end, as from a PROXY header's. A handshake done 1.5 s
     * after the connect, then 1.2 s of quiet, then an echo, under
     * --idle-timeout 2: the readiness and blocking models counted from the
     * accept, and closed the connection 2 s after it. Under mTLS, where
     * the server sends nothing after the handshake (no tickets), which
     * uring took for the end of the handshake too (the second review). */
    const char *idle[] = {"--idle-timeout", "2", "--tls-client-ca",
                          path("ca.pem"), NULL};
    start_tls(&s, idle);
    addr = bare(s.addrs[0]);
    struct ek_tls_client *tc;
    struct ek_conn c;
    fd = h_connect_or_die(addr);
    h_sleep_ms(1500);
    library_client_as(fd, "localhost", path("client.pem"), path("client.key"),
                      &tc, &c);
    CHECK_INT(handshake_done(&c, fd), ==, 0);
    h_sleep_ms(1200);
    int err = library_echo_conn(&c, fd);
    printf("%s: an mTLS handshake 1.5 s after the connect, an echo 1.2 s "
           "after it (--idle-timeout 2): %s\n",
           model, err == 0 ? "echoed" : strerror(-err));
    CHECK_INT(err, ==, 0);
    library_client_end(tc, &c);
    close(fd);
    stop_ok(&s);
}

/* A whole ClientHello (echokit's client's), then `after` (a part of the
 * client's next flight) into buf: the length. */
static size_t hello_then(unsigned char *buf, size_t size,
                         const unsigned char *after, size_t after_len)
{
    size_t n = client_hello(buf, size);
    CHECK(n + after_len <= size);
    memcpy(buf + n, after, after_len);
    return n + after_len;
}

/* A TLS 1.3 record header (application data, as every record after the
 * server's hello looks) claiming len bytes, then `body` zero bytes of
 * it. */
static size_t record_start(unsigned char *buf, size_t len, size_t body)
{
    const unsigned char head[5] = {23, 3, 3, (unsigned char)(len >> 8),
                                   (unsigned char)len};
    memcpy(buf, head, sizeof(head));
    memset(buf + 5, 0, body);
    return 5 + body;
}

/* Sends data on a new connection to addr and reads to the server's close
 * (within 5 s): whether the handshake was refused with the fatal alert
 * desc (47 illegal_parameter: the gate's bounds; 10 unexpected_message)
 * at the end of what came back. */
static bool refused_with(const char *addr, const unsigned char *data,
                         size_t len, unsigned char desc, const char *what)
{
    const unsigned char alert[7] = {21, 3, 3, 0, 2, 2, desc};
    static unsigned char got[16384];
    int fd = h_connect_or_die(addr);
    int64_t t0 = h_now_ms();
    CHECK(send(fd, data, len, MSG_NOSIGNAL) == (ssize_t)len);
    ssize_t k = read_to_close(fd, got, sizeof(got), 5000);
    printf("%s: %s: %zd bytes back, closed after %lld ms\n", model, what, k,
           (long long)(h_now_ms() - t0));
    close(fd);
    return k >= (ssize_t)sizeof(alert) &&
           memcmp(got + k - sizeof(alert), alert, sizeof(alert)) == 0;
}

/* A TLS 1.2 ClientHello (OpenSSL's, TLS 1.2 at most) whose handshake
 * message is padded to `total` bytes (a padding extension at the end), in
 * one record, into buf: the record's length. */
static size_t tls12_hello_padded(unsigned char *buf, size_t size, size_t total)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == 0);
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    CHECK(ctx != NULL);
    CHECK(SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION) == 1);
    SSL *ssl = SSL_new(ctx);
    SSL_CTX_free(ctx);
    CHECK(ssl != NULL && SSL_set_fd(ssl, sv[0]) == 1);
    SSL_set_connect_state(ssl);
    CHECK(SSL_do_handshake(ssl) <= 0); /* it waits for the ServerHello */
    ssize_t n = recv(sv[1], buf, size, 0);
    SSL_free(ssl);
    close(sv[0]);
    close(sv[1]);
    CHECK(n > 9 && buf[0] == 22 && buf[5] == 1);
    size_t hs = (size_t)buf[6] << 16 | (size_t)buf[7] << 8 | buf[8];
    CHECK((size_t)n == 9 + hs);
    /* Past version, random, session id, suites and compression: the
     * extensions' length. */
    size_t p = 9 + 2 + 32;
    p += 1 + buf[p];
    p += 2 + ((size_t)buf[p] << 8 | buf[p + 1]);
    p += 1 + buf[p];
    size_t ext_len = (size_t)buf[p] << 8 | buf[p + 1];
    CHECK(p + 2 + ext_len == (size_t)n && 4 + hs + 4 <= total);
    size_t pad = total - 4 - hs - 4; /* the padding extension's body */
    CHECK(5 + total <= size);
    unsigned char *e = buf + n;
    e[0] = 0;
    e[1] = 21;
    e[2] = (unsigned char)(pad >> 8);
    e[3] = (unsigned char)pad;
    memset(e + 4, 0, pad);
    ext_len += 4 + pad;
    buf[p] = (unsigned char)(ext_len >> 8);
    buf[p + 1] = (unsigned char)ext_len;
    hs = total - 4;
    buf[6] = (unsigned char)(hs >> 16);
    buf[7] = (unsigned char)(hs >> 8);
    buf[8] = (unsigned char)hs;
    buf[3] = (unsigned char)(total >> 8);
    buf[4] = (unsigned char)total;
    return 5 + total;
}

/* Issue 20's review, finding 1 (the bound behind the ClientHello gate)
 * and 2. What the client sends before the handshake's end, besides its
 * ClientHellos, is bounded by its bytes: EK_TLS_FLIGHT_MAX (4 KiB), 16 KiB
 * more under mTLS (the certificate chain): past that the handshake is
 * refused at once, with the alert, and counted too_large, whatever the
 * message. Two that OpenSSL held until the deadline before: a record of
 * 16 KiB after a whole ClientHello (TLS 1.3: it cannot be opened before
 * it has all come; 60 KiB per stalled connection on epoll, 63 on uring,
 * 93 on thread), and, after a HelloRetryRequest, a second ClientHello of
 * 131396 bytes behind two change_cipher_spec records (OpenSSL drops both)
 * or behind a warning alert: any record there but the one
 * change_cipher_spec and the ClientHello's is refused, unexpected_message,
 * counted protocol. A handshake stalled just under the bound holds at most
 * 64 KiB, under --tls-client-ca too, where the ClientHellos count against
 * the budget (TLS 1.2 keeps them until the CertificateVerify: 77 KiB with
 * a ClientHello of 16 KiB before, by the second review). */
void case_tls_flight_bound(void)
{
    make_certs();
    bool many = model_has(EK_CAP_CONCURRENT);
    int n = many ? 200 : 0;
    raise_own_fd_limit((rlim_t)n + 100);
    char maddr[256];
    const char *extra[] = {"--metrics", "127.0.0.1:0", "-v", NULL};
    struct h_server s;
    start_tls(&s, extra);
    metrics_addr(&s, maddr, sizeof(maddr));
    const char *addr = bare(s.addrs[0]);

    static unsigned char buf[2048 + EK_TLS_HELLO_MAX + EK_TLS_FLIGHT_MTLS_MAX];
    unsigned char rec[16 * 1024 + 5];
    size_t rec_len = record_start(rec, 16640, 16000);
    size_t len = hello_then(buf, sizeof(buf), rec, rec_len);
    CHECK(refused_with(addr, buf, len, 47,
                       "a whole ClientHello, then 16000 bytes of a "
                       "16640-byte record"));
    len = hello_to_retry(buf, sizeof(buf));
    memcpy(buf + len, ccs_record, sizeof(ccs_record));
    memcpy(buf + len + 6, ccs_record, sizeof(ccs_record));
    len += 12;
    const unsigned char huge[9] = {22, 3, 3, 0x3e, 0x84, 1, 0x02, 0x01, 0x44};
    memcpy(buf + len, huge, sizeof(huge));
    memset(buf + len + 9, 0, 16000 - 4);
    len += 9 + 16000 - 4;
    CHECK(refused_with(addr, buf, len, 10,
                       "a HelloRetryRequest asked for, two "
                       "change_cipher_spec, then 16 KiB of a second "
                       "ClientHello claiming 131396 bytes"));
    /* A warning alert, which OpenSSL drops, then the claim: refused at
     * the alert's header too (issue 20's second review: the claim went
     * to OpenSSL unjudged, which before 3.0.21 allocates all it claims:
     * 151 KiB per stalled connection). */
    len = hello_to_retry(buf, sizeof(buf));
    static const unsigned char user_canceled[7] = {21, 3, 3, 0, 2, 1, 90};
    memcpy(buf + len, user_canceled, sizeof(user_canceled));
    len += sizeof(user_canceled);
    memcpy(buf + len, huge, sizeof(huge));
    len += sizeof(huge);
    CHECK(refused_with(addr, buf, len, 10,
                       "a HelloRetryRequest asked for, a warning alert, "
                       "then a second ClientHello claiming 131396 bytes"));
    CHECK_INT(metric_becomes(maddr, FAILED("too_large"), 1), ==, 1);
    CHECK_INT(metric_becomes(maddr, FAILED("protocol"), 2), ==, 2);
    /* But early data, which a client sends with its first ClientHello
     * before it sees the HelloRetryRequest, and which the server skips
     * (RFC 8446 4.2.10): taken, the second ClientHello then awaited (the
     * third review: refused as unexpected). */
    len = hello_to_retry(buf, sizeof(buf));
    int fd = h_connect_or_die(addr);
    CHECK(send(fd, buf, len, MSG_NOSIGNAL) == (ssize_t)len);
    expect_retry(fd);
    unsigned char early[6 + 5 + 1000];
    memcpy(early, ccs_record, 6);
    memcpy(early + 6, "\x17\x03\x03\x03\xe8", 5);
    memset(early + 11, 0x5a, 1000);
    CHECK(send(fd, early, sizeof(early), MSG_NOSIGNAL) == sizeof(early));
    /* Not closed within 500 ms (read_to_close: -1): the server waits. */
    unsigned char back[64];
    bool awaited = read_to_close(fd, back, sizeof(back), 500) < 0;
    printf("%s: a HelloRetryRequest asked for, change_cipher_spec and 1000 "
           "bytes of early data: %s\n",
           model, awaited ? "the second ClientHello awaited" : "refused");
    CHECK(awaited);
    close(fd);
    static int fds[256];
    CHECK(n + 1 <= 256);
    if (many) {
        /* One byte short of the bound (no record of that length comes
         * whole: the server waits for the rest). */
        rec_len =
            record_start(rec, EK_TLS_FLIGHT_MAX, EK_TLS_FLIGHT_MAX - 5 - 1);
        len = hello_then(buf, sizeof(buf), rec, rec_len);
        long per = stalled_each(&s, addr, buf, len, n, fds,
                                "one byte short of the flight's bound");
        check_stall(per, 64, true);
        for (int i = 0; i <= n; i++)
            close(fds[i]);
    }
    /* A real client is served all along. */
    int real = h_connect_or_die(addr);
    CHECK_INT(library_echo(real, "localhost"), ==, 0);
    close(real);
    stop_ok(&s);

    const char *mtls[] = {"--tls-client-ca", path("ca.pem"), NULL};
    start_tls(&s, mtls);
    addr = bare(s.addrs[0]);
    /* Under mTLS the ClientHellos count against the 20 KiB budget: TLS
     * 1.2 keeps every message until the client's CertificateVerify, and a
     * ClientHello of 16 KiB, then 16000 bytes of a Certificate, then a
     * stall held 77 KiB (the second review; 106 on thread). Refused at
     * once now. */
    len = tls12_hello_padded(buf, sizeof(buf), EK_TLS_HELLO_MAX - 9);
    static const unsigned char cert_head[9] = {22, 3, 3,    0x3e, 0x80,
                                               11, 0, 0x3f, 0xfc};
    memcpy(buf + len, cert_head, sizeof(cert_head));
    memset(buf + len + sizeof(cert_head), 0, 16000 - 4);
    len += sizeof(cert_head) + 16000 - 4;
    CHECK(refused_with(addr, buf, len, 47,
                       "under --tls-client-ca, a TLS 1.2 ClientHello of 16 "
                       "KiB, then 16000 bytes of a Certificate"));
    /* A client with no certificate that sends the change_cipher_spec and
     * 16000 bytes of the largest record TLS 1.3 allows, and stalls: the
     * most it can make OpenSSL hold. */
    if (!many) {
        stop_ok(&s);
        return;
    }
    memcpy(rec, ccs_record, sizeof(ccs_record));
    rec_len = 6 + record_start(rec + 6, 16640, 16000);
    len = hello_then(buf, sizeof(buf), rec, rec_len);
    long per = stalled_each(&s, addr, buf, len, n, fds,
                            "under --tls-client-ca, 16000 bytes into a "
                            "record");
    check_stall(per, 64, true);
    for (int i = 0; i <= n; i++)
        close(fds[i]);
    stop_ok(&s);
}

/* A TLS client of echokit's own library, on a new connection to addr:
 * the handshake, then a read, which meets the server's verdict. Returns
 * why the connection failed (static), or "" when it did not. */
static const char *client_verdict(const char *addr, const char *cert,
                                  const char *key)
{
    static char why[256];
    int fd = h_connect_or_die(addr);
    struct ek_tls_client *tc;
    struct ek_conn c;
    library_client_as(fd, "localhost", cert, key, &tc, &c);
    /* TLS 1.3: done on our side; the server's verdict comes with the
     * echo of a byte, or instead of it. */
    unsigned char buf[64];
    ssize_t n = handshake_done(&c, fd);
    int64_t end = h_now_ms() + 5000;
    struct iovec one = {.iov_base = (void *)"x", .iov_len = 1};
    if (n == 0)
        n = ek_conn_tp(&c)->writev(&c, fd, &one, 1);
    while (n == 1 || (n == -EAGAIN && h_now_ms() < end)) {
        n = ek_conn_tp(&c)->read(&c, fd, buf, sizeof(buf));
        if (n == -EAGAIN)
            poll(&(struct pollfd){.fd = fd, .events = POLLIN}, 1, 50);
        else if (n == 0)
            n = -ECONNRESET; /* the end, and no alert */
        else if (n == 1)
            break; /* the echo: accepted */
    }
    const char *e = ek_tls_error(&c);
    snprintf(why, sizeof(why), "%s",
             n == 1      ? ""
             : e != NULL ? e
                         : "closed, no alert");
    library_client_end(tc, &c);
    close(fd);
    return why;
}

/* Issue 20, finding 10: the uring engine closed a failed handshake
 * without the fatal alert OpenSSL had made, so clients saw the end of the
 * stream instead of why. Under --tls-client-ca, a client without a
 * certificate, and one with a certificate the CA did not sign, read the
 * alert, on every model. */
void case_tls_alert(void)
{
    make_certs();
    const char *extra[] = {"--tls-client-ca", path("ca.pem"), NULL};
    struct h_server s;
    start_tls(&s, extra);
    const char *addr = bare(s.addrs[0]);
    const char *none = client_verdict(addr, NULL, NULL);
    printf("%s: no client certificate: \"%s\"\n", model, none);
    CHECK_CONTAINS(none, "certificate required");
    const char *rogue =
        client_verdict(addr, path("rogue.pem"), path("rogue.key"));
    printf("%s: a self-signed client certificate: \"%s\"\n", model, rogue);
    CHECK_CONTAINS(rogue, "unknown ca");
    CHECK_STR(client_verdict(addr, path("client.pem"), path("client.key")), "");
    stop_ok(&s);
}

/* One echo of `size` bytes over c (connected, TLS): every byte back. */
static void burst(struct ek_conn *c, int fd, size_t size)
{
    static unsigned char data[16384], got[16384];
    size_t sent = 0, recvd = 0;
    int64_t end = h_now_ms() + 30000;
    while (recvd < size && h_now_ms() < end) {
        bool moved = false;
        if (sent < size) {
            size_t k = size - sent < sizeof(data) ? size - sent : sizeof(data);
            h_pattern(31, sent, data, k);
            struct iovec iov = {.iov_base = data, .iov_len = k};
            ssize_t w = ek_conn_tp(c)->writev(c, fd, &iov, 1);
            CHECK(w > 0 || w == -EAGAIN);
            if (w > 0) {
                sent += (size_t)w;
                moved = true;
            }
        }
        ssize_t r = ek_conn_tp(c)->read(c, fd, got, sizeof(got));
        CHECK(r > 0 || r == -EAGAIN);
        if (r > 0) {
            unsigned char want[16384];
            h_pattern(31, recvd, want, (size_t)r);
            CHECK(memcmp(got, want, (size_t)r) == 0);
            recvd += (size_t)r;
            moved = true;
        }
        if (!moved)
            poll(&(struct pollfd){.fd = fd,
                                  .events =
                                      POLLIN | (sent < size ? POLLOUT : 0)},
                 1, 50);
    }
    CHECK_INT(recvd, ==, size);
}

/* Server memory per TLS connection that echoed one 256 KiB burst and went
 * idle, with --io model: bytes (PSS), over the last n of warm + n such
 * connections. The first `warm` ones take the one-time costs out of the
 * figure: the uring loop's 64 receive buffers, 4 MiB shared by all its
 * connections, are touched as receives fill them, and the heap grows. */
static long burst_idle_bytes(const char *io, int warm, int n)
{
    struct h_server s;
    start_tls_only(&s, io, NULL);
    const char *addr = bare(s.addrs[0]);
    struct ek_tls_client_options o = {.ca = path("ca.pem")};
    struct ek_tls_client *tc;
    CHECK_INT(ek_tls_client_new(&o, &tc), ==, 0);
    static struct ek_conn conns[512];
    static int fds[512];
    CHECK(warm + n <= 512);
    long base = 0;
    for (int i = 0; i < warm + n; i++) {
        if (i == warm) {
            h_sleep_ms(200);
            base = pss_but_ring_kb(s.pid);
        }
        fds[i] = h_connect_or_die(addr);
        CHECK_INT(
            ek_client_conn_open("itest", tc, &conns[i], fds[i], "localhost"),
            ==, 0);
        burst(&conns[i], fds[i], 256 * KiB);
    }
    /* Settled: the server has reaped its last sends and freed what they
     * held (a loaded machine delays that past a fixed pause: one round in
     * a parallel suite read 133%). */
    long held = pss_but_ring_kb(s.pid);
    for (int i = 0; i < 20; i++) {
        h_sleep_ms(100);
        long now = pss_but_ring_kb(s.pid);
        if (now >= held && i >= 2)
            break;
        held = now;
    }
    long per = (held - base) * 1024 / n;
    printf("%s: %d TLS connections idle after a 256 KiB echo each: server "
           "PSS (but uring's receive buffers) %ld -> %ld KiB over the last "
           "%d, %ld bytes each\n",
           io, warm + n, base, held, n, per);
    for (int i = 0; i < warm + n; i++) {
        ek_conn_release(&conns[i]);
        close(fds[i]);
    }
    ek_client_tls_free(tc);
    stop_ok(&s);
    return per;
}

/* Issue 20, finding 2: the uring engine's memory BIOs kept the size of the
 * largest burst a connection ever had, for good (156 KiB per connection
 * idle after a 256 KiB echo, against epoll's 14 KiB: 681%, later 80.9
 * KiB). Now a uring TLS connection that went idle holds no more than an
 * epoll one: measured in three alternating rounds, the medians within
 * 25% (one round alone, on this noisy VM under a parallel suite, has read
 * 118%; the regression reads over 500%). */
void case_tls_burst_idle(void)
{
#ifdef EK_TEST_SANITIZED
    SKIP("the sanitizers keep freed memory aside (AddressSanitizer's "
         "quarantine) and state of their own per allocation: memory per "
         "connection after bursts is compared in the other builds");
#endif
    make_certs();
    if (ek_model_unavailable(ek_model_find("uring")) != NULL)
        SKIP("uring: %s", ek_model_unavailable(ek_model_find("uring")));
    raise_own_fd_limit(500);
    enum { ROUNDS = 3 };
    double epoll[ROUNDS], uring[ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        epoll[r] = (double)burst_idle_bytes("epoll", 100, 200);
        uring[r] = (double)burst_idle_bytes("uring", 100, 200);
        CHECK(epoll[r] > 0);
    }
    long e = (long)h_median(epoll, ROUNDS), u = (long)h_median(uring, ROUNDS);
    printf("medians of %d rounds: uring holds %.1f%% of epoll's memory per "
           "idle TLS connection (%ld against %ld bytes)\n",
           ROUNDS, 100.0 * (double)u / (double)e, u, e);
    CHECK_INT(u, <=, e + e / 4);
}

/* The first 16 bytes of the session ticket in a session file s_client
 * wrote (-sess_out): the name of the key that sealed it, in hex. */
static void ticket_key_name(const char *session, char *out, size_t size)
{
    char cmd[512], line[256];
    snprintf(cmd, sizeof(cmd), "openssl sess_id -in %s -noout -text", session);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    out[0] = '\0';
    bool next = false;
    while (fgets(line, sizeof(line), p) != NULL) {
        if (next) { /* "    0000 - 3a 5c ... -..." */
            const char *dash = strstr(line, " - ");
            CHECK(dash != NULL);
            snprintf(out, size, "%.47s", dash + 3);
            break;
        }
        next = strstr(line, "TLS session ticket:") != NULL;
    }
    pclose(p);
    CHECK(out[0] != '\0');
}

/* Issue 20, finding 8: the session ticket key was made at start and kept
 * for the process's life (one leaked key opened every recorded TLS 1.2
 * session). With --tls-ticket-rotate 1, a ticket sealed before a rotation
 * still resumes after it (the previous keys decrypt, and a fresh ticket
 * comes under the new key, whose name differs), and no longer once its
 * lifetime, two periods, is over. */
void case_tls_ticket_rotate(void)
{
    make_certs();
    struct h_server s;
    char report[16384], first[64], later[64];
    const char *rotate[] = {"--tls-ticket-rotate", "1", NULL};
    start_tls_only(&s, NULL, rotate);
    const char *addr = bare(s.addrs[0]);
    int64_t t0 = h_now_ms();
    const char *a[] = {"-sess_out", path("rotate-a.pem"), NULL};
    s_client_report(addr, a, report, sizeof(report));
    CHECK_CONTAINS(report, "New, TLSv1.3");
    ticket_key_name(path("rotate-a.pem"), first, sizeof(first));

    h_sleep_ms((int)(t0 + 1200 - h_now_ms())); /* one period later at least */
    const char *b[] = {"-sess_in", path("rotate-a.pem"), "-sess_out",
                       path("rotate-b.pem"), NULL};
    s_client_report(addr, b, report, sizeof(report));
    CHECK_CONTAINS(report, "Reused, TLSv1.3");
    ticket_key_name(path("rotate-b.pem"), later, sizeof(later));
    printf("ticket keys: %s, then %s\n", first, later);
    CHECK(strcmp(first, later) != 0);

    h_sleep_ms((int)(t0 + 3300 - h_now_ms())); /* past three periods */
    const char *c[] = {"-sess_in", path("rotate-a.pem"), NULL};
    s_client_report(addr, c, report, sizeof(report));
    CHECK(strstr(report, "Reused") == NULL);
    CHECK_CONTAINS(report, "New, TLSv1.3");
    stop_ok(&s);
}

/* Issue 20, finding 8: with an RSA certificate, TLS 1.2 negotiated static
 * RSA key exchange and CBC with SHA-1 (no forward secrecy) for a client
 * that asked. By default TLS 1.2 offers ECDHE with AEAD only; --tls-ciphers
 * sets the list; a list OpenSSL cannot use is refused at start (64). */
void case_tls_ciphers(void)
{
    make_certs();
    char cmd[1024], report[16384];
    snprintf(cmd, sizeof(cmd),
             "cd %s && openssl req -x509 -newkey rsa:2048 -nodes -keyout "
             "rsa.key -out rsa.pem -days 2 -subj /CN=localhost -addext "
             "subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null",
             dir);
    CHECK_INT(system(cmd), ==, 0);
    const char *static_rsa[] = {"-tls1_2", "-cipher", "AES128-SHA", NULL};
    const char *any12[] = {"-tls1_2", NULL};
    for (int custom = 0; custom < 2; custom++) {
        const char *args[] = {"--listen",
                              "tls:127.0.0.1:0",
                              "--tls-cert",
                              path("rsa.pem"),
                              "--tls-key",
                              path("rsa.key"),
                              custom ? "--tls-ciphers" : NULL,
                              "AES128-SHA:ECDHE+AESGCM",
                              NULL};
        struct h_server s;
        CHECK_INT(h_server_start(&s, NULL, args, 1, 0), ==, 0);
        const char *addr = bare(s.addrs[0]);
        s_client_report(addr, static_rsa, report, sizeof(report));
        bool took = strstr(report, "Cipher is AES128-SHA") != NULL;
        printf("%s: TLS 1.2, static RSA with AES-CBC and SHA-1 asked: %s\n",
               custom ? "--tls-ciphers AES128-SHA:ECDHE+AESGCM" : "default",
               took ? "taken" : "refused");
        CHECK(took == (custom == 1));
        s_client_report(addr, any12, report, sizeof(report));
        CHECK_CONTAINS(report, "Cipher is ECDHE-RSA-AES256-GCM-SHA384");
        stop_ok(&s);
    }
    struct h_run r;
    const char *bad[] = {
        "serve",          "--listen",  "tls:127.0.0.1:0", "--tls-cert",
        path("rsa.pem"),  "--tls-key", path("rsa.key"),   "--tls-ciphers",
        "NO-SUCH-CIPHER", NULL};
    CHECK_INT(h_run_echokit(bad, -1, 10000, &r), ==, 64);
    CHECK_CONTAINS(r.err, "--tls-ciphers 'NO-SUCH-CIPHER'");
}
#endif /* EK_HAVE_TLS */

/* What serve and send say about TLS options that cannot work: the same
 * with or without TLS in the build, but for the reason. */
void case_tls_usage(void)
{
    struct h_run r;
    const char *no_cert[] = {"serve", "--listen", "tls:127.0.0.1:0", NULL};
    const char *no_listener[] = {"serve",      "--listen", "127.0.0.1:0",
                                 "--tls-cert", "c.pem",    "--tls-key",
                                 "k.pem",      NULL};
    const char *udp[] = {"serve", "--udp", "--listen", "tls:127.0.0.1:0", NULL};
    const char *bad_version[] = {"serve", "--tls-min-version", "1.1", NULL};
    const char *bad_alpn[] = {"serve", "--tls-alpn", "a,,b", NULL};
    const char *client_opt[] = {"send", "--insecure", "127.0.0.1:9", NULL};
    const char *no_name[] = {"send", "--tls", "unix:/nonexistent", NULL};
#ifdef EK_HAVE_TLS
    CHECK_INT(h_run_echokit(no_cert, -1, 10000, &r), ==, 64);
    CHECK_CONTAINS(r.err, "need --tls-cert");
    CHECK_INT(h_run_echokit(no_listener, -1, 10000, &r), ==, 64);
    CHECK_CONTAINS(r.err, "no");
    CHECK_INT(h_run_echokit(udp, -1, 10000, &r), ==, 64);
    /* A certificate that is not one: 78, saying which file and why. */
    char bogus[256];
    snprintf(bogus, sizeof(bogus), "%s/bogus.pem", h_tmpdir());
    FILE *f = fopen(bogus, "w");
    CHECK(f != NULL);
    fputs("not a certificate\n", f);
    fclose(f);
    const char *bad_cert[] = {"serve",      "--listen", "tls:127.0.0.1:0",
                              "--tls-cert", bogus,      "--tls-key",
                              bogus,        NULL};
    CHECK_INT(h_run_echokit(bad_cert, -1, 10000, &r), ==, 78);
    CHECK_CONTAINS(r.err, bogus);
    /* A model that serves no TLS yet says so (69). */
    for (size_t i = 0; ek_models[i] != NULL; i++)
        if (!ek_model_has(ek_models[i], EK_CAP_TLS)) {
            const char *io[] = {"serve",
                                "--io",
                                ek_models[i]->name,
                                "--listen",
                                "tls:127.0.0.1:0",
                                "--tls-cert",
                                bogus,
                                "--tls-key",
                                bogus,
                                NULL};
            CHECK_INT(h_run_echokit(io, -1, 10000, &r), ==, 69);
            if (ek_model_unavailable(ek_models[i]) == NULL)
                CHECK_CONTAINS(r.err, "tls: listeners");
        }
#else
    CHECK_INT(h_run_echokit(no_cert, -1, 10000, &r), ==, 69);
    CHECK_CONTAINS(r.err, "no TLS");
    CHECK_INT(h_run_echokit(no_listener, -1, 10000, &r), ==, 69);
    (void)udp;
#endif
    CHECK_INT(h_run_echokit(bad_version, -1, 10000, &r), ==, 64);
    CHECK_INT(h_run_echokit(bad_alpn, -1, 10000, &r), ==, 64);
    /* A key's period is whole seconds: 1.5 was taken as 1 (issue 20's
     * review, finding 10). */
    const char *fraction[] = {"serve", "--tls-ticket-rotate", "1.5", NULL};
    CHECK_INT(h_run_echokit(fraction, -1, 10000, &r), ==, 64);
    CHECK_CONTAINS(r.err, "must be whole seconds");
    CHECK_INT(h_run_echokit(client_opt, -1, 10000, &r), ==, 64);
    CHECK_CONTAINS(r.err, "need --tls");
#ifdef EK_HAVE_TLS
    /* Nothing to check the certificate's name against: said, not
     * skipped (found by review: any trusted certificate was accepted). */
    CHECK_INT(h_run_echokit(no_name, -1, 10000, &r), ==, 64);
    CHECK_CONTAINS(r.err, "--sni");
#else
    (void)no_name;
#endif
}
