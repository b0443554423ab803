/*
 * echokit bench merge FILE...: several bench runs (from several hosts, or
 * processes) as one report. Inputs are bench's --json results (or the
 * "end" line of --json-stream), which carry their histograms losslessly,
 * or HdrHistogram interval logs (--hdr-log's, or another tool's, taken
 * to be in nanoseconds). Counts and errors are summed and histograms
 * added, so merged percentiles are exact, never averages of percentiles.
 *
 * Throughput is the runs' rates summed: each run's count over its own
 * window, which is their joint rate while they all ran. The report gives
 * the common interval (the latest start to the earliest end) and warns
 * when the runs do not overlap for most of it.
 */
#include "cmd_bench.h"
#include "ek_hdr.h"
#include "ek_json.h"
#include "ek_log.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

static const char usage_text[] =
    "usage: echokit bench merge [--json | --percentiles] FILE...\n"
    "\n"
    "Add up bench runs made at the same time (from several hosts, say) into "
    "one\n"
    "report. Each FILE is the output of bench --json or --json-stream, or an\n"
    "HdrHistogram interval log (bench --hdr-log, or any tool's, in ns).\n"
    "\n"
    "  --json        print the merged result as bench --json does (it can "
    "be\n"
    "                merged again)\n"
    "  --percentiles print the latency's percentile spectrum instead, in\n"
    "                HdrHistogram's format (us; what its plotters read)\n"
    "  -h, --help    this text\n"
    "\n"
    "Counts and errors are summed and histograms added: percentiles are "
    "exact.\n"
    "Throughput is the runs' rates summed, their joint rate while they all "
    "ran;\n"
    "a warning says when they overlap for less than 90% of the shortest.\n"
    "Exit status: 0 merged, no errors in the runs; 1 merged, with errors; 64 "
    "bad\n"
    "usage; 65 a FILE that is not a bench result or log; 66 a FILE that "
    "cannot\n"
    "be read.\n";

/* The largest file read: a result is a few KiB, a day's log some MiB. */
#define MERGE_FILE_MAX (256u << 20)

struct run {
    const char *file;
    bool log; /* an HdrHistogram log: no errors, bytes or connections */
    struct ek_bench_result r;
    enum ek_bench_mode mode;
    bool udp, tls;
    uint64_t conns, size, depth, rate, threads, exchanges;
    double warmup_s, start, seconds, client_cpu_s;
    uint64_t runs; /* 1, or what a merged result says it holds */
    char server[EK_ADDRSTR_MAX];
};

/* ---- bench's JSON ---------------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "re");
    if (f == NULL)
        return NULL;
    size_t cap = 0, n = 0;
    char *buf = NULL;
    for (;;) {
        if (n + 4096 > cap) {
            size_t bigger = cap ? 2 * cap : 65536;
            char *b =
                bigger <= MERGE_FILE_MAX ? realloc(buf, bigger + 1) : NULL;
            if (b == NULL) {
                errno = bigger > MERGE_FILE_MAX ? EFBIG : ENOMEM;
                break;
            }
            buf = b;
            cap = bigger;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0)
            break;
    }
    bool bad = buf == NULL || ferror(f) || !feof(f);
    if (f != stdin)
        fclose(f);
    if (bad) {
        if (errno == 0)
            errno = EIO;
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* A field of the result, under prefix ("" or --json-stream's "data."). */
static const char *field(const char *prefix, const char *name, char *buf,
                         size_t size)
{
    snprintf(buf, size, "%s%s", prefix, name);
    return buf;
}

static uint64_t get_u64(const struct ek_json *j, const char *prefix,
                        const char *name)
{
    char path[64];
    uint64_t v = 0;
    ek_json_u64(j, field(prefix, name, path, sizeof(path)), &v);
    return v;
}

static double get_double(const struct ek_json *j, const char *prefix,
                         const char *name)
{
    char path[64];
    double v = 0;
    ek_json_double(j, field(prefix, name, path, sizeof(path)), &v);
    return v;
}

/* Histogram name's counts from "hdr.NAME", and its exact minimum, maximum
 * and mean from "NAME_us" (microseconds to the nanosecond). */
