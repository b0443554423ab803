/*
 * echokit bench: options, the run's clock, and the report (text or JSON).
 * The load itself is ek_bench.c.
 */
#include "ek_bench.h"
#include "ek_cli.h"
#include "ek_sockopt.h"
#include "ek_conn.h"
#include "ek_log.h"
#include "ek_net.h"
#include "ek_platform.h"
#include "ek_proc.h"
#include "ek_util.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: echokit bench [options] [HOST:PORT]\n"
    "\n"
    "Load an echo service and measure it; every byte of every echo is "
    "checked.\n"
    "\n"
    "  -m, --mode MODE       rr: request/response (default); stream: one-"
    "way bulk,\n"
    "                        echo checked; idle: connections held open "
    "(memory);\n"
    "                        connect: connection rate: each slot connects, "
    "does\n"
    "                        --exchanges request/responses, closes, "
    "again\n"
    "  -c, --conns N         connections (default 50; connect: slots, "
    "each one\n"
    "                        connection at a time)\n"
    "  -n, --exchanges N     connect: request/responses per connection "
    "(default 1)\n"
    "  -s, --size BYTES      message size (default 64)\n"
    "  -d, --depth N         rr: messages in flight per connection "
    "(default 1)\n"
    "  -r, --rate N          rr: open loop, N messages/s over all "
    "connections;\n"
    "                        latency runs from the intended send time; "
    "connect:\n"
    "                        N connections/s, time to first echo from the "
    "intended\n"
    "                        start\n"
    "  -t, --duration SECS   measured time (default 10)\n"
    "  -w, --warmup SECS     unmeasured time before it (default 1)\n"
    "  -T, --threads N       client threads (default 1)\n"
    "      --server-pid PID  also report the server's CPU time per message "
    "and its\n"
    "                        memory (with idle: per connection)\n"
    "      --timeout SECS    connect timeout; a connection owed an echo "
    "that sees\n"
    "                        nothing for this long fails (default 10)\n"
    "  -u, --udp             rr over UDP (also: udp:HOST:PORT): a datagram "
    "per\n"
    "                        message, 8 to 65507 bytes; loss (no echo "
    "within 1 s),\n"
    "                        reordering and duplicates are counted, not "
    "errors\n"
    "      --json            print the result as one JSON object on stdout\n";
/* After the TLS options. */
static const char usage_tail[] =
    "  -h, --help            this text\n"
    "\n"
    "A progress line is written to stderr each second when it is a "
    "terminal.\n"
    "Exit status: 0 every echo verified and no connection failed; 1 "
    "mismatch,\n"
    "reset, early close, timeout, failed connect or TLS handshake; 64 bad "
    "usage;\n"
    "68 host not found; 69 cannot connect at all (or no TLS in this build); "
    "76 the\n"
    "first TLS handshake failed; 78 unusable --tls-cert, --tls-key or "
    "--tls-ca.\n";

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
};

/* What --server-pid and getrusage say about one moment. */
struct cpu_sample {
    long long server_us; /* -1 if unknown */
    long long client_us;
};

static volatile sig_atomic_t interrupted;

static void on_sigint(int signo)
{
    (void)signo;
    interrupted = 1;
}

