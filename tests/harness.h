/*
 * harness: drives the real echokit binary over real sockets.
 *
 * - servers: start `echokit serve` as a child, read its "listening on"
 *   lines, signal it, wait for its exit status, read its log and memory;
 * - commands: run `echokit send ...` and capture stdout, stderr, status;
 * - streams: many non-blocking clients in one poll loop, each sending its
 *   own pseudo-random stream and checking every byte of the echo.
 *
 * Any server still running when the test exits is killed (atexit), and
 * its log is printed if the test failed, so a failure never leaks a
 * process and always shows what the server said.
 */
#ifndef EK_HARNESS_H
#define EK_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define H_MAX_LISTENERS 8

extern const char *h_echokit; /* path of the binary under test */

struct h_server {
    pid_t pid;
    int naddrs;
    char addrs[H_MAX_LISTENERS][256]; /* as printed: "127.0.0.1:41234" */
    char log_path[128];               /* the server's stderr */
    int stdout_fd;
    int exit_status; /* once reaped: 0..255, 128+N for signal N; else -1 */
};

/* Starts `echokit serve --io MODEL ARGS...` (args NULL-terminated; MODEL
 * "epoll-t2" means --io epoll --threads 2) and
 * waits until it printed `expect` listening lines. nofile > 0 sets
 * RLIMIT_NOFILE (soft and hard) in the child first. Returns 0; or, when
 * the server exited before listening, its exit status (the test decides
 * whether that is a skip or a failure; its log says why). */
int h_server_start(struct h_server *s, const char *model,
                   const char *const *args, int expect, long nofile);

/* When not NULL, servers start as `WRAPPER... echokit serve ...` (e.g.
 * systemd-socket-activate, setpriv); the wrapper must exec echokit. */
extern const char *const *h_server_wrapper;

/* Reads the server's stdout up to a line starting with prefix and copies
 * the rest of that line into out. False at EOF or after timeout_ms. */
bool h_server_read_line(struct h_server *s, const char *prefix, char *out,
                        size_t size, int timeout_ms);

/* Like h_server_start, but a server that cannot start is a SKIP when it
 * says its model is unavailable, and a failure otherwise. */
void h_server_start_or_skip(struct h_server *s, const char *model,
                            const char *const *args, int expect);

/* Sends sig and waits up to timeout_ms for the exit. Returns the exit
 * status, or -1 on timeout (the server is then killed). */
int h_server_stop(struct h_server *s, int sig, int timeout_ms);

/* Waits up to timeout_ms for an exit without signalling. Returns the exit
 * status, or -1 if still running. */
int h_server_wait(struct h_server *s, int timeout_ms);

/* The server's stderr so far (static buffer, NUL-terminated). */
const char *h_server_log(const struct h_server *s);

/* Connects to an address as the server printed it. Returns a
 * non-blocking fd, or -errno. */
int h_connect(const char *addr);

/* A stream socket with SO_REUSEADDR, for the suite's own clients and fake
 * servers (as echokit's clients and listeners have it), so that their
 * TIME_WAITs never keep a server off a port they used. */
int h_client_socket(int family);

/* Like h_connect, failing the test on error. */
int h_connect_or_die(const char *addr);

/* Runs echokit with argv (NULL-terminated, without the binary), stdin
 * from in_fd (-1: /dev/null), and captures stdout and stderr (static
 * buffers). Returns the exit status (-1 on timeout). */
struct h_run {
    int status;
    char out[1 << 16];
    size_t out_len;
    char err[1 << 14];
    int64_t wall_ms; /* from the start to the exit (or the kill) */
    double cpu_s;    /* the command's CPU time, user and system */
    long max_rss_kb; /* its peak resident memory */
};
int h_run_echokit(const char *const *argv, int in_fd, int timeout_ms,
                  struct h_run *r);

/* The same, sending sig to the command signal_after_ms after its start. */
int h_run_echokit_signal(const char *const *argv, int in_fd, int timeout_ms,
                         int signal_after_ms, int sig, struct h_run *r);

/* Whether text is one well-formed JSON value (RFC 8259), whitespace
 * around it allowed. */
bool h_json_valid(const char *text);

/* The number stored under "key" in a flat JSON object text; false if the
 * key is missing or its value is not a number (null). */
bool h_json_number(const char *text, const char *key, double *out);

/* The pattern: byte `off` of stream `seed`. Deterministic and cheap, so
 * every byte of every echo is checked without storing what was sent. */
void h_pattern(uint64_t seed, uint64_t off, unsigned char *buf, size_t n);

/* One client's stream: send `total` bytes of pattern `seed`, check the
 * echo byte for byte. */
struct h_stream {
    int fd;
    uint64_t seed;
    uint64_t total;
    size_t chunk;    /* largest send; 0 = 64 KiB */
    bool shut_wr;    /* shutdown(SHUT_WR) once everything is sent */
    bool expect_eof; /* done only when the server has closed */
    bool no_read;    /* do not read (a client that never reads) */
    bool quiet;      /* failure expected: do not print diagnostics */
    /* progress */
    uint64_t sent, received;
    bool wr_closed, eof;
    int error; /* errno that broke the stream, 0 if none */
    int64_t last_progress;
};

/* Runs the streams until all are done, one fails, or timeout_ms passes.
 * With stall_ms > 0 also returns when no stream made progress for that
 * long (for no_read clients: the server applied backpressure). Returns 0
 * when all are done, 1 on stall, -1 on failure or timeout (diagnosed on
 * stderr). */
int h_streams_run(struct h_stream *v, size_t n, int timeout_ms, int stall_ms);

/* A stream that must complete: runs it, failing the test otherwise. */
void h_echo_check(int fd, uint64_t seed, uint64_t total, bool close_after);

/* A misbehaving echo server for the clients' tests, in a child process,
 * serving any number of connections:
 *   "corrupt": echoes, but flips bit 5 of every param-th byte (counted
 *              over all connections: 1000000 = one byte in a million);
 *   "short":   echoes the first param bytes of a connection, then closes;
 *   "silent":  accepts and reads, never answers.
 * Returns its pid; *addr gets its address. End it with h_fake_end. */
pid_t h_fake_server(const char *how, uint64_t param, char *addr, size_t size);
void h_fake_end(pid_t pid);

/* For a case's own fake server: a socket on 127.0.0.1 at a port the
 * kernel chose (*port), SOCK_STREAM (listening, with SO_REUSEADDR as
 * h_client_socket) or SOCK_DGRAM. */
int h_loopback_socket(int type, unsigned *port);

/* Forks the process of a case's own fake server, which serves on fd:
 * returns its pid in the test (which closes fd; h_fake_end ends it), 0 in
 * the child, which is ended by SIGALRM after max_s seconds whatever
 * becomes of the test. */
pid_t h_fork_server(int fd, unsigned max_s);

/* The median of v[0..n) (n odd: the middle one; sorts v). Rounds that
 * alternate on this noisy machine are compared by their medians. */
double h_median(double *v, int n);

/* ms of CLOCK_MONOTONIC; sleeping. */
int64_t h_now_ms(void);
void h_sleep_ms(int ms);

/* A fresh directory under /tmp, removed at exit (with what is in it). */
const char *h_tmpdir(void);

#endif