static int read_hist(const struct ek_json *j, const char *prefix,
                     const char *name, const char *us_name, struct ek_hist *h,
                     const char **why)
{
    char path[64], sub[64];
    snprintf(sub, sizeof(sub), "hdr.%s", name);
    size_t len;
    const char *text =
        ek_json_string(j, field(prefix, sub, path, sizeof(path)), &len);
    if (text == NULL)
        return 0; /* not in this mode */
    int rc = ek_hdr_decode_add(text, len, h, why);
    if (rc < 0 || h->count == 0)
        return rc;
    double min, max, mean;
    snprintf(sub, sizeof(sub), "%s.min", us_name);
    bool exact =
        ek_json_double(j, field(prefix, sub, path, sizeof(path)), &min);
    snprintf(sub, sizeof(sub), "%s.max", us_name);
    exact &= ek_json_double(j, field(prefix, sub, path, sizeof(path)), &max);
    snprintf(sub, sizeof(sub), "%s.mean", us_name);
    exact &= ek_json_double(j, field(prefix, sub, path, sizeof(path)), &mean);
    if (exact) {
        h->min = (uint64_t)llround(min * 1e3);
        h->max = (uint64_t)llround(max * 1e3);
        h->sum = (long double)mean * 1e3L * (long double)h->count;
    }
    return 0;
}

/* The line of a --json-stream whose event is "end", or text itself. */
static const char *result_text(char *text, const char **prefix)
{
    *prefix = "";
    if (strncmp(text, "{\"event\":", 9) != 0)
        return text;
    *prefix = "data.";
    for (char *line = text; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        if (strncmp(line, "{\"event\":\"end\"", 14) == 0)
            return line;
        line = nl != NULL ? nl + 1 : NULL;
    }
    return NULL;
}

static int read_json(struct run *run, char *text, const char **why)
{
    const char *prefix;
    const char *result = result_text(text, &prefix);
    if (result == NULL) {
        *why = "a --json-stream without its \"end\" line (the run was cut "
               "short?)";
        return -EINVAL;
    }
    struct ek_json j;
    int rc = ek_json_parse(result, &j);
    char path[64];
    size_t len;
    const char *mode =
        ek_json_string(&j, field(prefix, "mode", path, sizeof(path)), &len);
    char name[16];
    if (rc == 0 &&
        (mode == NULL || len >= sizeof(name) ||
         ek_json_get(&j, field(prefix, "msgs", path, sizeof(path))) == NULL)) {
        *why = "not a bench --json result (no \"mode\" or \"msgs\")";
        rc = -EINVAL;
    } else if (rc < 0) {
        *why = rc == -ENOMEM ? "out of memory" : "not JSON";
    }
    if (rc == 0) {
        memcpy(name, mode, len);
        name[len] = '\0';
        if (!bench_parse_mode(name, &run->mode)) {
            *why = "an unknown mode";
            rc = -EINVAL;
        }
    }
    if (rc == 0 &&
        (run->mode == EK_BENCH_RR || run->mode == EK_BENCH_CONNECT) &&
        ek_json_get(&j, field(prefix, "hdr.latency", path, sizeof(path))) ==
            NULL) {
        *why = "no histogram in it (made by an echokit before 0.2?)";
        rc = -EINVAL;
    }
    struct ek_bench_result *r = &run->r;
    if (rc == 0) {
        static const struct {
            const char *name;
            size_t offset;
        } counts[] = {
#define COUNT(f) {#f, offsetof(struct ek_bench_result, f)}
            COUNT(msgs),       COUNT(bytes),      COUNT(mismatches),
            COUNT(resets),     COUNT(closed),     COUNT(timeouts),
            COUNT(tls_failed), COUNT(lost),       COUNT(reordered),
            COUNT(duplicates), COUNT(conns_done), COUNT(conns_resumed),
#undef COUNT
        };
        for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
            *(uint64_t *)((char *)r + counts[i].offset) =
                get_u64(&j, prefix, counts[i].name);
        r->conns_made = (uint32_t)get_u64(&j, prefix, "conns_made");
        r->conns_failed = (uint32_t)get_u64(&j, prefix, "conns_failed");
        run->runs = get_u64(&j, prefix, "runs");
        run->conns = get_u64(&j, prefix, "conns");
        run->size = get_u64(&j, prefix, "size");
        run->depth = get_u64(&j, prefix, "depth");
        run->rate = get_u64(&j, prefix, "rate");
        run->threads = get_u64(&j, prefix, "threads");
        run->exchanges = get_u64(&j, prefix, "exchanges");
        run->warmup_s = get_double(&j, prefix, "warmup_s");
        run->seconds = get_double(&j, prefix, "duration_s");
        run->start = get_double(&j, prefix, "start_time");
        run->client_cpu_s = get_double(&j, prefix, "client_cpu_s");
        const struct ek_json_field *f;
        f = ek_json_get(&j, field(prefix, "udp", path, sizeof(path)));
        run->udp = f != NULL && f->value[0] == 't';
        f = ek_json_get(&j, field(prefix, "tls", path, sizeof(path)));
        run->tls = f != NULL && f->value[0] == 't';
        const char *server = ek_json_string(
            &j, field(prefix, "server", path, sizeof(path)), &len);
        if (server != NULL && len < sizeof(run->server)) {
            memcpy(run->server, server, len);
            run->server[len] = '\0';
        }
        const char *first = ek_json_string(
            &j, field(prefix, "first_error", path, sizeof(path)), &len);
        if (first != NULL)
            snprintf(r->first_error, sizeof(r->first_error), "%s: %.*s",
                     run->file, (int)(len < 200 ? len : 200), first);
    }
    if (rc == 0)
        rc = read_hist(&j, prefix, "latency", "latency_us", &r->latency, why);
    if (rc == 0)
        rc = read_hist(&j, prefix, "connect", "connect_us", &r->connect_lat,
                       why);
    if (rc == 0)
        rc = read_hist(&j, prefix, "handshake", "handshake_us",
                       &r->handshake_lat, why);
    if (rc == 0)
        rc = read_hist(&j, prefix, "first_echo", "first_echo_us",
                       &r->first_echo_lat, why);
    ek_json_free(&j);
    return rc;
}