static long long client_cpu_us(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
           ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

static void sample(const struct bench_options *o, struct cpu_sample *s)
{
    s->server_us = o->server_pid ? ek_proc_cpu_us(o->server_pid, 1) : -1;
    s->client_us = client_cpu_us();
}

static const char *mode_name(enum ek_bench_mode m)
{
    return m == EK_BENCH_STREAM    ? "stream"
           : m == EK_BENCH_IDLE    ? "idle"
           : m == EK_BENCH_CONNECT ? "connect"
                                   : "rr";
}

/* "21.3 us", "1.25 ms", "2.10 s" */
static const char *fmt_ns(uint64_t ns, char *buf, size_t size)
{
    if (ns < 1000000)
        snprintf(buf, size, "%.1f us", (double)ns / 1e3);
    else if (ns < 1000000000)
        snprintf(buf, size, "%.2f ms", (double)ns / 1e6);
    else
        snprintf(buf, size, "%.2f s", (double)ns / 1e9);
    return buf;
}

struct report {
    const struct bench_options *o;
    const char *peer;
    struct ek_bench_result r;
    double seconds; /* measured */
    struct cpu_sample before, after;
    long rss_kb, pss_kb, pss_base_kb; /* -1 if unknown */
};

static uint64_t errors_of(const struct ek_bench_result *r)
{
    return r->mismatches + r->resets + r->closed + r->timeouts +
           r->conns_failed + r->tls_failed;
}

/* "min 21.3 us, p50 ..., max ..." */
static void print_quantiles(const char *label, const struct ek_hist *h)
{
    char a[32], b[32], c[32], d[32], e[32], f[32];
    printf("%-13smin %s, p50 %s, p90 %s, p99 %s, p99.9 %s, max %s\n", label,
           fmt_ns(h->min, a, sizeof(a)),
           fmt_ns(ek_hist_quantile(h, 0.50), b, sizeof(b)),
           fmt_ns(ek_hist_quantile(h, 0.90), c, sizeof(c)),
           fmt_ns(ek_hist_quantile(h, 0.99), d, sizeof(d)),
           fmt_ns(ek_hist_quantile(h, 0.999), e, sizeof(e)),
           fmt_ns(h->max, f, sizeof(f)));
}

/* "\"name\":{\"min\":...}," in microseconds, or "\"name\":null,". */
static void json_quantiles(const char *name, const struct ek_hist *h)
{
    if (h->count == 0) {
        printf("\"%s\":null,", name);
        return;
    }
    printf("\"%s\":{\"min\":%.3f,\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,"
           "\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},",
           name, (double)h->min / 1e3, ek_hist_mean(h) / 1e3,
           (double)ek_hist_quantile(h, 0.5) / 1e3,
           (double)ek_hist_quantile(h, 0.9) / 1e3,
           (double)ek_hist_quantile(h, 0.99) / 1e3,
           (double)ek_hist_quantile(h, 0.999) / 1e3, (double)h->max / 1e3);
}

/* CPU microseconds per message, or per connection in connect mode. */
static double per_unit(const struct ek_bench_result *r,
                       const struct bench_options *o, long long us)
{
    uint64_t n = o->mode == EK_BENCH_CONNECT ? r->conns_done : r->msgs;
    return n ? (double)us / (double)n : 0.0;
}

static void print_text(const struct report *rp)
{
    const struct bench_options *o = rp->o;
    const struct ek_bench_result *r = &rp->r;

    bool connect = o->mode == EK_BENCH_CONNECT;
    printf("echokit bench: %s%s%s to %s, %llu %s%s x %llu B",
           mode_name(o->mode), o->udp ? " over UDP" : "",
           o->tls_on ? " over TLS" : "", rp->peer, (unsigned long long)o->conns,
           connect ? "slot" : "connection", o->conns == 1 ? "" : "s",
           (unsigned long long)o->size);
    if (connect)
        printf(", %llu exchange%s each", (unsigned long long)o->exchanges,
               o->exchanges == 1 ? "" : "s");
    if (o->mode == EK_BENCH_RR)
        printf(o->rate ? ", open loop at %llu msgs/s" : ", depth %llu",
               (unsigned long long)(o->rate ? o->rate : o->depth));
    else if (connect && o->rate)
        printf(", open loop at %llu conns/s", (unsigned long long)o->rate);
    printf(", %llu thread%s, %.1f s measured after %.1f s warm-up\n",
           (unsigned long long)o->threads, o->threads == 1 ? "" : "s",
           rp->seconds, (double)o->warmup_ms / 1000.0);
    if (o->tls_on && o->tls_what[0] != '\0')
        printf("tls          %s\n", o->tls_what);
    if (connect && o->tls_on)
        printf("connections  %.0f/s: %llu done (%llu resumed), %u failed\n",
               (double)r->conns_done / rp->seconds,
               (unsigned long long)r->conns_done,
               (unsigned long long)r->conns_resumed, r->conns_failed);
    else if (connect)
        printf("connections  %.0f/s: %llu done, %u failed\n",
               (double)r->conns_done / rp->seconds,
               (unsigned long long)r->conns_done, r->conns_failed);
    else
        printf("connections  %u made, %u failed\n", r->conns_made,
               r->conns_failed);
    if (connect && r->connect_lat.count > 0)
        print_quantiles("connect", &r->connect_lat);
    if (connect && r->handshake_lat.count > 0)
        print_quantiles("handshake", &r->handshake_lat);
    if (connect && r->first_echo_lat.count > 0)
        print_quantiles("first echo", &r->first_echo_lat);
    if (o->mode != EK_BENCH_IDLE)
        printf("throughput   %.0f msgs/s, %.2f MiB/s each way\n",
               (double)r->msgs / rp->seconds,
               (double)r->bytes / rp->seconds / 1048576.0);
    if ((o->mode == EK_BENCH_RR || connect) && r->latency.count > 0)
        print_quantiles("latency", &r->latency);
    printf("errors       %llu (mismatched %llu, reset %llu, closed %llu, no "
           "echo %llu, connect %u, tls %llu)\n",
           (unsigned long long)errors_of(r), (unsigned long long)r->mismatches,
           (unsigned long long)r->resets, (unsigned long long)r->closed,
           (unsigned long long)r->timeouts, r->conns_failed,
           (unsigned long long)r->tls_failed);
    if (o->udp)
        printf("datagrams    %llu lost, %llu out of order, %llu duplicated or "
               "late\n",
               (unsigned long long)r->lost, (unsigned long long)r->reordered,
               (unsigned long long)r->duplicates);
    if (r->first_error[0] != '\0')
        printf("first error  %s\n", r->first_error);
    if (o->server_pid) {
        long long us = rp->after.server_us - rp->before.server_us;
        printf("server       pid %d:", (int)o->server_pid);
        if (rp->before.server_us >= 0 && rp->after.server_us >= 0 &&
            o->mode != EK_BENCH_IDLE)
            printf(" CPU %.2f s = %.2f us/%s;", (double)us / 1e6,
                   per_unit(r, o, us), connect ? "conn" : "msg");
        printf(" RSS %ld KiB, PSS %ld KiB", rp->rss_kb, rp->pss_kb);
        if (o->mode == EK_BENCH_IDLE && r->conns_made > 0)
            printf(" (%.0f bytes per connection)",
                   (double)(rp->pss_kb - rp->pss_base_kb) * 1024.0 /
                       r->conns_made);
        printf("\n");
    }
    if (o->mode != EK_BENCH_IDLE) {
        long long us = rp->after.client_us - rp->before.client_us;
        printf("client       CPU %.2f s = %.2f us/%s\n", (double)us / 1e6,
               per_unit(r, o, us), connect ? "conn" : "msg");
    }
}

static void print_json(const struct report *rp)
{
    const struct bench_options *o = rp->o;
    const struct ek_bench_result *r = &rp->r;
    const struct ek_hist *h = &r->latency;

    printf("{\"server\":\"%s\",\"mode\":\"%s\",\"conns\":%llu,"
           "\"conns_made\":%u,\"conns_failed\":%u,\"size\":%llu,"
           "\"depth\":%llu,\"rate\":%llu,\"threads\":%llu,"
           "\"warmup_s\":%.3f,\"duration_s\":%.3f,",
           rp->peer, mode_name(o->mode), (unsigned long long)o->conns,
           r->conns_made, r->conns_failed, (unsigned long long)o->size,
           (unsigned long long)o->depth, (unsigned long long)o->rate,
           (unsigned long long)o->threads, (double)o->warmup_ms / 1000.0,
           rp->seconds);
    printf("\"msgs\":%llu,\"bytes\":%llu,\"msgs_per_s\":%.1f,"
           "\"mib_per_s\":%.3f,",
           (unsigned long long)r->msgs, (unsigned long long)r->bytes,
           (double)r->msgs / rp->seconds,
           (double)r->bytes / rp->seconds / 1048576.0);
    printf("\"errors\":%llu,\"mismatches\":%llu,\"resets\":%llu,"
           "\"closed\":%llu,\"timeouts\":%llu,",
           (unsigned long long)errors_of(r), (unsigned long long)r->mismatches,
           (unsigned long long)r->resets, (unsigned long long)r->closed,
           (unsigned long long)r->timeouts);
    printf("\"udp\":%s,\"tls\":%s,\"tls_failed\":%llu,",
           o->udp ? "true" : "false", o->tls_on ? "true" : "false",
           (unsigned long long)r->tls_failed);
    if (o->mode == EK_BENCH_CONNECT) {
        printf("\"exchanges\":%llu,\"conns_done\":%llu,\"conns_per_s\":%.1f,"
               "\"conns_resumed\":%llu,",
               (unsigned long long)o->exchanges,
               (unsigned long long)r->conns_done,
               (double)r->conns_done / rp->seconds,
               (unsigned long long)r->conns_resumed);
        json_quantiles("connect_us", &r->connect_lat);
        json_quantiles("handshake_us", &r->handshake_lat);
        json_quantiles("first_echo_us", &r->first_echo_lat);
    }
    if (o->udp)
        printf("\"lost\":%llu,\"reordered\":%llu,\"duplicates\":%llu,",
               (unsigned long long)r->lost, (unsigned long long)r->reordered,
               (unsigned long long)r->duplicates);
    if (o->mode == EK_BENCH_RR || o->mode == EK_BENCH_CONNECT)
        json_quantiles("latency_us", h);
    else
        printf("\"latency_us\":null,");
    long long client_us = rp->after.client_us - rp->before.client_us;
    printf("\"client_cpu_s\":%.3f", (double)client_us / 1e6);
    if (o->server_pid) {
        long long us = rp->after.server_us - rp->before.server_us;
        bool cpu = rp->before.server_us >= 0 && rp->after.server_us >= 0;
        printf(",\"server_pid\":%d,\"server_cpu_s\":", (int)o->server_pid);
        printf(cpu ? "%.3f" : "null", (double)us / 1e6);
        printf(",\"server_cpu_us_per_msg\":");
        printf(cpu && r->msgs ? "%.3f" : "null",
               r->msgs ? (double)us / (double)r->msgs : 0.0);
        if (o->mode == EK_BENCH_CONNECT) {
            printf(",\"server_cpu_us_per_conn\":");
            printf(cpu && r->conns_done ? "%.3f" : "null", per_unit(r, o, us));
        }
        printf(",\"server_rss_kib\":%ld,\"server_pss_kib\":%ld", rp->rss_kb,
               rp->pss_kb);
        if (o->mode == EK_BENCH_IDLE && r->conns_made > 0)
            printf(",\"server_bytes_per_conn\":%.1f",
                   (double)(rp->pss_kb - rp->pss_base_kb) * 1024.0 /
                       r->conns_made);
    }
    if (r->first_error[0] != '\0') {
        printf(",\"first_error\":\"");
        for (const char *p = r->first_error; *p; p++)
            printf(*p == '"' || *p == '\\' ? "\\%c" : "%c", *p);
        printf("\"");
    }
    printf("}\n");
}

/* Sleeps until t (ek_now_ns), waking on SIGINT. */
static void sleep_until(int64_t t)
{
    while (!interrupted && ek_sleep_until_ns(t) == -EINTR)
        ;
}

/* Runs the clock: warm-up, samples at the window's edges, a progress
 * line each second. Returns the measured seconds. */
static double run_clock(struct ek_bench *b, const struct bench_options *o,
                        int64_t start, struct report *rp)
{
    const int64_t second = 1000000000;
    int64_t measure = start + o->warmup_ms * 1000000;
    int64_t end = measure + o->duration_ms * 1000000;
    int64_t tick = start + second;
    bool progress = isatty(STDERR_FILENO), sampled = false;
    uint64_t last_msgs = 0, last_bytes = 0;

    for (;;) {
        int64_t next = end;
        if (!sampled && measure < next)
            next = measure;
        if (tick < next)
            next = tick;
        sleep_until(next);
        if (interrupted)
            break;
        if (!sampled && next >= measure) {
            sample(o, &rp->before);
            sampled = true;
        }
        if (next >= end)
            break;
        if (next < tick)
            continue;
        tick += second;
        if (progress) {
            uint64_t msgs, bytes, errors;
            ek_bench_live(b, &msgs, &bytes, &errors);
            fprintf(stderr,
                    "\r[%5.1f s] %10.0f msgs/s %9.2f MiB/s  errors "
                    "%llu ",
                    (double)(next - start) / 1e9, (double)(msgs - last_msgs),
                    (double)(bytes - last_bytes) / 1048576.0,
                    (unsigned long long)errors);
            last_msgs = msgs;
            last_bytes = bytes;
        }
    }
    if (progress)
        fprintf(stderr, "\n");
    int64_t stopped = ek_now_ns();
    if (!sampled) { /* interrupted in the warm-up: nothing was measured */
        sample(o, &rp->before);
        measure = stopped;
    }
    ek_bench_stop(b);
    sample(o, &rp->after);
    int64_t last = stopped < end ? stopped : end;
    double s = (double)(last - measure) / 1e9;
    return s > 0 ? s : 1e-9;
}

static int parse_mode(const char *s, enum ek_bench_mode *m)
{
    if (strcmp(s, "rr") == 0)
        *m = EK_BENCH_RR;
    else if (strcmp(s, "stream") == 0)
        *m = EK_BENCH_STREAM;
    else if (strcmp(s, "idle") == 0)
        *m = EK_BENCH_IDLE;
    else if (strcmp(s, "connect") == 0)
        *m = EK_BENCH_CONNECT;
    else
        return -1;
    return 0;
}

#define OPT_SERVER_PID 1000
#define OPT_JSON 1001
#define OPT_TIMEOUT 1002

static int parse_options(int argc, char **argv, struct bench_options *o)
{
    static const struct option longopts[] = {
        {"mode", required_argument, NULL, 'm'},
        {"conns", required_argument, NULL, 'c'},
        {"size", required_argument, NULL, 's'},
        {"depth", required_argument, NULL, 'd'},
        {"rate", required_argument, NULL, 'r'},
        {"duration", required_argument, NULL, 't'},
        {"warmup", required_argument, NULL, 'w'},
        {"threads", required_argument, NULL, 'T'},
        {"server-pid", required_argument, NULL, OPT_SERVER_PID},
        {"json", no_argument, NULL, OPT_JSON},
        {"udp", no_argument, NULL, 'u'},
        {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"exchanges", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        EK_CLIENT_TLS_LONGOPTS,
        {"tls-resume", no_argument, NULL, EK_OPT_TLS_RESUME},
        EK_CLIENT_SOCK_LONGOPTS,
        {NULL, 0, NULL, 0},
    };
    const char *why = NULL;
    uint64_t pid;
    int c, bad = 0, rc;
    bool depth_given = false;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:c:s:d:r:t:w:T:n:hu", longopts,
                            NULL)) != -1) {
        const char *name = NULL;
        switch (c) {
        case 'm':
            if (parse_mode(optarg, &o->mode) < 0)
                return ek_usage_error("bench",
                                      "invalid --mode '%s': use rr, stream, "
                                      "idle or connect",
                                      optarg);
            break;
        case 'u':
            o->udp = true;
            break;
        case 'c':
            name = "--conns";
            bad = ek_parse_uint(optarg, 1, 1000000, &o->conns, &why);
            break;
        case 's':
            name = "--size";
            bad = ek_parse_size(optarg, 1, 1ull << 30, &o->size, &why);
            break;
        case 'd':
            name = "--depth";
            bad = ek_parse_uint(optarg, 1, 1 << 20, &o->depth, &why);
            depth_given = true;
            break;
        case 'n':
            name = "--exchanges";
            bad = ek_parse_uint(optarg, 1, 1000000, &o->exchanges, &why);
            break;
        case 'r':
            name = "--rate";
            bad = ek_parse_uint(optarg, 1, 1000000000, &o->rate, &why);
            break;
        case 't':
            name = "--duration";
            bad =
                ek_parse_seconds(optarg, 86400 * 1000LL, &o->duration_ms, &why);
            if (bad == 0 && o->duration_ms == 0) {
                bad = -1;
                why = "must be > 0";
            }
            break;
        case 'w':
            name = "--warmup";
            bad = ek_parse_seconds(optarg, 3600 * 1000LL, &o->warmup_ms, &why);
            break;
        case 'T':
            name = "--threads";
            bad = ek_parse_uint(optarg, 1, 256, &o->threads, &why);
            break;
        case OPT_SERVER_PID:
            name = "--server-pid";
            bad = ek_parse_uint(optarg, 1, INT32_MAX, &pid, &why);
            o->server_pid = (pid_t)pid;
            if (bad == 0 && ek_proc_cpu_us(o->server_pid, 0) < 0) {
                bad = -1;
                why = "no such process (or /proc cannot tell)";
            }
            break;
        case OPT_JSON:
            o->json = true;
            break;
        case OPT_TIMEOUT:
            name = "--timeout";
            bad = ek_parse_seconds(optarg, 3600 * 1000LL, &o->timeout_ms, &why);
            if (bad == 0 && o->timeout_ms == 0) {
                bad = -1;
                why = "must be > 0";
            }
            break;
        case 'h':
            fputs(usage_text, stdout);
            ek_client_tls_usage(24, true);
            ek_client_sock_usage(24);
            fputs(usage_tail, stdout);
            return 0;
        default:
            if ((rc = ek_client_option("bench", &o->tls, &o->sock, c,
                                       optarg)) >= 0) {
                if (rc != 0)
                    return rc;
                break;
            }
            return ek_option_error("bench", c, argv);
        }
        if (bad < 0)
            return ek_usage_error("bench", "invalid %s '%s': %s", name, optarg,
                                  why);
    }
    if (argc - optind > 1)
        return ek_usage_error("bench", "unexpected argument '%s'",
                              argv[optind + 1]);
    if (argc - optind == 1)
        o->server = argv[optind];
    if (o->rate > 0 && o->mode != EK_BENCH_RR && o->mode != EK_BENCH_CONNECT)
        return ek_usage_error("bench", "--rate applies to --mode rr and "
                                       "connect only");
    if (depth_given && o->mode == EK_BENCH_CONNECT)
        return ek_usage_error("bench", "--depth does not apply to --mode "
                                       "connect (one exchange at a time)");
    if (o->exchanges != 1 && o->mode != EK_BENCH_CONNECT)
        return ek_usage_error("bench", "--exchanges applies to --mode "
                                       "connect only");
    o->udp |= ek_addr_text_is_udp(o->server);
    if (o->udp && o->mode != EK_BENCH_RR)
        return ek_usage_error("bench", "--udp runs --mode rr only");
    if (o->udp && (o->tls.on || o->tls.asked))
        return ek_usage_error("bench", "--tls is TLS over TCP, not UDP");
    if (o->tls.opt.resume && o->mode != EK_BENCH_CONNECT)
        return ek_usage_error("bench", "--tls-resume applies to --mode "
                                       "connect (each connection resumes the "
                                       "last session)");
    if (o->udp && (o->size < 8 || o->size > 65507))
        return ek_usage_error("bench", "invalid --size for --udp: 8 to 65507 "
                                       "bytes (a datagram)");
    return -1;
}

