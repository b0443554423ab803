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
#include "ek_util.h"

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
    char share[24]; /* its --share "I/N", or "" */
};

/* ---- bench's JSON ---------------------------------------------------- */

/* The file at path ("-": standard input), as ek_read_all reads it. */
static char *read_file(const char *path, size_t *len)
{
    if (strcmp(path, "-") == 0)
        return ek_read_all(stdin, MERGE_FILE_MAX, len);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return NULL;
    char *text = ek_read_all(f, MERGE_FILE_MAX, len);
    int saved = errno;
    fclose(f);
    errno = saved;
    return text;
}

/* A result being read: its fields, under prefix ("" or a --json-stream's
 * "data."). */
struct result_view {
    const struct ek_json *j;
    const char *prefix;
};

static const char *path_of(const struct result_view *v, const char *name,
                           char *buf, size_t size)
{
    snprintf(buf, size, "%s%s", v->prefix, name);
    return buf;
}

static bool has(const struct result_view *v, const char *name)
{
    char path[64];
    return ek_json_get(v->j, path_of(v, name, path, sizeof(path))) != NULL;
}

static uint64_t get_u64(const struct result_view *v, const char *name)
{
    char path[64];
    uint64_t n = 0;
    ek_json_u64(v->j, path_of(v, name, path, sizeof(path)), &n);
    return n;
}

/* A number; *found says whether there was one (NULL: 0 will do). */
static double get_double(const struct result_view *v, const char *name,
                         bool *found)
{
    char path[64];
    double d = 0;
    bool ok = ek_json_double(v->j, path_of(v, name, path, sizeof(path)), &d);
    if (found != NULL)
        *found &= ok;
    return d;
}

static bool get_bool(const struct result_view *v, const char *name)
{
    char path[64];
    const struct ek_json_field *f =
        ek_json_get(v->j, path_of(v, name, path, sizeof(path)));
    return f != NULL && f->value[0] == 't';
}

/* A string, unescaped and malloc'd, or NULL. */
static char *get_string(const struct result_view *v, const char *name)
{
    char path[64];
    return ek_json_string(v->j, path_of(v, name, path, sizeof(path)));
}

/* Histogram name's counts from "hdr.NAME", and its exact minimum, maximum
 * and mean from "NAME_us.min" etc. (microseconds to the nanosecond). */
