/*
 * echokit bench: options, the run's clock, and the report (text or JSON).
 * The load itself is ek_bench.c.
 */
#include "cmd_bench.h"
#include "ek_hdr.h"
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
    "       echokit bench merge [options] FILE...\n"
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
    "  -s, --size BYTES      message size (default 64); stream: the size of "
    "each\n"
    "                        write (as iperf3's -l, at most 16M)\n"
    "  -d, --depth N         rr: messages in flight per connection "
    "(default 1)\n"
    "  -r, --rate N          rr: open loop, N messages/s over all "
    "connections;\n"
    "                        latency runs from the intended send time "
    "(also\n"
    "                        reported: from the actual send, and the send "
    "lag);\n"
    "                        below 95% of N achieved, the run fails; "
    "connect:\n"
    "                        N connections/s, time to first echo from the "
    "intended\n"
    "                        start\n"
    "      --spin-us N       open loop: spin, not sleep, the last N us "
    "before each\n"
    "                        send is due (a core for punctuality)\n"
    "      --timestamps      rr, plain TCP or UDP: also the kernel's round "
    "trip\n"
    "                        (SO_TIMESTAMPING: the device's send to the "
    "echo's\n"
    "                        arrival), without the client's scheduling\n"
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
    "                        message, 8 to 65507 bytes; loss, late echoes, "
    "reordering\n"
    "                        and duplicates are counted, not errors\n"
    "      --udp-timeout SECS  UDP: no echo within SECS (default 1): lost, "
    "or late\n"
    "                        if it still comes\n"
    "  -f, --format UNIT     rates in k, m, g bits or K, M, G bytes per "
    "second\n"
    "                        (decimal; default: the bits that fit)\n"
    "      --json            print the result as one JSON object on stdout\n"
    "                        (histograms included, for bench merge)\n"
    "  -i, --interval SECS   a line per interval of the window (>= 0.1 s)\n"
    "      --json-stream     JSON Lines: start, an object per interval (1 s "
    "unless\n"
    "                        -i), end with the summary\n"
    "      --hdr-log FILE    HdrHistogram interval log of the latency (ns; 1 "
    "s\n"
    "                        intervals unless -i), the other histograms "
    "tagged;\n"
    "                        rr and connect\n"
    "      --share I/N       take the I-th (from 0) of N shares of -c and -r: "
    "N\n"
    "                        benches with the same options make one load\n";
/* After the TLS options. */
static const char usage_tail[] =
    "  -h, --help            this text\n"
    "\n"
    "bench merge adds up runs made at the same time (bench --json output, "
    "or\n"
    "HdrHistogram logs): counts summed, histograms added; see its --help.\n"
    "A progress line is written to stderr each second when it is a "
    "terminal.\n"
    "Exit status: 0 every echo verified and no connection failed; 1 "
    "mismatch,\n"
    "reset, early close, timeout, failed connect or TLS handshake, or the "
    "open\n"
    "loop's rate not achieved; 64 bad usage; 68 host not found; 69 cannot "
    "connect\n"
    "at all (or no TLS or --timestamps in this build); 71 a socket option "
    "the\n"
    "kernel refused, or out of file descriptors (RLIMIT_NOFILE); 73/74 "
    "--hdr-log\n"
    "cannot be made/written; 75 no TLS handshake within --timeout; 76 the "
    "first\n"
    "TLS handshake failed; 78 unusable --tls-cert, --tls-key or --tls-ca; "
    "130/143\n"
    "interrupted by SIGINT/SIGTERM (after the warm-up, the report of what "
    "was\n"
    "measured comes first).\n";

/* The signal (SIGINT, SIGTERM) that stopped the run, or 0. */
static volatile sig_atomic_t interrupted;