/* Connects once the way send does (clear errors, sysexits), shakes
 * hands over TLS (a certificate that does not verify stops the run
 * before it starts, 76), and keeps the address that answered as the
 * target of every connection. */
static int find_target(struct bench_options *o, struct ek_tls_client *tls,
                       struct ek_sockaddr *t, char *peer, size_t size)
{
    int fd;
    int status = o->udp ? ek_client_connect_udp("bench", o->server, &o->sock,
                                                &fd, peer, size)
                        : ek_client_connect("bench", o->server, &o->sock,
                                            o->timeout_ms, &fd, peer, size);
    if (status != 0)
        return status;
    t->len = sizeof(t->ss);
    if (getpeername(fd, (struct sockaddr *)&t->ss, &t->len) < 0) {
        ek_warnx("bench: %s: %s", peer, strerror(errno));
        close(fd);
        return EX_OSERR;
    }
    if (tls != NULL) {
        struct ek_conn c;
        status = ek_client_conn_open("bench", tls, &c, fd, o->server);
        if (status == 0)
            status = ek_client_handshake("bench", &c, fd, peer, o->timeout_ms,
                                         o->tls_what, sizeof(o->tls_what));
        ek_conn_release(&c);
    }
    close(fd);
    return status;
}

int ek_cmd_bench(int argc, char **argv)
{
    struct bench_options o = {.server = "localhost:50000",
                              .mode = EK_BENCH_RR,
                              .conns = 50,
                              .size = 64,
                              .depth = 1,
                              .exchanges = 1,
                              .threads = 1,
                              .duration_ms = 10000,
                              .warmup_ms = 1000,
                              .timeout_ms = 10000,
                              .sock = EK_SOCKOPTS_NONE};
    int status = parse_options(argc, argv, &o);
    if (status >= 0)
        return status;
    signal(SIGPIPE, SIG_IGN);

    char peer[EK_ADDRSTR_MAX];
    struct ek_tls_client *tls = NULL;
    struct ek_addr_spec spec;
    if (!o.udp &&
        (status = ek_client_tls_start("bench", &o.tls, o.server, &tls)) != 0)
        return status;
    o.tls_on = tls != NULL;
    struct ek_bench_config cfg = {
        .mode = o.mode,
        .exchanges = (uint32_t)o.exchanges,
        .tls = tls,
        .sockopts = &o.sock,
        .tls_host = ek_client_host(o.server, &spec),
        .udp = o.udp,
        .conns = (uint32_t)o.conns,
        .threads = (uint32_t)o.threads,
        .size = o.size,
        .depth = (uint32_t)o.depth,
        .rate = o.rate,
        .warmup_ns = o.warmup_ms * 1000000,
        .duration_ns = o.duration_ms * 1000000,
        .timeout_ns = o.timeout_ms * 1000000,
    };
    status = find_target(&o, tls, &cfg.target, peer, sizeof(peer));
    if (status != 0) {
        ek_client_tls_free(tls);
        return status;
    }

    struct report rp = {.o = &o, .peer = peer, .rss_kb = -1, .pss_kb = -1};
    if (o.server_pid)
        rp.pss_base_kb = ek_proc_mem_kb(o.server_pid, "Pss");
    struct ek_bench *b = NULL;
    int nerr = ek_bench_new(&cfg, &b);
    if (nerr < 0) {
        ek_warnx("bench: no connection to %s could be made: %s", peer,
                 strerror(-nerr));
        ek_client_tls_free(tls);
        return EX_UNAVAILABLE;
    }

    struct sigaction sa = {.sa_handler = on_sigint};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    int64_t start = ek_now_ns();
    int err = ek_bench_start(b, start);
    if (err < 0) {
        ek_warnx("bench: cannot start threads: %s", strerror(-err));
        ek_bench_free(b);
        ek_client_tls_free(tls);
        return EX_OSERR;
    }
    rp.seconds = run_clock(b, &o, start, &rp);
    ek_bench_finish(b, &rp.r);
    if (o.server_pid) {
        rp.rss_kb = ek_proc_mem_kb(o.server_pid, "Rss");
        rp.pss_kb = ek_proc_mem_kb(o.server_pid, "Pss");
    }
    ek_bench_free(b);
    ek_client_tls_free(tls);

    if (o.json)
        print_json(&rp);
    else
        print_text(&rp);
    fflush(stdout);
    return errors_of(&rp.r) > 0 ? 1 : 0;
}
