/*
 * cmd_bench: what the parts of `echokit bench` share: cmd_bench.c (the
 * options and the run), cmd_bench_report.c (the report: text, JSON, the
 * intervals) and cmd_bench_merge.c (`bench merge`, which reports runs
 * added together the same way).
 */
#ifndef EK_CMD_BENCH_H
#define EK_CMD_BENCH_H

#include "ek_bench.h"
#include "ek_cli.h"
#include "ek_sockopt.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct bench_options {
    const char *server;
    enum ek_bench_mode mode;
    uint64_t conns, size, depth, rate, threads, exchanges;
    struct ek_client_tls tls;
    struct ek_sockopts sock;
    bool tls_on;        /* TLS is on (after ek_client_tls_start) */
    char tls_what[160]; /* what the first handshake negotiated */
    int64_t duration_ms, warmup_ms, timeout_ms;
    pid_t server_pid;
    bool json;
    bool udp;
    int64_t interval_ms; /* -i; 0: no intervals */
    bool json_stream;
    const char *hdr_log;
    /* --share I/N: this run is the I-th of N that together make the load
     * of -c and -r (conns and rate are already this run's share). */
    uint32_t share_index, share_count; /* 0 and 0 without --share */
    uint64_t spin_us;                  /* --spin-us */
    bool timestamps;                   /* --timestamps */
    int64_t udp_timeout_ms;            /* --udp-timeout */
    char format; /* --format: k m g K M G, or 0: what fits */
    /* The command line, for the report (NULL in a merged result). */
    int argc;
    char **argv;
};

/* What --server-pid and getrusage say about one moment. */
struct cpu_sample {
    long long server_us; /* -1 if unknown */
    long long client_us;
};

/* A run's id: 16 random bytes as 32 lowercase hex digits, and its NUL. */
#define BENCH_RUN_ID_SIZE 33

/* A new run id into id: random (from the kernel; from the clock, the pid
 * and a counter should that fail: unique all the same). */
void bench_new_run_id(char id[BENCH_RUN_ID_SIZE]);

/* A run's report (or several runs', merged). */
struct report {
    const struct bench_options *o;
    const char *peer;
    struct ek_bench_result r;
    double seconds;               /* measured */
    int64_t t_measure;            /* when the window began (ek_now_ns) */
    double start_time;            /* the same, in seconds since the epoch */
    struct ek_bench_interval *iv; /* where intervals are read into */
    FILE *hdr_log;                /* --hdr-log */
    int status;                   /* EX_IOERR once the log failed */
    struct cpu_sample before, after;
    long rss_kb, pss_kb, pss_base_kb; /* -1 if unknown */
    size_t runs;     /* bench merge: how many runs; 0 for one bench */
    double common_s; /* bench merge: how long they all ran together */
    int interrupted; /* the signal that cut the window short, or 0 */
    char run_id[BENCH_RUN_ID_SIZE]; /* bench: random, what merge tells by */
    /* bench merge: common_s over the shortest run's seconds (0 to 1); the
     * ids of the runs it holds (results from before run ids have none);
     * whether its inputs were HdrHistogram logs alone, which carry
     * latencies only (connections, bytes, errors... are not known). */
    double overlap;
    const char (*run_ids)[BENCH_RUN_ID_SIZE];
    size_t nrun_ids;
    bool log_only;
};

/* The histograms of a result, by name: the key under "hdr" in --json, the
 * tag of its --hdr-log lines (none for the latency's) and, with "_us",
 * the key of its percentiles. The latency first; the others are connect
 * mode's. */
enum {
    BENCH_LATENCY,
    BENCH_CONNECT_LAT,
    BENCH_HANDSHAKE_LAT,
    BENCH_FIRST_ECHO_LAT,
    BENCH_UNCORRECTED, /* open loop rr */
    BENCH_SEND_LAG,    /* open loop rr */
    BENCH_KERNEL_RTT,  /* --timestamps */
    BENCH_HISTOGRAMS
};
extern const char *const bench_hist_names[BENCH_HISTOGRAMS];
struct ek_hist *bench_hist(struct ek_bench_result *r, int which);
const struct ek_hist *bench_hist_of(const struct ek_bench_result *r, int which);

/* Whether a run made with o fills histogram `which`: the latency in rr
 * and connect, the phases in connect, the uncorrected latency and the
 * send lag in open-loop rr, the kernel's round trip with --timestamps. */
bool bench_hist_used(const struct bench_options *o, int which);

/* stream mode: the largest write (-s). */
#define BENCH_STREAM_WRITE_MAX ((uint64_t)16 << 20)

/* Why an open loop did not achieve the rate it was offered (below 95%
 * of it: what was achieved and the likely cause), or NULL if it did, or
 * was no open loop. */
const char *bench_rate_missed(const struct report *rp);

/* "rr", "stream", "idle", "connect". */
const char *bench_mode_name(enum ek_bench_mode m);

/* Whether s names a mode ("rr", ...); if so, it is in *m. */
bool bench_parse_mode(const char *s, enum ek_bench_mode *m);

/* --share's "I/N", 0 <= I < N <= 100000: 0, or -1 with *why. */
int bench_parse_share(const char *s, uint32_t *index, uint32_t *count,
                      const char **why);

/* "21.3 us", "1.25 ms", "2.10 s" into buf. */
const char *bench_fmt_ns(uint64_t ns, char *buf, size_t size);

/* Every error r counts: mismatches, resets, early closes, timeouts,
 * failed connects and TLS handshakes. */
uint64_t bench_errors_of(const struct ek_bench_result *r);

/* The summary on stdout: as text, or as one JSON object (no newline). */
void bench_print_text(const struct report *rp);
void bench_print_json(const struct report *rp);

/* h's percentile spectrum in HdrHistogram's text format (what its
 * plotters read): value (us), percentile, count, 1/(1-percentile). */
void bench_print_percentiles(const struct ek_hist *h);

/* --json-stream's first line: what the run is. */
void bench_json_stream_start(const struct report *rp);

/* One interval (its times on ek_now_ns's clock, the window beginning at
 * measure) as -i's line, --json-stream's object and --hdr-log's lines,
 * whichever were asked for; nothing for one of no length (the run stopped
 * in its warm-up). Returns 0, or EX_IOERR after saying why (the log could
 * not be written; it is not written to again once rp->status says so). */
int bench_emit_interval(const struct report *rp,
                        const struct ek_bench_interval *iv, int64_t measure);

#endif