static void on_signal(int signo)
{
    interrupted = signo;
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

/* Sleeps until t (ek_now_ns), waking on SIGINT. */
static void sleep_until(int64_t t)
{
    while (!interrupted && ek_sleep_until_ns(t) == -EINTR)
        ;
}

/* Hands every complete interval to bench_emit_interval, in order. Returns
 * how many intervals they spanned. */
static uint64_t drain_intervals(struct ek_bench *b, struct report *rp)
{
    uint64_t n = 0;
    while (rp->iv != NULL && ek_bench_next_interval(b, rp->iv) == 1) {
        int status = bench_emit_interval(rp, rp->iv, rp->t_measure);
        if (rp->status == 0)
            rp->status = status;
        n += rp->iv->intervals;
    }
    return n;
}

/* Runs the clock: warm-up, samples at the window's edges, the intervals
 * as they complete, a progress line each second. Returns the measured
 * seconds; 0 when a signal came in the warm-up (nothing was measured). */
static double run_clock(struct ek_bench *b, const struct bench_options *o,
                        int64_t start, struct report *rp)
{
    const int64_t second = 1000000000, ms = 1000000;
    const int64_t every = o->interval_ms * ms;
    int64_t measure = start + o->warmup_ms * ms;
    int64_t end = measure + o->duration_ms * ms;
    int64_t tick = start + second;
    /* An interval is read just after it ends, when the workers have
     * handed it over; one that is late is looked for again soon. */
    int64_t check = every > 0 ? measure + every + 2 * ms : INT64_MAX;
    uint64_t shown = 0;
    bool progress = isatty(STDERR_FILENO) && every == 0, sampled = false;
    uint64_t last_msgs = 0, last_bytes = 0;

    for (;;) {
        int64_t next = end;
        if (!sampled && measure < next)
            next = measure;
        if (tick < next)
            next = tick;
        if (check < next)
            next = check;
        sleep_until(next);
        if (interrupted)
            break;
        if (!sampled && next >= measure) {
            sample(o, &rp->before);
            sampled = true;
        }
        if (next >= end)
            break;
        if (next >= check) {
            shown += drain_intervals(b, rp);
            int64_t now = ek_now_ns();
            uint64_t ended = (uint64_t)((now - measure) / every);
            check = shown < ended
                        ? now + 10 * ms
                        : measure + (int64_t)(ended + 1) * every + 2 * ms;
        }
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
    /* Stopped by a signal; else the workers end with the window (and UDP
     * waits for the echoes of what the window sent). */
    if (interrupted)
        ek_bench_stop(b);
    if (!sampled) /* interrupted in the warm-up: nothing was measured */
        return 0;
    sample(o, &rp->after);
    int64_t last = stopped < end ? stopped : end;
    if (interrupted && stopped < end)
        rp->interrupted = interrupted;
    double s = (double)(last - measure) / 1e9;
    return s > 0 ? s : 1e-9;
}

#define OPT_SERVER_PID 1000
#define OPT_JSON 1001
#define OPT_TIMEOUT 1002
#define OPT_JSON_STREAM 1003
#define OPT_HDR_LOG 1004
#define OPT_SHARE 1005
#define OPT_SPIN_US 1006
#define OPT_TIMESTAMPS 1007
#define OPT_UDP_TIMEOUT 1008

/* The options, for getopt_long and for `echokit completion` (ek_cli.h). */
const struct option ek_bench_options[] = {
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
    {"json-stream", no_argument, NULL, OPT_JSON_STREAM},
    {"interval", required_argument, NULL, 'i'},
    {"hdr-log", required_argument, NULL, OPT_HDR_LOG},
    {"share", required_argument, NULL, OPT_SHARE},
    {"udp", no_argument, NULL, 'u'},
    {"udp-timeout", required_argument, NULL, OPT_UDP_TIMEOUT},
    {"spin-us", required_argument, NULL, OPT_SPIN_US},
    {"timestamps", no_argument, NULL, OPT_TIMESTAMPS},
    {"format", required_argument, NULL, 'f'},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"exchanges", required_argument, NULL, 'n'},
    {"help", no_argument, NULL, 'h'},
    EK_CLIENT_TLS_LONGOPTS,
    {"tls-resume", no_argument, NULL, EK_OPT_TLS_RESUME},
    EK_CLIENT_SOCK_LONGOPTS,
    {NULL, 0, NULL, 0},
};
const char ek_bench_shortopts[] = ":m:c:s:d:r:t:w:T:n:i:f:hu";

int bench_parse_share(const char *s, uint32_t *index, uint32_t *count,
                      const char **why)
{
    const char *slash = strchr(s, '/');
    char first[16];
    uint64_t i, n;
    if (slash == NULL || (size_t)(slash - s) >= sizeof(first)) {
        *why = "expected I/N, e.g. 0/4 (the first of four)";
        return -1;
    }
    memcpy(first, s, (size_t)(slash - s));
    first[slash - s] = '\0';
    if (ek_parse_uint(first, 0, 99999, &i, why) < 0 ||
        ek_parse_uint(slash + 1, 1, 100000, &n, why) < 0)
        return -1;
    if (i >= n) {
        *why = "I counts from 0: it must be below N";
        return -1;
    }
    *index = (uint32_t)i;
    *count = (uint32_t)n;
    return 0;
}

/* The index-th of count shares of total, the remainder going one each to
 * the lowest indices, so that the shares add up to total exactly. */
static uint64_t share_of(uint64_t total, uint32_t index, uint32_t count)
{
    return total / count + (index < total % count ? 1 : 0);
}

static int parse_options(int argc, char **argv, struct bench_options *o)
{
    const char *why = NULL;
    uint64_t pid;
    int c, bad = 0, rc;
    bool depth_given = false, udp_timeout_given = false;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ek_bench_shortopts, ek_bench_options,
                            NULL)) != -1) {
        const char *name = NULL;
        switch (c) {
        case 'm':
            if (!bench_parse_mode(optarg, &o->mode))
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
        case OPT_JSON_STREAM:
            o->json_stream = true;
            break;
        case 'i':
            name = "--interval";
            bad =
                ek_parse_seconds(optarg, 3600 * 1000LL, &o->interval_ms, &why);
            if (bad == 0 && o->interval_ms < 100) {
                bad = -1;
                why = "at least 0.1 s";
            }
            break;
        case OPT_HDR_LOG:
            if (optarg[0] == '\0')
                return ek_usage_error("bench", "invalid --hdr-log '': empty");
            o->hdr_log = optarg;
            break;
        case OPT_SHARE:
            name = "--share";
            bad = bench_parse_share(optarg, &o->share_index, &o->share_count,
                                    &why);
            break;
        case OPT_SPIN_US:
            name = "--spin-us";
            bad = ek_parse_uint(optarg, 0, 1000000, &o->spin_us, &why);
            break;
        case OPT_TIMESTAMPS:
            o->timestamps = true;
            break;
        case OPT_UDP_TIMEOUT:
            name = "--udp-timeout";
            bad = ek_parse_seconds(optarg, 3600 * 1000LL, &o->udp_timeout_ms,
                                   &why);
            if (bad == 0 && o->udp_timeout_ms == 0) {
                bad = -1;
                why = "must be > 0";
            }
            udp_timeout_given = true;
            break;
        case 'f':
            name = "--format";
            if (optarg[0] == '\0' || optarg[1] != '\0' ||
                strchr("kmgKMG", optarg[0]) == NULL) {
                bad = -1;
                why = "one of k, m, g (bits) or K, M, G (bytes), decimal";
            } else {
                o->format = optarg[0];
            }
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
    if (o->json && o->json_stream)
        return ek_usage_error("bench", "--json and --json-stream: give one "
                                       "(the stream ends with the summary)");
    if (o->json && o->interval_ms > 0)
        return ek_usage_error("bench", "--interval with --json: use "
                                       "--json-stream for intervals as JSON");
    if (o->hdr_log != NULL && o->mode != EK_BENCH_RR &&
        o->mode != EK_BENCH_CONNECT)
        return ek_usage_error("bench",
                              "--hdr-log: --mode %s measures no "
                              "latency (rr and connect do)",
                              bench_mode_name(o->mode));
    /* The stream and the log are made of intervals: 1 s unless told. */
    if ((o->json_stream || o->hdr_log != NULL) && o->interval_ms == 0)
        o->interval_ms = 1000;
    if (o->udp && (o->size < 8 || o->size > 65507))
        return ek_usage_error("bench", "invalid --size for --udp: 8 to 65507 "
                                       "bytes (a datagram)");
    if (o->mode == EK_BENCH_STREAM && o->size > BENCH_STREAM_WRITE_MAX)
        return ek_usage_error("bench", "invalid --size for --mode stream: at "
                                       "most 16M (the size of each write)");
    if (udp_timeout_given && !o->udp)
        return ek_usage_error("bench", "--udp-timeout applies to --udp");
    if (o->spin_us > 0 && (o->mode != EK_BENCH_RR || o->rate == 0))
        return ek_usage_error("bench", "--spin-us applies to an open loop "
                                       "(--mode rr with --rate)");
    if (o->timestamps && o->mode != EK_BENCH_RR)
        return ek_usage_error("bench", "--timestamps applies to --mode rr");
    if (o->timestamps && (o->tls.on || o->tls.asked))
        return ek_usage_error("bench", "--timestamps: over TLS the kernel "
                                       "stamps records, not messages (use "
                                       "plain TCP or UDP)");
    if (o->share_count > 0) {
        uint64_t all_conns = o->conns, all_rate = o->rate;
        o->conns = share_of(all_conns, o->share_index, o->share_count);
        o->rate = share_of(all_rate, o->share_index, o->share_count);
        if (o->conns == 0 || (all_rate > 0 && o->rate == 0))
            return ek_usage_error(
                "bench",
                "--share %u/%u leaves this run no %s (-c %llu, -r "
                "%llu: give at least N of each)",
                o->share_index, o->share_count,
                o->conns == 0 ? "connection" : "rate",
                (unsigned long long)all_conns, (unsigned long long)all_rate);
    }
    if (o->udp && o->rate > 0) {
        struct ek_bench_config want = {.conns = (uint32_t)o->conns,
                                       .rate = o->rate,
                                       .depth = (uint32_t)o->depth,
                                       .timestamps = o->timestamps,
                                       .udp_timeout_ns =
                                           o->udp_timeout_ms * 1000000};
        if (ek_bench_udp_records(&want) == 0 ||
            ek_bench_udp_records_bytes(&want) > EK_BENCH_RECORDS_BUDGET)
            return ek_usage_error(
                "bench",
                "--udp-timeout %.3f s at %llu datagrams/s over %llu "
                "connections would keep more than %u records a connection, "
                "or %zu MiB in all: a shorter --udp-timeout, or a lower "
                "--rate",
                (double)o->udp_timeout_ms / 1000.0, (unsigned long long)o->rate,
                (unsigned long long)o->conns, EK_BENCH_UDP_RECORDS_MAX,
                EK_BENCH_RECORDS_BUDGET >> 20);
    }
    return -1;
}

/* Connects once the way send does (clear errors, sysexits), shakes
 * hands over TLS (a certificate that does not verify stops the run
 * before it starts, 76), and keeps the address that answered as the
 * target of every connection. */
static int find_target(struct bench_options *o, struct ek_tls_client *tls,
                       struct ek_sockaddr *t, char *peer, size_t size)
{
    struct ek_client_session sess;
    int status = ek_client_session_open("bench", o->server, &o->sock, o->udp,
                                        tls, o->timeout_ms, o->tls_what,
                                        sizeof(o->tls_what), &sess);
    if (status != 0)
        return status;
    snprintf(peer, size, "%s", sess.peer);
    t->len = sizeof(t->ss);
    if (getpeername(sess.fd, (struct sockaddr *)&t->ss, &t->len) < 0) {
        ek_warnx("bench: %s: %s", peer, strerror(errno));
        status = EX_OSERR;
    }
    ek_client_session_close(&sess);
    return status;
}

/* Seconds since the epoch at mono_ns, a time on ek_now_ns's clock. */
static double epoch_of(int64_t mono_ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9 -
           (double)(ek_now_ns() - mono_ns) / 1e9;
}

/* Opens --hdr-log and the buffer intervals are read into. Returns 0, or
 * an exit status after saying why. */
static int open_outputs(const struct bench_options *o, struct report *rp)
{
    if (o->interval_ms > 0 && (rp->iv = malloc(sizeof(*rp->iv))) == NULL) {
        ek_warnx("bench: out of memory");
        return EX_OSERR;
    }
    if (o->hdr_log != NULL && (rp->hdr_log = fopen(o->hdr_log, "we")) == NULL) {
        ek_warnx("bench: --hdr-log %s: %s", o->hdr_log, strerror(errno));
        return EX_CANTCREAT;
    }
    return 0;
}

/* Closes what open_outputs opened; EX_IOERR if the log's end could not
 * be written (said), else status. */
static int close_outputs(const struct bench_options *o, struct report *rp,
                         int status)
{
    free(rp->iv);
    rp->iv = NULL;
    if (rp->hdr_log != NULL && fclose(rp->hdr_log) != 0 && status == 0) {
        ek_warnx("bench: --hdr-log %s: %s", o->hdr_log, strerror(errno));
        status = EX_IOERR;
    }
    rp->hdr_log = NULL;
    return status;
}

/* Out of descriptors (err: EMFILE or ENFILE) after made of want
 * connections: said with the limits, for the report is of fewer
 * connections than asked for. connect mode counts the connects that could
 * not be made instead (want 0). */
static void say_no_fd(uint64_t made, uint64_t want, int err)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        rl.rlim_cur = rl.rlim_max = 0;
    char what[96];
    if (want > 0)
        snprintf(what, sizeof(what), "after %llu of %llu connections",
                 (unsigned long long)made, (unsigned long long)want);
    else
        snprintf(what, sizeof(what), "for %llu connects",
                 (unsigned long long)made);
    ek_warnx("bench: out of file descriptors (%s) %s: RLIMIT_NOFILE is %llu "
             "(hard limit %llu)%s; %s",
             strerror(err), what, (unsigned long long)rl.rlim_cur,
             (unsigned long long)rl.rlim_max,
             err == ENFILE ? ", and the system's table is full" : "",
             made > 0 && want > 0
                 ? "the report is of the connections made"
                 : "raise the limit (ulimit -n) or ask for fewer (-c)");
}

