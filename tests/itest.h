/*
 * itest.h: what the integration cases share across files: itest.c holds
 * the helpers below, the echo and CLI cases and the dispatch; each
 * itest_<feature>.c holds the cases of one feature (list below).
 */
#ifndef EK_ITEST_H
#define EK_ITEST_H

#include "ek_model.h"
#include "harness.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/resource.h>
#include <stdint.h>

#define KiB 1024ull
#define MiB (1024ull * 1024ull)

/* Sanitizers keep shadow memory beside every allocation and stack: memory
 * bounds are four times looser in those builds, eight under TSan (whose
 * shadow of a thread's stack is the larger). */
#if defined(EK_TEST_TSAN)
#define MEM_SLACK 8L
#elif defined(EK_TEST_SANITIZED)
#define MEM_SLACK 4L
#else
#define MEM_SLACK 1L
#endif

/* Deadlines that measure the server's latency, not its correctness, are
 * this many times longer in sanitized builds: ThreadSanitizer makes
 * creating a thread and every syscall several times slower, and CI runs
 * two such cases at once on two cores. */
#if defined(EK_TEST_SANITIZED)
#define TIME_SLACK 4
#else
#define TIME_SLACK 1
#endif

/* The model under test ("epoll", "epoll-t2", ...), NULL for CLI cases. */
extern const char *model;

/* Starts the model under test on 127.0.0.1:0 with extra arguments. */
void start(struct h_server *s, const char *const *extra);

/* Stops with SIGTERM and checks for a clean exit. */
/* A server (the default model) on 127.0.0.1:0 over TCP (addrs[0]) and
 * UDP (addrs[1]), answering UDP without a rate limit. */
void start_tcp_udp(struct h_server *s);
void stop_ok(struct h_server *s);

/* Makes close(fd) send a reset (SO_LINGER 0) instead of a FIN. */
void set_linger_zero(int fd);

/* Whether the server closed fd within timeout_ms (EOF or reset). */
bool closed_by_peer(int fd, int timeout_ms);

/* A 100-byte echo on fd within timeout_ms. */
bool quick_echo(int fd, uint64_t seed, int timeout_ms);

/* The model under test (MODEL without its "-tN"), from the model table;
 * the test fails when there is none (CLI cases). */
const struct ek_model *tested_model(void);

/* Whether the model under test has any of caps (EK_CAP_*, ek_model.h):
 * cases ask what a model does, never its name. */
bool model_has(unsigned caps);

/* Sends sig to pid after_ms from now, from a helper process, so that it
 * lands while this one is busy; returns the helper's pid (waitpid it). */
pid_t signal_later(pid_t pid, int sig, int after_ms);

/* A file of `size` bytes of pattern `seed` under the test's temporary
 * directory, open for reading from its start. */
int write_temp_file(const char *name, uint64_t seed, size_t size);

/* Raises this process's soft open-file limit to the hard one; a SKIP when
 * the hard limit is below want. */
void raise_own_fd_limit(rlim_t want);

/* Waits up to timeout_ms for the server's log to contain text. */
bool log_shows(struct h_server *s, const char *text, int timeout_ms);

/* The "HOST:PORT" of the server's "metrics on http://HOST:PORT/metrics"
 * line. */
void metrics_addr(struct h_server *s, char *out, size_t size);

/* GET path from addr over HTTP/1.0: the status code, body into body. */
int http_get(const char *addr, const char *path, char *body, size_t size);

/* The value of the sample `name` (with its labels, if any) in Prometheus
 * text; -1 when absent. */
long long metric(const char *text, const char *name);

/* Scrapes until `name` reads `want` (counters are updated just after the
 * bytes move, so the client may see the echo a moment before the count). */
long long metric_becomes(const char *addr, const char *name, long long want);

