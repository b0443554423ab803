/*
 * echokit bench's report: the summary as text or JSON, and the intervals
 * (-i, --json-stream, --hdr-log). `bench merge` prints with it too.
 */
#include "cmd_bench.h"
#include "ek_config.h"
#include "ek_hdr.h"
#include "ek_log.h"
#include "ek_quote.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

const char *bench_mode_name(enum ek_bench_mode m)
{
    return m == EK_BENCH_STREAM    ? "stream"
           : m == EK_BENCH_IDLE    ? "idle"
           : m == EK_BENCH_CONNECT ? "connect"
                                   : "rr";
}

const char *const bench_hist_names[BENCH_HISTOGRAMS] = {
    "latency",     "connect",  "handshake", "first_echo",
    "uncorrected", "send_lag", "kernel_rtt"};

static const size_t hist_offset[BENCH_HISTOGRAMS] = {
    offsetof(struct ek_bench_result, latency),
    offsetof(struct ek_bench_result, connect_lat),
    offsetof(struct ek_bench_result, handshake_lat),
    offsetof(struct ek_bench_result, first_echo_lat),
    offsetof(struct ek_bench_result, uncorrected),
    offsetof(struct ek_bench_result, send_lag),
    offsetof(struct ek_bench_result, kernel_rtt)};

struct ek_hist *bench_hist(struct ek_bench_result *r, int which)
{
    return (struct ek_hist *)((char *)r + hist_offset[which]);
}

const struct ek_hist *bench_hist_of(const struct ek_bench_result *r, int which)
{
    return (const struct ek_hist *)((const char *)r + hist_offset[which]);
}

bool bench_hist_used(const struct bench_options *o, int which)
{
    bool rr = o->mode == EK_BENCH_RR, connect = o->mode == EK_BENCH_CONNECT;
    switch (which) {
    case BENCH_LATENCY:
        return rr || connect;
    case BENCH_CONNECT_LAT:
    case BENCH_FIRST_ECHO_LAT:
        return connect;
    case BENCH_HANDSHAKE_LAT:
        return connect && o->tls_on;
    case BENCH_UNCORRECTED:
    case BENCH_SEND_LAG:
        return rr && o->rate > 0;
    case BENCH_KERNEL_RTT:
        return rr && o->timestamps;
    default:
        return false;
    }
}

/* The rate an open loop achieved: messages sent (rr), connections done
 * (connect), per second; -1 for a run that is no open loop. */
static double achieved_rate(const struct report *rp)
{
    const struct bench_options *o = rp->o;
    if (o->rate == 0 || (o->mode != EK_BENCH_RR && o->mode != EK_BENCH_CONNECT))
        return -1;
    uint64_t n =
        o->mode == EK_BENCH_CONNECT ? rp->r.conns_done : rp->r.msgs_sent;
    return (double)n / rp->seconds;
}

/* Below this share of the offered rate, a run did not do what it was
 * asked: its figures are the client's queue (or slots). */
#define RATE_ACHIEVED_MIN 0.95

/* The share of what the schedule had fall due in the window that was
 * sent (rr) or done (connect): against the due count, so that a run of a
 * few messages is not judged by rate x seconds; a result without it
 * (bench merge of older ones) by the rate. */
static double achieved_share(const struct report *rp)
{
    const struct bench_options *o = rp->o;
    uint64_t done =
        o->mode == EK_BENCH_CONNECT ? rp->r.conns_done : rp->r.msgs_sent;
    double due = rp->r.msgs_due > 0 ? (double)rp->r.msgs_due
                                    : (double)o->rate * rp->seconds;
    return due > 0 ? (double)done / due : 1.0;
}

const char *bench_rate_missed(const struct report *rp)
{
    static char why[256];
    const struct bench_options *o = rp->o;
    double got = achieved_rate(rp), share = achieved_share(rp);
    if (got < 0 || share >= RATE_ACHIEVED_MIN)
        return NULL;
    const char *unit = o->mode == EK_BENCH_CONNECT ? "conns" : "msgs";
    int n = snprintf(why, sizeof(why), "%.0f of %llu %s/s, %.1f%% of those due",
                     got, (unsigned long long)o->rate, unit, 100.0 * share);
    if (n < 0 || (size_t)n >= sizeof(why))
        return why;
    if (o->mode == EK_BENCH_CONNECT)
        snprintf(why + n, sizeof(why) - (size_t)n,
                 ": every slot was busy (more -c, or the server is slower "
                 "than the rate)");
    else if (rp->r.held_back > 0)
        snprintf(why + n, sizeof(why) - (size_t)n,
                 ": %llu messages were held back by a full socket or "
                 "window: the server or the path did not keep up",
                 (unsigned long long)rp->r.held_back);
    else
        snprintf(why + n, sizeof(why) - (size_t)n,
                 ": the client fell behind its schedule (its CPU: more "
                 "threads, -T)");
    return why;
}

bool bench_parse_mode(const char *s, enum ek_bench_mode *m)
{
    static const enum ek_bench_mode all[] = {EK_BENCH_RR, EK_BENCH_STREAM,
                                             EK_BENCH_IDLE, EK_BENCH_CONNECT};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(s, bench_mode_name(all[i])) == 0) {
            *m = all[i];
            return true;
        }
    return false;
}