/* The exit status of a run that was reported: 74 the log failed; 71 out
 * of descriptors; 130/143 interrupted; 1 an echo failed or the open
 * loop's rate was not achieved; else 0. Says why for the last two that
 * the report does not. */
static int verdict(const struct bench_options *o, const struct report *rp)
{
    const struct ek_bench_result *r = &rp->r;
    if (rp->status != 0)
        return rp->status;
    if (r->conns_no_fd > 0) {
        if (o->mode == EK_BENCH_CONNECT)
            say_no_fd(r->conns_no_fd, 0, EMFILE);
        else
            say_no_fd(r->conns_made, r->conns_made + r->conns_no_fd, EMFILE);
        return EX_OSERR;
    }
    if (rp->interrupted)
        return 128 + rp->interrupted;
    if (bench_errors_of(r) > 0)
        return 1;
    const char *why = bench_rate_missed(rp);
    if (why != NULL) {
        ek_warnx("bench: the offered rate was not achieved (%s): %s", why,
                 o->mode == EK_BENCH_CONNECT
                     ? "the times to first echo include the wait for a slot"
                     : "the latencies describe the client's queue, not the "
                       "server");
        return 1;
    }
    return 0;
}

/* The run, from its connections to its report. Returns the exit status:
 * as verdict() says, or why nothing could run. */