/* ---- HdrHistogram logs ---------------------------------------------- */

static int read_log(struct run *run, char *text, size_t len, const char **why)
{
    FILE *f = fmemopen(text, len, "r");
    if (f == NULL)
        return -errno;
    struct ek_hdr_log log;
    size_t line;
    int rc = ek_hdr_log_read(f, &log, why, &line);
    fclose(f);
    if (rc == 0) {
        static const char *const tags[] = {"", "connect", "handshake",
                                           "first_echo"};
        struct ek_hist *into[] = {&run->r.latency, &run->r.connect_lat,
                                  &run->r.handshake_lat,
                                  &run->r.first_echo_lat};
        for (size_t i = 0; i < 4; i++) {
            const struct ek_hist *h = ek_hdr_log_hist(&log, tags[i]);
            if (h != NULL)
                ek_hist_merge(into[i], h);
        }
        run->log = true;
        run->mode = ek_hdr_log_hist(&log, "connect") != NULL ? EK_BENCH_CONNECT
                                                             : EK_BENCH_RR;
        run->r.msgs = run->r.latency.count;
        run->r.conns_done = run->r.first_echo_lat.count;
        run->start = log.first_s;
        run->seconds = log.last_s - log.first_s;
    } else if (rc == -EINVAL) {
        static char where[160];
        snprintf(where, sizeof(where), "line %zu: %s", line, *why);
        *why = where;
    }
    ek_hdr_log_free(&log);
    return rc;
}

/* ---- the merge -------------------------------------------------------- */

/* Reads one FILE. Returns 0, or the exit status after saying why. */
static int read_run(struct run *run)
{
    size_t len = 0;
    const char *why = "out of memory";
    errno = 0;
    char *text = read_file(run->file, &len);
    if (text == NULL) {
        ek_warnx("bench merge: %s: %s", run->file, strerror(errno));
        return EX_NOINPUT;
    }
    if (len == 0) {
        ek_warnx("bench merge: %s: empty", run->file);
        free(text);
        return EX_DATAERR;
    }
    bool json = text[strspn(text, " \t\r\n")] == '{';
    int rc = json ? read_json(run, text, &why) : read_log(run, text, len, &why);
    free(text);
    if (rc == -EINVAL || rc == -ENOMEM) {
        ek_warnx("bench merge: %s: %s", run->file, why);
        return rc == -ENOMEM ? EX_OSERR : EX_DATAERR;
    }
    if (rc < 0) {
        ek_warnx("bench merge: %s: %s", run->file, strerror(-rc));
        return EX_NOINPUT;
    }
    return 0;
}

/* The runs as one report in rp (and its options in o); prints what the
 * reader should know about how they fit together. Returns 0 or 65. */