/* "21.3 us", "1.25 ms", "2.10 s" */
const char *bench_fmt_ns(uint64_t ns, char *buf, size_t size)
{
    if (ns < 1000000)
        snprintf(buf, size, "%.1f us", (double)ns / 1e3);
    else if (ns < 1000000000)
        snprintf(buf, size, "%.2f ms", (double)ns / 1e6);
    else
        snprintf(buf, size, "%.2f s", (double)ns / 1e9);
    return buf;
}

uint64_t bench_errors_of(const struct ek_bench_result *r)
{
    return r->mismatches + r->resets + r->closed + r->timeouts +
           r->conns_failed + r->tls_failed;
}

/* "min 21.3 us, p50 ..., max ..." */
static void print_quantiles(const char *label, const struct ek_hist *h)
{
    char a[32], b[32], c[32], d[32], e[32], f[32];
    printf("%-13smin %s, p50 %s, p90 %s, p99 %s, p99.9 %s, max %s\n", label,
           bench_fmt_ns(h->min, a, sizeof(a)),
           bench_fmt_ns(ek_hist_quantile(h, 0.50), b, sizeof(b)),
           bench_fmt_ns(ek_hist_quantile(h, 0.90), c, sizeof(c)),
           bench_fmt_ns(ek_hist_quantile(h, 0.99), d, sizeof(d)),
           bench_fmt_ns(ek_hist_quantile(h, 0.999), e, sizeof(e)),
           bench_fmt_ns(h->max, f, sizeof(f)));
}

/* "\"name\":{\"min\":...}," in microseconds, or "\"name\":null,". */
static void json_quantiles(const char *name, const struct ek_hist *h)
{
    if (h->count == 0) {
        printf("\"%s\":null,", name);
        return;
    }
    printf("\"%s\":{\"count\":%llu,\"min\":%.3f,\"mean\":%.3f,\"p50\":%.3f,"
           "\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f},",
           name, (unsigned long long)h->count, (double)h->min / 1e3,
           ek_hist_mean(h) / 1e3, (double)ek_hist_quantile(h, 0.5) / 1e3,
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

/* CPU seconds per GiB echoed (stream mode's unit). */
static double per_gib(const struct ek_bench_result *r, long long us)
{
    return r->bytes ? (double)us / 1e6 / ((double)r->bytes / 1073741824.0)
                    : 0.0;
}

/* " CPU 1.20 s = 9.79 us/msg" (us/conn in connect mode; s/GiB in stream
 * mode). */
static void print_cpu(const struct ek_bench_result *r,
                      const struct bench_options *o, long long us)
{
    if (o->mode == EK_BENCH_STREAM)
        printf(" CPU %.2f s = %.3f s/GiB", (double)us / 1e6, per_gib(r, us));
    else
        printf(" CPU %.2f s = %.2f us/%s", (double)us / 1e6, per_unit(r, o, us),
               o->mode == EK_BENCH_CONNECT ? "conn" : "msg");
}

/* text as the inside of a JSON string, or as one line of plain text (an
 * address or an error from a file bench merge read may hold anything). */
static const char *escaped(const char *text, bool json, char *buf, size_t size)
{
    size_t len = 0;
    (json ? ek_escape_json : ek_escape_text)(buf, size - 1, &len, text);
    buf[len] = '\0';
    return buf;
}

/* What one run was made with beyond its options: echokit's version, the
 * host and its kernel (the same for every line of one process). */
struct run_context {
    char host[256];
    char kernel[160]; /* "Linux 6.18.0" */
};

static const struct run_context *run_context(void)
{
    static struct run_context ctx;
    if (ctx.kernel[0] != '\0')
        return &ctx;
    struct utsname u;
    if (uname(&u) == 0)
        snprintf(ctx.kernel, sizeof(ctx.kernel), "%s %s", u.sysname, u.release);
    else
        snprintf(ctx.kernel, sizeof(ctx.kernel), "unknown");
    if (gethostname(ctx.host, sizeof(ctx.host) - 1) < 0)
        snprintf(ctx.host, sizeof(ctx.host), "unknown");
    ctx.host[sizeof(ctx.host) - 1] = '\0';
    return &ctx;
}

/* bytes per second as -f asks: k, m, g bits or K, M, G bytes, decimal
 * (as iperf3); 0: the bits that fit. */
static const char *fmt_rate(double bytes_per_s, char format, char *buf,
                            size_t size)
{
    static const char units[] = "kmg";
    double bits = bytes_per_s * 8;
    int f = format != 0 ? format : bits >= 1e9 ? 'g' : bits >= 1e6 ? 'm' : 'k';
    bool bytes = f >= 'A' && f <= 'Z';
    int k = (int)(strchr(units, bytes ? f - 'A' + 'a' : f) - units);
    double v = (bytes ? bytes_per_s : bits) / pow(1000.0, k + 1);
    snprintf(buf, size, "%.*f %c%s/s",
             v < 10    ? 2
             : v < 100 ? 1
                       : 0,
             v, "kMG"[k], bytes ? "B" : "bit");
    return buf;
}

/* The source pool as "ADDR" or "FIRST-LAST (N addresses)". */
static const char *source_text(const struct ek_source_pool *p, char *buf,
                               size_t size)
{
    struct ek_sockaddr first, last;
    char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];
    ek_source_addr(p, 0, &first);
    ek_source_addr(p, p->count - 1, &last);
    const void *fa =
        p->family == AF_INET
            ? (const void *)&((struct sockaddr_in *)&first.ss)->sin_addr
            : (const void *)&((struct sockaddr_in6 *)&first.ss)->sin6_addr;
    const void *la =
        p->family == AF_INET
            ? (const void *)&((struct sockaddr_in *)&last.ss)->sin_addr
            : (const void *)&((struct sockaddr_in6 *)&last.ss)->sin6_addr;
    if (inet_ntop(p->family, fa, a, sizeof(a)) == NULL ||
        inet_ntop(p->family, la, b, sizeof(b)) == NULL)
        snprintf(buf, size, "?");
    else if (p->count == 1)
        snprintf(buf, size, "%s", a);
    else
        snprintf(buf, size, "%s-%s (%llu addresses)", a, b,
                 (unsigned long long)p->count);
    return buf;
}

static const char *signal_name(int signo)
{
    return signo == SIGINT    ? "SIGINT"
           : signo == SIGTERM ? "SIGTERM"
                              : "a signal";
}

/* An argument as a shell would need it: as is when it is made of safe
 * characters, else in single quotes. */
static void print_shell_word(const char *arg)
{
    if (arg[0] != '\0' &&
        strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                    "0123456789@%+=:,./-_[]") == strlen(arg)) {
        fputs(arg, stdout);
        return;
    }
    putchar('\'');
    for (const char *p = arg; *p != '\0'; p++) {
        if (*p == '\'')
            fputs("'\\''", stdout);
        else if ((unsigned char)*p < 0x20 || *p == 0x7f)
            printf("\\x%02x", (unsigned char)*p); /* one line, no escapes */
        else
            putchar(*p);
    }
    putchar('\'');
}