static int run(const struct bench_options *o, const struct ek_bench_config *cfg,
               struct report *rp)
{
    int status = open_outputs(o, rp);
    if (status != 0)
        return close_outputs(o, rp, status);
    if (o->server_pid)
        rp->pss_base_kb = ek_proc_mem_kb(o->server_pid, "Pss");
    struct ek_bench *b = NULL;
    int err = ek_bench_new(cfg, &b);
    if (err == -EMFILE || err == -ENFILE) {
        say_no_fd(0, o->conns, -err);
        return close_outputs(o, rp, EX_OSERR);
    }
    if (err == -ENOMEM) {
        ek_warnx("bench: out of memory for %llu connections' buffers and "
                 "records (ulimit -v?)",
                 (unsigned long long)o->conns);
        return close_outputs(o, rp, EX_OSERR);
    }
    if (err < 0) {
        ek_warnx("bench: no connection to %s could be made: %s", rp->peer,
                 strerror(-err));
        return close_outputs(o, rp, EX_UNAVAILABLE);
    }

    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int64_t start = ek_now_ns();
    err = ek_bench_start(b, start);
    if (err < 0) {
        ek_warnx("bench: cannot start threads: %s", strerror(-err));
        ek_bench_free(b);
        return close_outputs(o, rp, EX_OSERR);
    }
    rp->t_measure = start + o->warmup_ms * 1000000;
    rp->start_time = epoch_of(rp->t_measure);
    bench_new_run_id(rp->run_id); /* what bench merge tells runs by */
    if (o->json_stream)
        bench_json_stream_start(rp);
    if (rp->hdr_log != NULL &&
        (err = ek_hdr_log_begin(rp->hdr_log, rp->start_time, rp->run_id)) < 0) {
        ek_warnx("bench: --hdr-log %s: %s", o->hdr_log, strerror(-err));
        rp->status = EX_IOERR;
    }
    rp->seconds = run_clock(b, o, start, rp);
    /* The workers may go on past the window (UDP waits for what it sent):
     * a signal then still stops them, and says so. */
    while (rp->seconds > 0 && !interrupted && !ek_bench_done(b))
        sleep_until(ek_now_ns() + 20 * 1000000LL);
    if (rp->seconds > 0 && interrupted && !ek_bench_done(b)) {
        ek_bench_stop(b);
        rp->interrupted = interrupted;
    }
    ek_bench_finish(b, &rp->r);
    if (rp->seconds == 0) { /* a signal in the warm-up */
        ek_bench_free(b);
        ek_warnx("bench: interrupted in the warm-up: nothing was measured");
        return close_outputs(o, rp, 128 + interrupted);
    }
    drain_intervals(b, rp); /* the last, cut short by the end */
    if (o->server_pid) {
        rp->rss_kb = ek_proc_mem_kb(o->server_pid, "Rss");
        rp->pss_kb = ek_proc_mem_kb(o->server_pid, "Pss");
    }
    ek_bench_free(b);