static int combine(struct run *runs, size_t n, struct bench_options *o,
                   struct report *rp)
{
    const struct run *first = &runs[0];
    double latest_start = first->start,
           earliest_end = first->start + first->seconds;
    double shortest = first->seconds, rate = 0;
    size_t logs = 0;
    ek_bench_result_reset(&rp->r);
    o->mode = first->mode;
    o->size = first->size;
    o->depth = first->depth;
    o->exchanges = first->exchanges;
    o->warmup_ms = (int64_t)(first->warmup_s * 1000);
    rp->peer = first->server[0] != '\0' ? first->server : "(unknown)";
    long long cpu_us = 0;
    for (size_t i = 0; i < n; i++) {
        const struct run *run = &runs[i];
        if (run->mode != o->mode) {
            ek_warnx("bench merge: %s is --mode %s, %s is --mode %s: runs of "
                     "one mode only",
                     first->file, bench_mode_name(first->mode), run->file,
                     bench_mode_name(run->mode));
            return EX_DATAERR;
        }
        ek_bench_result_add(&rp->r, &run->r);
        o->conns += run->conns;
        o->threads += run->threads;
        o->rate += run->rate;
        o->udp |= run->udp;
        o->tls_on |= run->tls;
        cpu_us += (long long)llround(run->client_cpu_s * 1e6);
        logs += run->log;
        rp->runs += run->runs > 0 ? run->runs : 1;
        if (!run->log && run->size != o->size)
            ek_warnx("bench merge: note: %s sends %llu B messages, %s %llu B",
                     first->file, (unsigned long long)o->size, run->file,
                     (unsigned long long)run->size);
        if (run->server[0] != '\0' && strcmp(run->server, rp->peer) != 0)
            rp->peer = "several servers";
        /* What this run counted per second, in the mode's own unit. */
        uint64_t units =
            o->mode == EK_BENCH_CONNECT ? run->r.conns_done : run->r.msgs;
        if (run->seconds > 0)
            rate += (double)units / run->seconds;
        if (run->start > latest_start)
            latest_start = run->start;
        if (run->start + run->seconds < earliest_end)
            earliest_end = run->start + run->seconds;
        if (run->seconds < shortest)
            shortest = run->seconds;
    }
    double common = earliest_end - latest_start;
    if (common <= 0)
        ek_warnx("bench merge: warning: the runs do not overlap in time; "
                 "their rates are summed as if they had run together");
    else if (common < 0.9 * shortest)
        ek_warnx("bench merge: warning: the runs overlap for %.2f s only, "
                 "of %.2f s (the shortest): the summed rate holds for that "
                 "time",
                 common, shortest);
    if (logs > 0)
        ek_warnx("bench merge: note: %zu of the %zu inputs are HdrHistogram "
                 "logs, which carry no errors, bytes or connections",
                 logs, n);
    /* The seconds that make count / seconds the summed rate (the window,
     * when the runs were one window). */
    uint64_t units =
        o->mode == EK_BENCH_CONNECT ? rp->r.conns_done : rp->r.msgs;
    rp->seconds = rate > 0 ? (double)units / rate : shortest;
    if (rp->seconds <= 0)
        rp->seconds = 1e-9;
    o->duration_ms = (int64_t)(rp->seconds * 1000);
    rp->start_time = latest_start;
    rp->after.client_us = cpu_us;
    rp->common_s = common > 0 ? common : 0;
    return 0;
}

int ek_cmd_bench_merge(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"json", no_argument, NULL, 'j'},
        {"percentiles", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct bench_options o = {.json = false};
    bool percentiles = false;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (c == 'h') {
            fputs(usage_text, stdout);
            return 0;
        }
        if (c == 'p')
            percentiles = true;
        else if (c == 'j')
            o.json = true;
        else
            return ek_option_error("bench merge", c, argv);
    }
    if (percentiles && o.json)
        return ek_usage_error("bench merge", "--json or --percentiles: "
                                             "give one");
    size_t n = (size_t)(argc - optind);
    if (n == 0)
        return ek_usage_error("bench merge", "no FILE to merge");
    size_t stdins = 0;
    for (int i = optind; i < argc; i++)
        stdins += strcmp(argv[i], "-") == 0;
    if (stdins > 1)
        return ek_usage_error("bench merge", "'-' (stdin) given twice");
    struct run *runs = calloc(n, sizeof(*runs));
    struct report *rp = calloc(1, sizeof(*rp));
    int status = runs == NULL || rp == NULL ? EX_OSERR : 0;
    if (status != 0)
        ek_warnx("bench merge: out of memory");
    for (size_t i = 0; i < n && status == 0; i++) {
        runs[i].file = argv[optind + (int)i];
        ek_bench_result_reset(&runs[i].r);
        status = read_run(&runs[i]);
    }
    if (status == 0)
        status = combine(runs, n, &o, rp);
    if (status == 0) {
        rp->o = &o;
        rp->rss_kb = rp->pss_kb = -1;
        if (percentiles) {
            bench_print_percentiles(&rp->r.latency);
        } else if (o.json) {
            bench_print_json(rp);
            printf("\n");
        } else {
            printf("echokit bench merge: %zu runs, %.2f s in common\n",
                   rp->runs, rp->common_s);
            bench_print_text(rp);
        }
        fflush(stdout);
        status = bench_errors_of(&rp->r) > 0 ? 1 : 0;
    }
    free(runs);
    free(rp);
    return status;
}