/* Which kernel stamps --timestamps subtracts (ek_platform.h). */
#define TIMESTAMPS_FROM                                                        \
    "SCM_TSTAMP_SND, the device taking the last byte, to its echo's "          \
    "arrival"

/* The options that shape the traffic beyond the header line, as text:
 * "--source ..., --dscp 46"; "" when none. */
static void print_shaping(const struct bench_options *o)
{
    const struct ek_sockopts *s = &o->sock;
    const char *sep = "";
#define ITEM(...) (printf("%s", sep), printf(__VA_ARGS__), sep = ", ")
    if (s->source.family != 0) {
        char buf[256];
        ITEM("--source %s", source_text(&s->source, buf, sizeof(buf)));
    }
    if (s->dev[0] != '\0')
        ITEM("--bind-dev %s", s->dev);
    if (s->tos >= 0)
        ITEM("--tos %d (DSCP %d)", s->tos, s->tos >> 2);
    if (s->mark >= 0)
        ITEM("--mark %lld", (long long)s->mark);
    if (s->cc[0] != '\0')
        ITEM("--cc %s", s->cc);
    if (s->mss > 0)
        ITEM("--mss %d", s->mss);
    if (o->interval_ms > 0)
        ITEM("interval %.3g s", (double)o->interval_ms / 1000.0);
    if (o->spin_us > 0)
        ITEM("--spin-us %llu", (unsigned long long)o->spin_us);
    if (o->timestamps)
        ITEM("--timestamps (%s)", TIMESTAMPS_FROM);
    if (o->udp)
        ITEM("--udp-timeout %.3g s", (double)o->udp_timeout_ms / 1000.0);
    ITEM("--timeout %.3g s", (double)o->timeout_ms / 1000.0);
#undef ITEM
}

static void print_log_only_text(const struct report *rp);
static void print_log_only_json(const struct report *rp);
static void json_merge_fields(const struct report *rp);