    if (o->json_stream) {
        printf("{\"event\":\"end\",\"data\":");
        bench_print_json(rp);
        printf("}\n");
    } else if (o->json) {
        bench_print_json(rp);
        printf("\n");
    } else {
        bench_print_text(rp);
    }
    fflush(stdout);
    return close_outputs(o, rp, verdict(o, rp));
}

int ek_cmd_bench(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "merge") == 0)
        return ek_cmd_bench_merge(argc - 1, argv + 1);
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
                              .udp_timeout_ms = 1000,
                              .sock = EK_SOCKOPTS_NONE};
    int status = parse_options(argc, argv, &o);
    if (status >= 0)
        return status;
    const char *missing = o.timestamps ? ek_tstamp_missing() : NULL;
    if (missing != NULL) {
        ek_warnx("bench: --timestamps: %s", missing);
        return EX_UNAVAILABLE;
    }
    o.argc = argc;
    o.argv = argv;
    signal(SIGPIPE, SIG_IGN);
    /* A load of many connections wants many descriptors: the soft limit
     * goes up to the hard one (what is left short is said, 71). */
    ek_fd_limit_raise(NULL, NULL);

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
        .interval_ns = o.interval_ms * 1000000,
        .timeout_ns = o.timeout_ms * 1000000,
        .spin_ns = (int64_t)o.spin_us * 1000,
        .udp_timeout_ns = o.udp_timeout_ms * 1000000,
        .timestamps = o.timestamps,
    };
    status = find_target(&o, tls, &cfg.target, peer, sizeof(peer));
    if (status != 0) {
        ek_client_tls_free(tls);
        return status;
    }

    struct report rp = {.o = &o, .peer = peer, .rss_kb = -1, .pss_kb = -1};
    status = run(&o, &cfg, &rp);
    ek_client_tls_free(tls);
    return status;
}