/* from: src:src_port; to: addr, an IPv4 HOST:PORT. */
void ipv4_endpoints(const char *src, unsigned src_port, const char *addr,
                    struct sockaddr_in *from, struct sockaddr_in *to);

/* Connects to addr (an IPv4 HOST:PORT) from source address src: a
 * non-blocking fd. */
int connect_from(const char *src, const char *addr);

/* Moves this test into a network namespace of its own (a SKIP where that
 * is not allowed) with loopback up and, when extra_ipv4 is not NULL, that
 * address on it too: addresses no other process sees. */
void own_network(const char *extra_ipv4);

/* A TCP port outside the ephemeral range, free right now. */
unsigned free_fixed_port(void);

/* Reads the file at path whole into buf, NUL-terminated, in one read
 * (files that exist whole: /proc, what a finished command wrote); the
 * test fails if it is missing, empty or too big. Returns its length. */
size_t read_text_file(const char *path, char *buf, size_t size);

/* Reads the source tree's file rel (e.g. "contrib/haproxy.cfg") whole
 * into buf, NUL-terminated; the test fails if it is missing or too big.
 * Returns its length. */
size_t read_source_file(const char *rel, char *buf, size_t size);

/* The cases of the itest_<feature>.c files. */
void case_counters(void);       /* itest_metrics.c */
void case_idle_timeout(void);   /* itest_idle.c */
void case_access_control(void); /* itest_acl.c */
void case_log_json(void);       /* itest_logs.c */
void case_pidfile(void);        /* itest_service.c */
void case_user(void);
void case_inetd(void);
void case_socket_activation(void);
void case_contrib_units(void);
void case_socket_memory(void);
void case_proxy_protocol(void); /* itest_proxy.c */
void case_proxy_idle(void);
void case_haproxy_failover(void);
void case_udp_echo(void); /* itest_udp.c */
void case_udp_send(void);
void case_udp_clients(void);
void case_help_matches_man(void); /* itest_man.c */
void case_tls_echo(void);         /* itest_tls.c */
void case_tls_bad_input(void);
void case_tls_proxy(void);
void case_tls_slow_reader(void);
void case_tls_idle_drain(void);
void case_tls_half_close(void);
void case_tls_reload_ca(void);
void case_tls_features(void);
void case_tls_client(void);
void case_tls_client_timeout(void);
void case_tls_truncation(void);
void case_tls_file_errors(void);
void case_tls_usage(void);
void case_send_received(void); /* itest_clients.c */
void case_ping_interval(void);
void case_tls_hello_bound(void);
void case_tls_clock_counts(void);
void case_tls_flight_bound(void);
void case_tls_alert(void);
void case_tls_burst_idle(void);
void case_tls_ticket_rotate(void);
void case_tls_ciphers(void);
void case_bench_source(void); /* itest_bench.c */
void case_client_marks(void);
void case_bench_hdr_log(void);
void case_bench_merge(void);
void case_bench_merge_crafted(void);
void case_bench_share(void);
void case_bench_stalled_reader(void);
void case_bench_udp_silent(void); /* itest_trust.c */
void case_bench_open_loop_capacity(void);
void case_bench_send_lag(void);
void case_bench_udp_stall(void);
void case_bench_stream_size(void);
void case_bench_fd_limit(void);
void case_bench_interrupt(void);
void case_bench_self_describing(void);
void case_bench_agreement(void);

/* The cases of itest_stress.c. */
void case_stress_10k(void);
void case_random_resets(void);
void case_sigterm_under_load(void);
void case_slow_readers_1000(void);
void case_threads_fd_limit(void);
void case_sigterm_at_start(void);
void case_slow_readers_newcomers(void);
void case_flood_bound(void);
void case_fair_buffers(void);
void case_queue_exact(void);
void case_threads_auto_many_cpus(void);
void case_metrics_busy(void);
void case_process_orphan(void);
void case_udp_rate_collide(void);
void case_log_injection(void);
void case_proxy_trust(void);

#endif