void bench_print_text(const struct report *rp)
{
    const struct bench_options *o = rp->o;
    const struct ek_bench_result *r = &rp->r;
    if (rp->log_only) {
        print_log_only_text(rp);
        return;
    }
    const struct run_context *ctx = run_context();
    char buf[64];

    bool connect = o->mode == EK_BENCH_CONNECT;
    bool stream = o->mode == EK_BENCH_STREAM;
    char peer[4 * EK_ADDRSTR_MAX];
    printf("echokit bench: %s%s%s to %s, %llu %s%s x %llu B",
           bench_mode_name(o->mode), o->udp ? " over UDP" : "",
           o->tls_on ? " over TLS" : "",
           escaped(rp->peer, false, peer, sizeof(peer)),
           (unsigned long long)o->conns, connect ? "slot" : "connection",
           o->conns == 1 ? "" : "s", (unsigned long long)o->size);
    if (stream)
        printf(" writes");
    if (connect)
        printf(", %llu exchange%s each", (unsigned long long)o->exchanges,
               o->exchanges == 1 ? "" : "s");
    if (o->mode == EK_BENCH_RR)
        printf(o->rate ? ", open loop at %llu msgs/s" : ", depth %llu",
               (unsigned long long)(o->rate ? o->rate : o->depth));
    else if (connect && o->rate)
        printf(", open loop at %llu conns/s", (unsigned long long)o->rate);
    printf(", %llu thread%s, %.1f s measured", (unsigned long long)o->threads,
           o->threads == 1 ? "" : "s", rp->seconds);
    if (rp->interrupted)
        printf(" of %.1f s (interrupted by %s)",
               (double)o->duration_ms / 1000.0, signal_name(rp->interrupted));
    printf(" after %.1f s warm-up", (double)o->warmup_ms / 1000.0);
    if (o->share_count > 0)
        printf(", share %u/%u", o->share_index, o->share_count);
    putchar('\n');
    if (o->argv != NULL) {
        time_t t = (time_t)rp->start_time;
        struct tm tm;
        char when[32] = "?";
        if (gmtime_r(&t, &tm) != NULL)
            strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        printf("run          echokit %s on %s (%s), measured from %s\n",
               EK_VERSION, ctx->host, ctx->kernel, when);
        printf("command      echokit");
        for (int i = 0; i < o->argc; i++) {
            putchar(' ');
            print_shell_word(o->argv[i]);
        }
        printf("\noptions      ");
        print_shaping(o);
        putchar('\n');
    }
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
    if (r->conns_no_fd > 0)
        printf("             %llu %s not made: out of file descriptors\n",
               (unsigned long long)r->conns_no_fd,
               connect ? "connects" : "connections");
    double got = achieved_rate(rp);
    if (got >= 0) {
        const char *missed = bench_rate_missed(rp);
        printf("rate         offered %llu %s/s, achieved %.0f (%.1f%% of "
               "those due)%s\n",
               (unsigned long long)o->rate, connect ? "conns" : "msgs", got,
               100.0 * achieved_share(rp),
               missed != NULL ? ": NOT ACHIEVED, the latencies describe the "
                                "client's queue"
                              : "");
    }
    if (connect && r->connect_lat.count > 0)
        print_quantiles("connect", &r->connect_lat);
    if (connect && r->handshake_lat.count > 0)
        print_quantiles("handshake", &r->handshake_lat);
    if (connect && r->first_echo_lat.count > 0)
        print_quantiles("first echo", &r->first_echo_lat);
    if (stream)
        printf("throughput   %s each way (%.0f writes/s of %llu B)\n",
               fmt_rate((double)r->bytes / rp->seconds, o->format, buf,
                        sizeof(buf)),
               (double)r->msgs / rp->seconds, (unsigned long long)o->size);
    else if (o->mode != EK_BENCH_IDLE)
        printf("throughput   %.0f msgs/s, %s each way\n",
               (double)r->msgs / rp->seconds,
               fmt_rate((double)r->bytes / rp->seconds, o->format, buf,
                        sizeof(buf)));
    if (bench_hist_used(o, BENCH_LATENCY) && r->latency.count > 0)
        print_quantiles("latency", &r->latency);
    if (bench_hist_used(o, BENCH_UNCORRECTED) && r->uncorrected.count > 0)
        print_quantiles("uncorrected", &r->uncorrected);
    if (bench_hist_used(o, BENCH_SEND_LAG) && r->send_lag.count > 0)
        print_quantiles("send lag", &r->send_lag);
    if (bench_hist_used(o, BENCH_KERNEL_RTT) && r->kernel_rtt.count > 0)
        print_quantiles("kernel rtt", &r->kernel_rtt);
    else if (bench_hist_used(o, BENCH_KERNEL_RTT))
        printf("kernel rtt   none: no echo had its send and arrival stamped "
               "on one clock\n");
    printf("errors       %llu (mismatches %llu, resets %llu, closed %llu, "
           "timeouts %llu, conns_failed %u, tls_failed %llu)\n",
           (unsigned long long)bench_errors_of(r),
           (unsigned long long)r->mismatches, (unsigned long long)r->resets,
           (unsigned long long)r->closed, (unsigned long long)r->timeouts,
           r->conns_failed, (unsigned long long)r->tls_failed);
    if (o->udp) {
        uint64_t fate = r->msgs + r->lost; /* late ones are in msgs */
        printf("datagrams    lost %llu (%.2f%%), late %llu, reordered %llu, "
               "duplicates %llu",
               (unsigned long long)r->lost,
               fate > 0 ? 100.0 * (double)r->lost / (double)fate : 0.0,
               (unsigned long long)r->late, (unsigned long long)r->reordered,
               (unsigned long long)r->duplicates);
        if (r->too_late > 0) /* their datagrams are among the lost */
            printf(", too_late %llu", (unsigned long long)r->too_late);
        if (r->rcvbuf_drops > 0) /* the client's own part of the loss */
            printf("; rcvbuf_drops %llu (echoes bench's own sockets had no "
                   "room for)",
                   (unsigned long long)r->rcvbuf_drops);
        putchar('\n');
    }
    if (r->first_error[0] != '\0') {
        char first[4 * sizeof(r->first_error)];
        printf("first error  %s\n",
               escaped(r->first_error, false, first, sizeof(first)));
    }
    if (o->server_pid) {
        long long us = rp->after.server_us - rp->before.server_us;
        printf("server       pid %d:", (int)o->server_pid);
        if (rp->before.server_us >= 0 && rp->after.server_us >= 0 &&
            o->mode != EK_BENCH_IDLE) {
            print_cpu(r, o, us);
            putchar(';');
        }
        printf(" RSS %ld KiB, PSS %ld KiB", rp->rss_kb, rp->pss_kb);
        if (o->mode == EK_BENCH_IDLE && r->conns_made > 0)
            printf(" (%.0f bytes per connection)",
                   (double)(rp->pss_kb - rp->pss_base_kb) * 1024.0 /
                       r->conns_made);
        printf("\n");
    }
    if (o->mode != EK_BENCH_IDLE) {
        printf("client      ");
        print_cpu(r, o, rp->after.client_us - rp->before.client_us);
        printf("\n");
    }
}