static int read_hist(const struct result_view *v, const char *name,
                     struct ek_hist *h, const char **why)
{
    char key[40], us_name[24]; /* "first_echo_us.mean" at most */
    snprintf(us_name, sizeof(us_name), "%s_us", name);
    snprintf(key, sizeof(key), "hdr.%s", name);
    char *text = get_string(v, key);
    if (text == NULL)
        return has(v, key) ? -ENOMEM : 0; /* else: not in this mode */
    int rc = ek_hdr_decode_add(text, strlen(text), h, why);
    free(text);
    if (rc < 0 || h->count == 0)
        return rc;
    bool exact = true;
    snprintf(key, sizeof(key), "%s.min", us_name);
    double min = get_double(v, key, &exact);
    snprintf(key, sizeof(key), "%s.max", us_name);
    double max = get_double(v, key, &exact);
    snprintf(key, sizeof(key), "%s.mean", us_name);
    double mean = get_double(v, key, &exact);
    if (exact && min >= 0 && max >= min && max < 9.2e15) {
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

/* What the result says besides its histograms. */
static int read_fields(struct run *run, const struct result_view *v,
                       const char **why)
{
    char *mode = get_string(v, "mode");
    bool known = mode != NULL && bench_parse_mode(mode, &run->mode);
    free(mode);
    if (!has(v, "mode") || !has(v, "msgs")) {
        *why = "not a bench --json result (no \"mode\" or \"msgs\")";
        return -EINVAL;
    }
    if (!known) {
        *why = "an unknown mode";
        return -EINVAL;
    }
    if ((run->mode == EK_BENCH_RR || run->mode == EK_BENCH_CONNECT) &&
        !has(v, "hdr.latency")) {
        *why = "no histogram in it (an echokit bench from before they were "
               "written?)";
        return -EINVAL;
    }
    struct ek_bench_result *r = &run->r;
#define READ_COUNTER(f) r->f = get_u64(v, #f);
    EK_BENCH_COUNTERS(READ_COUNTER)
#undef READ_COUNTER
    r->conns_made = (uint32_t)get_u64(v, "conns_made");
    r->conns_failed = (uint32_t)get_u64(v, "conns_failed");
    run->runs = get_u64(v, "runs");
    run->conns = get_u64(v, "conns");
    run->size = get_u64(v, "size");
    run->depth = get_u64(v, "depth");
    run->rate = get_u64(v, "rate");
    run->threads = get_u64(v, "threads");
    run->exchanges = get_u64(v, "exchanges");
    run->warmup_s = get_double(v, "warmup_s", NULL);
    run->seconds = get_double(v, "duration_s", NULL);
    run->start = get_double(v, "start_time", NULL);
    run->client_cpu_s = get_double(v, "client_cpu_s", NULL);
    run->udp = get_bool(v, "udp");
    run->tls = get_bool(v, "tls");
    char *server = get_string(v, "server");
    if (server != NULL)
        snprintf(run->server, sizeof(run->server), "%s", server);
    free(server);
    char *share = get_string(v, "share");
    if (share != NULL)
        snprintf(run->share, sizeof(run->share), "%s", share);
    free(share);
    char *first = get_string(v, "first_error");
    if (first != NULL)
        snprintf(r->first_error, sizeof(r->first_error), "%s: %.200s",
                 run->file, first);
    free(first);
    return 0;
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
    if (rc < 0)
        *why = rc == -ENOMEM  ? "out of memory"
               : rc == -E2BIG ? "more values than a bench result holds"
                              : "not JSON";
    struct result_view v = {.j = &j, .prefix = prefix};
    struct ek_bench_result *r = &run->r;
    if (rc == 0)
        rc = read_fields(run, &v, why);
    for (int i = 0; i < BENCH_HISTOGRAMS && rc == 0; i++)
        rc = read_hist(&v, bench_hist_names[i], bench_hist(r, i), why);
    if (rc == -ENOMEM)
        *why = "out of memory";
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
        for (int i = 0; i < BENCH_HISTOGRAMS; i++) {
            const struct ek_hist *h =
                ek_hdr_log_hist(&log, i ? bench_hist_names[i] : "");
            if (h != NULL)
                ek_hist_merge(bench_hist(&run->r, i), h);
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

/* Whether from's counts can be added to into's without passing 2^64
 * (histograms: 2^63, as HdrHistogram's are signed). */
static bool add_fits(const struct ek_bench_result *into,
                     const struct ek_bench_result *from)
{
#define FITS(f)                                                                \
    if (into->f > UINT64_MAX - from->f)                                        \
        return false;
    EK_BENCH_COUNTERS(FITS)
#undef FITS
    const struct ek_hist *a[] = {&into->latency, &into->connect_lat,
                                 &into->handshake_lat, &into->first_echo_lat};
    const struct ek_hist *b[] = {&from->latency, &from->connect_lat,
                                 &from->handshake_lat, &from->first_echo_lat};
    for (size_t i = 0; i < 4; i++)
        if (a[i]->count > (uint64_t)INT64_MAX - b[i]->count)
            return false;
    return true;
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
        if (!add_fits(&rp->r, &run->r)) {
            ek_warnx("bench merge: %s: its counts added to the others' pass "
                     "2^63",
                     run->file);
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

/* Runs made with --share I/N are parts of one load: a warning when the
 * parts given are not each of 0/N..(N-1)/N once, for then the merged
 * result is not the load the runs were given. */
static void check_shares(const struct run *runs, size_t n)
{
    size_t shared = 0;
    uint32_t count = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t part, of;
        const char *why;
        if (runs[i].share[0] == '\0')
            continue;
        if (bench_parse_share(runs[i].share, &part, &of, &why) < 0) {
            ek_warnx("bench merge: warning: %s: share \"%s\": %s", runs[i].file,
                     runs[i].share, why);
            return;
        }
        if (count != 0 && of != count) {
            ek_warnx("bench merge: warning: %s is share %s, another run's "
                     "are of %u: not parts of one load",
                     runs[i].file, runs[i].share, count);
            return;
        }
        count = of;
        shared++;
        for (size_t k = 0; k < i; k++)
            if (strcmp(runs[k].share, runs[i].share) == 0) {
                ek_warnx("bench merge: warning: share %s is given twice "
                         "(%s and %s)",
                         runs[i].share, runs[k].file, runs[i].file);
                return;
            }
    }
    if (shared > 0 && (shared != n || shared != count))
        ek_warnx("bench merge: warning: %zu of the %zu runs are shares of "
                 "%u: the merged load is not the whole of what they were "
                 "given",
                 shared, n, count);
}

/* The options, for getopt_long and for `echokit completion` (ek_cli.h). */
const struct option ek_bench_merge_options[] = {
    {"json", no_argument, NULL, 'j'},
    {"percentiles", no_argument, NULL, 'p'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};
const char ek_bench_merge_shortopts[] = ":h";

int ek_cmd_bench_merge(int argc, char **argv)
{
    struct bench_options o = {.json = false};
    bool percentiles = false;
    int c;
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, ek_bench_merge_shortopts,
                            ek_bench_merge_options, NULL)) != -1) {
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
    if (status == 0) {
        check_shares(runs, n);
        status = combine(runs, n, &o, rp);
    }
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