/* What a window (or one interval of it) counted, as JSON members
 * followed by a comma: what the summary and the intervals share. */
static void json_counts(const struct bench_options *o,
                        const struct ek_bench_result *r, double seconds)
{
    /* Every counter, whatever the mode (0 where it counts nothing): what
     * bench merge reads back. */
#define PRINT_COUNTER(f) printf("\"" #f "\":%llu,", (unsigned long long)r->f);
    EK_BENCH_COUNTERS(PRINT_COUNTER)
#undef PRINT_COUNTER
    printf("\"msgs_per_s\":%.1f,\"sent_per_s\":%.1f,\"mib_per_s\":%.3f,"
           "\"bits_per_s\":%.0f,\"errors\":%llu,",
           (double)r->msgs / seconds, (double)r->msgs_sent / seconds,
           (double)r->bytes / seconds / 1048576.0,
           (double)r->bytes * 8 / seconds,
           (unsigned long long)bench_errors_of(r));
    if (o->mode == EK_BENCH_CONNECT) {
        printf("\"conns_per_s\":%.1f,", (double)r->conns_done / seconds);
        json_quantiles("connect_us", &r->connect_lat);
        json_quantiles("handshake_us", &r->handshake_lat);
        json_quantiles("first_echo_us", &r->first_echo_lat);
    }
    /* Every latency key, null where the run measures none. */
    static const struct {
        int which;
        const char *key;
    } keys[] = {{BENCH_LATENCY, "latency_us"},
                {BENCH_UNCORRECTED, "uncorrected_us"},
                {BENCH_SEND_LAG, "send_lag_us"},
                {BENCH_KERNEL_RTT, "kernel_rtt_us"}};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (bench_hist_used(o, keys[i].which))
            json_quantiles(keys[i].key, bench_hist_of(r, keys[i].which));
        else
            printf("\"%s\":null,", keys[i].key);
}

/* The histograms of r that mode fills, by name, each as HdrHistogram's
 * compressed V2 in base64 (ek_hdr.h), in nanoseconds: what `bench merge`
 * adds up exactly. */
static void json_histograms(const struct bench_options *o,
                            const struct ek_bench_result *r)
{
    printf("\"hdr\":{");
    const char *sep = "";
    for (int i = 0; i < BENCH_HISTOGRAMS; i++) {
        if (!bench_hist_used(o, i))
            continue;
        char *text = ek_hdr_encode(bench_hist_of(r, i));
        printf("%s\"%s\":", sep, bench_hist_names[i]);
        printf(text != NULL ? "\"%s\"" : "null", text);
        free(text);
        sep = ",";
    }
    printf("},");
}

/* text as a JSON string, quotes included, whole (a byte takes at most
 * six). */
static void json_string(const char *text)
{
    size_t size = 6 * strlen(text) + 1;
    char *buf = malloc(size);
    if (buf == NULL) {
        printf("null");
        return;
    }
    printf("\"%s\"", escaped(text, true, buf, size));
    free(buf);
}

/* How the run was made, as JSON members followed by a comma: echokit, the
 * host, the command line, and every option that shapes the traffic, so
 * that the result can be made again from itself. */
static void json_run_context(const struct report *rp)
{
    const struct bench_options *o = rp->o;
    const struct ek_sockopts *so = &o->sock;
    const struct run_context *ctx = run_context();
    printf("\"version\":\"%s\",\"host\":", EK_VERSION);
    json_string(ctx->host);
    printf(",\"kernel\":");
    json_string(ctx->kernel);
    printf(",\"command\":[\"echokit\"");
    for (int i = 0; i < o->argc; i++) {
        putchar(',');
        json_string(o->argv[i]);
    }
    printf("],\"requested_s\":%.3f,\"interrupted\":",
           (double)o->duration_ms / 1000.0);
    if (rp->interrupted)
        json_string(signal_name(rp->interrupted));
    else
        printf("false");
    printf(",\"interval_s\":%.3f,\"timeout_s\":%.3f,\"spin_us\":%llu,"
           "\"timestamps\":%s,",
           (double)o->interval_ms / 1000.0, (double)o->timeout_ms / 1000.0,
           (unsigned long long)o->spin_us,
           o->timestamps ? "\"" TIMESTAMPS_FROM "\"" : "false");
    if (o->udp)
        printf("\"udp_timeout_s\":%.3f,", (double)o->udp_timeout_ms / 1000.0);
    printf("\"sockopts\":{\"source\":");
    if (so->source.family != 0) {
        char buf[256];
        json_string(source_text(&so->source, buf, sizeof(buf)));
    } else {
        printf("null");
    }
    printf(",\"bind_dev\":");
    if (so->dev[0] != '\0')
        json_string(so->dev);
    else
        printf("null");
    printf(so->tos >= 0 ? ",\"tos\":%d,\"dscp\":%d"
                        : ",\"tos\":null,\"dscp\":null",
           so->tos, so->tos >> 2);
    printf(so->mark >= 0 ? ",\"mark\":%lld" : ",\"mark\":null",
           (long long)so->mark);
    printf(",\"cc\":");
    if (so->cc[0] != '\0')
        json_string(so->cc);
    else
        printf("null");
    printf(so->mss > 0 ? ",\"mss\":%d}," : ",\"mss\":null},", so->mss);
    if (o->tls_on && o->tls_what[0] != '\0') {
        /* "TLSv1.3 TLS_AES_256_GCM_SHA384, resumed, SNI ...": the version
         * and the cipher are its first two words. */
        char version[32] = "", cipher[96] = "";
        if (sscanf(o->tls_what, "%31s %95[^, ]", version, cipher) < 2)
            cipher[0] = '\0';
        printf("\"tls_session\":");
        json_string(o->tls_what);
        printf(",\"tls_version\":");
        json_string(version);
        printf(",\"tls_cipher\":");
        json_string(cipher);
        printf(",\"tls_resumed\":%s,",
               strstr(o->tls_what, ", resumed") != NULL ? "true" : "false");
    }
}

/* The summary as one JSON object, without a newline. */
void bench_print_json(const struct report *rp)
{
    const struct bench_options *o = rp->o;
    const struct ek_bench_result *r = &rp->r;
    char peer[6 * EK_ADDRSTR_MAX];
    if (rp->log_only) {
        print_log_only_json(rp);
        return;
    }

    printf("{\"server\":\"%s\",\"mode\":\"%s\",\"conns\":%llu,"
           "\"conns_made\":%u,\"conns_failed\":%u,\"size\":%llu,"
           "\"depth\":%llu,\"rate\":%llu,\"threads\":%llu,"
           "\"warmup_s\":%.3f,\"duration_s\":%.3f,",
           escaped(rp->peer, true, peer, sizeof(peer)),
           bench_mode_name(o->mode), (unsigned long long)o->conns,
           r->conns_made, r->conns_failed, (unsigned long long)o->size,
           (unsigned long long)o->depth, (unsigned long long)o->rate,
           (unsigned long long)o->threads, (double)o->warmup_ms / 1000.0,
           rp->seconds);
    printf("\"start_time\":%.6f,\"end_time\":%.6f,", rp->start_time,
           rp->start_time + rp->seconds);
    if (o->argv != NULL)
        json_run_context(rp);
    if (rp->runs > 0)
        json_merge_fields(rp);
    else
        printf("\"run_id\":\"%s\",", rp->run_id);
    if (o->share_count > 0)
        printf("\"share\":\"%u/%u\",", o->share_index, o->share_count);
    printf("\"udp\":%s,\"tls\":%s,", o->udp ? "true" : "false",
           o->tls_on ? "true" : "false");
    if (o->mode == EK_BENCH_CONNECT)
        printf("\"exchanges\":%llu,", (unsigned long long)o->exchanges);
    json_counts(o, r, rp->seconds);
    double got = achieved_rate(rp);
    printf("\"rate_achieved\":%s,", got < 0                         ? "null"
                                    : bench_rate_missed(rp) == NULL ? "true"
                                                                    : "false");
    json_histograms(o, r);
    long long client_us = rp->after.client_us - rp->before.client_us;
    printf("\"client_cpu_s\":%.3f", (double)client_us / 1e6);
    if (o->mode == EK_BENCH_STREAM)
        printf(",\"client_cpu_s_per_gib\":%.4f", per_gib(r, client_us));
    if (o->server_pid) {
        long long us = rp->after.server_us - rp->before.server_us;
        bool cpu = rp->before.server_us >= 0 && rp->after.server_us >= 0;
        printf(",\"server_pid\":%d,\"server_cpu_s\":", (int)o->server_pid);
        printf(cpu ? "%.3f" : "null", (double)us / 1e6);
        printf(",\"server_cpu_us_per_msg\":");
        printf(cpu && r->msgs ? "%.3f" : "null",
               r->msgs ? (double)us / (double)r->msgs : 0.0);
        if (o->mode == EK_BENCH_STREAM) {
            printf(",\"server_cpu_s_per_gib\":");
            printf(cpu && r->bytes ? "%.4f" : "null", per_gib(r, us));
        }
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
        char first[6 * sizeof(r->first_error)];
        printf(",\"first_error\":\"%s\"",
               escaped(r->first_error, true, first, sizeof(first)));
    }
    printf("}");
}

/* --json-stream's first line: what the run is. */
void bench_json_stream_start(const struct report *rp)
{
    const struct bench_options *o = rp->o;
    char peer[6 * EK_ADDRSTR_MAX];
    printf("{\"event\":\"start\",\"data\":{\"server\":\"%s\",\"mode\":\"%s\","
           "\"conns\":%llu,\"size\":%llu,\"depth\":%llu,\"rate\":%llu,"
           "\"threads\":%llu,\"warmup_s\":%.3f,\"duration_s\":%.3f,"
           "\"udp\":%s,\"tls\":%s,",
           escaped(rp->peer, true, peer, sizeof(peer)),
           bench_mode_name(o->mode), (unsigned long long)o->conns,
           (unsigned long long)o->size, (unsigned long long)o->depth,
           (unsigned long long)o->rate, (unsigned long long)o->threads,
           (double)o->warmup_ms / 1000.0, (double)o->duration_ms / 1000.0,
           o->udp ? "true" : "false", o->tls_on ? "true" : "false");
    if (o->argv != NULL)
        json_run_context(rp);
    printf("\"start_time\":%.6f,\"run_id\":\"%s\"}}\n", rp->start_time,
           rp->run_id);
    fflush(stdout);
}

/* One interval as -i's line, --json-stream's object and --hdr-log's
 * lines, whichever were asked for. Returns 0, or EX_IOERR after saying
 * why (the log could not be written). */
int bench_emit_interval(const struct report *rp,
                        const struct ek_bench_interval *iv, int64_t measure)
{
    const struct bench_options *o = rp->o;
    const struct ek_bench_result *r = &iv->r;
    if (iv->end_ns <= iv->start_ns)
        return 0; /* stopped before the window began: nothing in it */
    double from = (double)(iv->start_ns - measure) / 1e9;
    double to = (double)(iv->end_ns - measure) / 1e9;
    double seconds = to - from;
    if (o->json_stream) {
        printf("{\"event\":\"interval\",\"data\":{\"index\":%llu,"
               "\"intervals\":%llu,\"start_s\":%.3f,\"end_s\":%.3f,"
               "\"seconds\":%.3f,",
               (unsigned long long)iv->index, (unsigned long long)iv->intervals,
               from, to, seconds);
        json_counts(o, r, seconds);
        printf("\"start_time\":%.6f}}\n", rp->start_time + from);
    } else if (o->interval_ms > 0 && !o->json) {
        printf("[%6.1f-%6.1f s] ", from, to);
        if (o->mode == EK_BENCH_CONNECT)
            printf("%8.0f conns/s ", (double)r->conns_done / seconds);
        char rate[32];
        printf("%10.0f msgs/s %14s", (double)r->msgs / seconds,
               fmt_rate((double)r->bytes / seconds, o->format, rate,
                        sizeof(rate)));
        if (r->latency.count > 0) {
            char a[32], b[32], c[32], d[32];
            printf(
                "  p50 %s  p99 %s  p99.9 %s  max %s",
                bench_fmt_ns(ek_hist_quantile(&r->latency, 0.5), a, sizeof(a)),
                bench_fmt_ns(ek_hist_quantile(&r->latency, 0.99), b, sizeof(b)),
                bench_fmt_ns(ek_hist_quantile(&r->latency, 0.999), c,
                             sizeof(c)),
                bench_fmt_ns(r->latency.max, d, sizeof(d)));
        }
        if (o->udp)
            printf("  lost %llu  late %llu", (unsigned long long)r->lost,
                   (unsigned long long)r->late);
        printf("  errors %llu\n", (unsigned long long)bench_errors_of(r));
    }
    fflush(stdout);
    if (rp->hdr_log == NULL || rp->status != 0)
        return 0; /* no log, or one that failed already (said once) */
    /* The latency untagged, the others tagged with their names. */
    int err = 0;
    for (int i = 0; i < BENCH_HISTOGRAMS && err == 0; i++)
        if (bench_hist_used(o, i))
            err =
                ek_hdr_log_interval(rp->hdr_log, i ? bench_hist_names[i] : NULL,
                                    from, seconds, bench_hist_of(r, i));
    if (err == 0 && fflush(rp->hdr_log) != 0)
        err = -errno;
    if (err < 0) {
        ek_warnx("bench: --hdr-log %s: %s", o->hdr_log, strerror(-err));
        return EX_IOERR;
    }
    return 0;
}

void bench_print_percentiles(const struct ek_hist *h)
{
    printf("%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount",
           "1/(1-Percentile)");
    double mean = ek_hist_mean(h), var = 0;
    uint64_t seen = 0;
    unsigned i = 0;
    /* HdrHistogram's levels, five per halving of what is left: 0, 10%,
     * ..., 50%, 55%, ..., 75%, 77.5%, ...; each with the value of the
     * bucket that holds it (its middle, as bench reports) and the count
     * up to that bucket. They end where less than one value is left. */
    for (int k = 0; h->count > 0; k++) {
        double left = ldexp(1.0 - (k % 5) / 10.0, -(k / 5)), p = 1.0 - left;
        if (left * (double)h->count < 1.0)
            break;
        uint64_t rank = (uint64_t)ceil(p * (double)h->count);
        if (rank == 0)
            rank = 1;
        for (; seen < rank && i < EK_HIST_BUCKETS; i++)
            seen += h->buckets[i];
        uint64_t v = ek_hist_bucket_mid(i - 1);
        v = v < h->min ? h->min : v > h->max ? h->max : v;
        printf("%12.3f %14.12f %10llu %14.2f\n", (double)v / 1e3, p,
               (unsigned long long)seen, 1.0 / left);
    }
    if (h->count > 0)
        printf("%12.3f %14.12f %10llu\n", (double)h->max / 1e3, 1.0,
               (unsigned long long)h->count);
    for (unsigned b = 0; b < EK_HIST_BUCKETS; b++)
        if (h->buckets[b] != 0) {
            double d = (double)ek_hist_bucket_mid(b) - mean;
            var += d * d * (double)h->buckets[b];
        }
    printf("#[Mean    = %12.3f, StdDeviation   = %12.3f]\n", mean / 1e3,
           h->count ? sqrt(var / (double)h->count) / 1e3 : 0.0);
    printf("#[Max     = %12.3f, Total count    = %12llu]\n",
           (double)h->max / 1e3, (unsigned long long)h->count);
    printf("#[Buckets = %12d, SubBuckets     = %12d]\n", 56, 256);
}

/* ---- bench merge ------------------------------------------------------ */

/* What a merge adds to the JSON: how many runs, how long in common, how
 * much of the shortest that is, and the runs' ids (what a later merge
 * tells them by). */
static void json_merge_fields(const struct report *rp)
{
    printf("\"runs\":%zu,\"common_s\":%.3f,\"overlap\":%.3f,\"run_ids\":[",
           rp->runs, rp->common_s, rp->overlap);
    for (size_t i = 0; i < rp->nrun_ids; i++)
        printf("%s\"%s\"", i ? "," : "", rp->run_ids[i]);
    printf("],");
}

/* A merge of HdrHistogram logs alone: they hold latencies and so their
 * counts, and when they were taken; nothing else is known, and the
 * report says so rather than print zeros. */
static void print_log_only_text(const struct report *rp)
{
    const struct bench_options *o = rp->o;
    const struct ek_bench_result *r = &rp->r;
    bool connect = o->mode == EK_BENCH_CONNECT;
    printf("echokit bench: %s, from HdrHistogram logs: server, connections, "
           "size, %s, threads and warm-up not known; %.1f s measured\n",
           bench_mode_name(o->mode), connect ? "exchanges" : "depth or rate",
           rp->seconds);
    if (connect)
        printf("connections  %.0f/s: %llu done (first echoes logged), failed "
               "not known\n",
               (double)r->conns_done / rp->seconds,
               (unsigned long long)r->conns_done);
    else
        printf("connections  not known\n");
    for (int i = BENCH_CONNECT_LAT; connect && i < BENCH_HISTOGRAMS; i++)
        if (bench_hist_of(r, i)->count > 0)
            print_quantiles(i == BENCH_CONNECT_LAT     ? "connect"
                            : i == BENCH_HANDSHAKE_LAT ? "handshake"
                                                       : "first echo",
                            bench_hist_of(r, i));
    printf("throughput   %.0f msgs/s (the latencies logged); bytes not "
           "known\n",
           (double)r->msgs / rp->seconds);
    if (r->latency.count > 0)
        print_quantiles("latency", &r->latency);
    printf("errors       not known\n");
    printf("client       CPU not known\n");
}

static void print_log_only_json(const struct report *rp)
{
    const struct bench_options *o = rp->o;
    const struct ek_bench_result *r = &rp->r;
    bool connect = o->mode == EK_BENCH_CONNECT;
    printf("{\"server\":null,\"mode\":\"%s\",\"conns\":null,"
           "\"conns_made\":null,\"conns_failed\":null,\"size\":null,"
           "\"depth\":null,\"rate\":null,\"threads\":null,"
           "\"warmup_s\":null,\"duration_s\":%.3f,\"start_time\":%.6f,"
           "\"end_time\":%.6f,",
           bench_mode_name(o->mode), rp->seconds, rp->start_time,
           rp->start_time + rp->seconds);
    json_merge_fields(rp);
    printf("\"udp\":null,\"tls\":null,");
    if (connect)
        printf("\"exchanges\":null,");
        /* The counts the histograms make: messages (latencies), and in
         * connect mode connections (first echoes); null for the rest. */
#define PRINT_COUNTER(f)                                                       \
    if (strcmp(#f, "msgs") == 0 || strcmp(#f, "conns_done") == 0)              \
        printf("\"" #f "\":%llu,", (unsigned long long)r->f);                  \
    else                                                                       \
        printf("\"" #f "\":null,");
    EK_BENCH_COUNTERS(PRINT_COUNTER)
#undef PRINT_COUNTER
    printf("\"msgs_per_s\":%.1f,\"mib_per_s\":null,\"errors\":null,",
           (double)r->msgs / rp->seconds);
    if (connect) {
        printf("\"conns_per_s\":%.1f,", (double)r->conns_done / rp->seconds);
        json_quantiles("connect_us", &r->connect_lat);
        json_quantiles("handshake_us", &r->handshake_lat);
        json_quantiles("first_echo_us", &r->first_echo_lat);
    }
    json_quantiles("latency_us", &r->latency);
    json_histograms(o, r);
    printf("\"client_cpu_s\":null}");
}
