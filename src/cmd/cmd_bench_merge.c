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
 * the common interval (the latest start to the earliest end) and how much
 * of the shortest run it is; runs that overlap for less than half of it
 * did not run together, and exit 1.
 *
 * Every result carries its run's id (random, bench_new_run_id), and a
 * merged one the ids of the runs it holds, so that a run given twice, on
 * its own or inside a merge, is seen and refused.
 *
 * The files may come from anywhere: every value is range-checked before
 * it is summed or cast, and what decoding histograms may cost is bounded
 * by the file's size (MERGE_WORDS_PER_BYTE), so that the worst file
 * accepted costs a few seconds of CPU.
 */
#include "cmd_bench.h"
#include "ek_hdr.h"
#include "ek_json.h"
#include "ek_log.h"
#include "ek_platform.h"
#include "ek_util.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: echokit bench merge [--json | --percentiles] [--allow-same-run]\n"
    "                           [--no-overlap-check] FILE...\n"
    "\n"
    "Add up bench runs made at the same time (from several hosts, say) into "
    "one\n"
    "report. Each FILE is the output of bench --json or --json-stream, or an\n"
    "HdrHistogram interval log (bench --hdr-log, or any tool's, in ns).\n"
    "\n"
    "  --json              print the merged result as bench --json does (it "
    "can be\n"
    "                      merged again)\n"
    "  --percentiles       print the latency's percentile spectrum instead, "
    "in\n"
    "                      HdrHistogram's format (us; what its plotters "
    "read)\n"
    "  --allow-same-run    merge a run given twice (the same run id) all the "
    "same\n"
    "  --no-overlap-check  exit 0 even when the runs overlap for less than "
    "half of\n"
    "                      the shortest\n"
    "  -h, --help          this text\n"
    "\n"
    "Counts and errors are summed and histograms added: percentiles are "
    "exact.\n"
    "Throughput is the runs' rates summed, their joint rate while they all "
    "ran;\n"
    "the report says how much of the shortest run they overlap, and warns "
    "below\n"
    "90%. A merge of HdrHistogram logs alone says \"not known\" for what "
    "logs do\n"
    "not carry (connections, bytes, errors; null in --json).\n"
    "Exit status: 0 merged, no errors in the runs; 1 merged, with errors, or "
    "runs\n"
    "that overlap for less than 50% of the shortest; 64 bad usage; 65 a FILE "
    "that\n"
    "is not a bench result or log (a value out of range, more than a file "
    "may\n"
    "hold), a run given twice, or runs of different modes; 66 a FILE that "
    "cannot\n"
    "be read.\n";

/* The largest file read: a result is a few KiB, a day's log some MiB. */
#define MERGE_FILE_MAX (256u << 20)

/* What the histograms of one file may cost to decode (ek_hdr_budget), in
 * proportion to its size: 2 words of counts a byte of its text (2 Mi at
 * least: one of the largest histograms, EK_HDR_WORDS_MAX; a real one that
 * dense is a MiB of text), 4 bytes inflated a byte (32 MiB at least). bench's
 * own logs hold 0.55 words a byte (measured on dense and sparse runs at 0.1 s
 * intervals), a few KiB crafted to inflate to millions of counts 800: so
 * decoding costs at most a few times what reading the file does. Measured here:
 * the worst file accepted, 256 MiB holding 2^29 words, takes 7 s (256 MiB of
 * the smallest intervals, 4 s); before the bound, 256 MiB of crafted lines took
 * 30 minutes. */
#define MERGE_WORDS_PER_BYTE 2
#define MERGE_WORDS_MIN EK_HDR_WORDS_MAX
#define MERGE_INFLATED_PER_BYTE 4
#define MERGE_INFLATED_MIN (32u << 20)
#define MERGE_FILE_PAST                                                        \
    "more counts than the file's size allows (2 a byte of it, or 2 Mi): "      \
    "real histograms are not that dense"

/* How many runs a merge may hold: the ids of more would not fit in what
 * the JSON reader reads back (65536 values, with room for the rest). */
#define MERGE_RUNS_MAX 60000

/* The ranges of a result's times, in seconds: what a run can have (bench
 * measures a day at most, and warms up an hour; a log of another tool may
 * span years), so that every sum and cast below stays exact. */
#define MERGE_SECONDS_MAX 1e9 /* 31 years */
#define MERGE_WARMUP_MAX 3600.0
#define MERGE_EPOCH_MAX 1e11 /* start times: year 5138 */
#define MERGE_CPU_MAX 9e12   /* client CPU seconds (in us: < 2^63) */

struct run {
    const char *file;
    bool unknown; /* an HdrHistogram log, or a merge of logs alone: no
                     connections, bytes or errors */
    struct ek_bench_result r;
    enum ek_bench_mode mode;
    bool udp, tls;
    uint64_t conns, size, depth, rate, threads, exchanges;
    double warmup_s, start, seconds, client_cpu_s;
    uint64_t runs;  /* 1, or what a merged result says it holds */
    double overlap; /* 1, or what a merged result says of its runs */
    char server[EK_ADDRSTR_MAX];
    char share[24];                 /* its --share "I/N", or "" */
    char (*ids)[BENCH_RUN_ID_SIZE]; /* the run ids it holds, malloc'd */
    size_t nids;
};

/* Whether id is a run id: 32 lowercase hex digits. */
static bool run_id_valid(const char *id)
{
    size_t n = strspn(id, "0123456789abcdef");
    return n == BENCH_RUN_ID_SIZE - 1 && id[n] == '\0';
}

void bench_new_run_id(char id[BENCH_RUN_ID_SIZE])
{
    uint64_t bytes[2];
    if (ek_random_bytes(bytes, sizeof(bytes)) < 0) {
        /* Not secret, only unique: the time, the process, a count. */
        static uint64_t made;
        uint64_t key[2] = {(uint64_t)ek_now_ns(), (uint64_t)getpid()};
        uint64_t n = ++made;
        bytes[0] = ek_siphash(&n, sizeof(n), key);
        key[0] ^= 0x9e3779b97f4a7c15ULL;
        bytes[1] = ek_siphash(&n, sizeof(n), key);
    }
    const uint8_t *b = (const uint8_t *)bytes;
    for (size_t i = 0; i < sizeof(bytes); i++)
        snprintf(id + 2 * i, 3, "%02x", b[i]);
}

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

static bool is_null(const struct ek_json_field *f)
{
    return f->len == 4 && memcmp(f->value, "null", 4) == 0;
}

/* What a field of a file was refused for: "name" and why, in a static
 * buffer (one file is read at a time). */
static const char *bad_field(const struct result_view *v, const char *name,
                             const char *what)
{
    static char text[160];
    snprintf(text, sizeof(text), "\"%s%s\": %s", v->prefix, name, what);
    return text;
}

/* The whole number at name, at most max, into *n (0 when missing or
 * null). Returns false, with *why, for anything else: a fraction, a
 * negative or larger number, a string. */
static bool read_count(const struct result_view *v, const char *name,
                       uint64_t max, uint64_t *n, const char **why)
{
    char path[64];
    const struct ek_json_field *f =
        ek_json_get(v->j, path_of(v, name, path, sizeof(path)));
    *n = 0;
    if (f == NULL || is_null(f))
        return true;
    if (!ek_json_u64(v->j, path, n) || *n > max) {
        *why = bad_field(v, name,
                         max == UINT64_MAX
                             ? "not a whole number from 0 to 2^64 - 1"
                             : "not a whole number in the range "
                               "bench writes");
        return false;
    }
    return true;
}

/* The number at name, from 0 to max, into *x (dflt when missing or
 * null). Returns false, with *why, for anything else. */
static bool read_range(const struct result_view *v, const char *name,
                       double max, double dflt, double *x, const char **why)
{
    char path[64];
    const struct ek_json_field *f =
        ek_json_get(v->j, path_of(v, name, path, sizeof(path)));
    *x = dflt;
    if (f == NULL || is_null(f))
        return true;
    if (!ek_json_double(v->j, path, x) || !(*x >= 0 && *x <= max)) {
        *why = bad_field(v, name, "not a number in the range a run can have");
        return false;
    }
    return true;
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
 * and mean from "NAME_us.min" etc. (microseconds to the nanosecond), when
 * they agree with each other. */
static int read_hist(const struct result_view *v, const char *name,
                     struct ek_hist *h, struct ek_hdr_budget *budget,
                     const char **why)
{
    char key[40], us_name[24]; /* "first_echo_us.mean" at most */
    snprintf(us_name, sizeof(us_name), "%s_us", name);
    snprintf(key, sizeof(key), "hdr.%s", name);
    char *text = get_string(v, key);
    if (text == NULL)
        return has(v, key) ? -ENOMEM : 0; /* else: not in this mode */
    int rc = ek_hdr_decode_add(text, strlen(text), h, budget, why);
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
    /* 9.2e15 us: 2^63 ns, the most a value can be. */
    if (exact && min >= 0 && max >= min && max < 9.2e15 && mean >= min &&
        mean <= max) {
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

/* Adds id to the run's ids. Returns 0, or -EINVAL / -ENOMEM with *why. */
static int add_id(struct run *run, const char *id, const char **why)
{
    if (!run_id_valid(id)) {
        *why = "a run id that is not 32 lowercase hex digits";
        return -EINVAL;
    }
    if (run->nids == MERGE_RUNS_MAX) {
        *why = "more than 60000 run ids";
        return -EINVAL;
    }
    void *more = realloc(run->ids, (run->nids + 1) * sizeof(run->ids[0]));
    if (more == NULL) {
        *why = "out of memory";
        return -ENOMEM;
    }
    run->ids = more;
    memcpy(run->ids[run->nids++], id, BENCH_RUN_ID_SIZE);
    return 0;
}

/* The run ids a result holds: "run_id" (one run's) or "run_ids" (a
 * merge's), each a string; none in results from before run ids. */
static int read_ids(struct run *run, const struct result_view *v,
                    const char **why)
{
    char one[64], many[64];
    size_t many_len = strlen(path_of(v, "run_ids.", many, sizeof(many)));
    path_of(v, "run_id", one, sizeof(one));
    int rc = 0;
    for (size_t i = 0; i < v->j->n && rc == 0; i++) {
        const struct ek_json_field *f = &v->j->fields[i];
        if (strcmp(f->path, one) != 0 &&
            (strncmp(f->path, many, many_len) != 0 ||
             f->path[many_len + strspn(f->path + many_len, "0123456789")] !=
                 '\0'))
            continue;
        char *id = ek_json_string(v->j, f->path);
        if (id == NULL && f->value[0] == '"') {
            *why = "out of memory";
            return -ENOMEM;
        }
        rc = add_id(run, id != NULL ? id : "", why);
        free(id);
    }
    return rc;
}

/* What the result says besides its histograms, each value checked: one
 * out of the range bench writes makes the file no bench result. */
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
    uint64_t made = 0, failed = 0;
    bool ok = true;
#define READ_COUNTER(f) ok = ok && read_count(v, #f, UINT64_MAX, &r->f, why);
    EK_BENCH_COUNTERS(READ_COUNTER)
#undef READ_COUNTER
    /* bench's own limits where a merge keeps one run's value; sums (conns,
     * threads, rate, runs) are checked as they are added. */
    ok =
        ok && read_count(v, "conns_made", UINT32_MAX, &made, why) &&
        read_count(v, "conns_failed", UINT32_MAX, &failed, why) &&
        read_count(v, "runs", MERGE_RUNS_MAX, &run->runs, why) &&
        read_count(v, "conns", UINT64_MAX, &run->conns, why) &&
        read_count(v, "size", 1u << 30, &run->size, why) &&
        read_count(v, "depth", 1u << 20, &run->depth, why) &&
        read_count(v, "rate", UINT64_MAX, &run->rate, why) &&
        read_count(v, "threads", UINT64_MAX, &run->threads, why) &&
        read_count(v, "exchanges", 1000000, &run->exchanges, why) &&
        read_range(v, "warmup_s", MERGE_WARMUP_MAX, 0, &run->warmup_s, why) &&
        read_range(v, "duration_s", MERGE_SECONDS_MAX, 0, &run->seconds, why) &&
        read_range(v, "start_time", MERGE_EPOCH_MAX, 0, &run->start, why) &&
        read_range(v, "client_cpu_s", MERGE_CPU_MAX, 0, &run->client_cpu_s,
                   why) &&
        read_range(v, "overlap", 1, 1, &run->overlap, why);
    if (!ok)
        return -EINVAL;
    r->conns_made = (uint32_t)made;
    r->conns_failed = (uint32_t)failed;
    /* A merge of logs alone writes null where logs carry nothing. */
    const struct ek_json_field *errors = NULL;
    char path[64];
    errors = ek_json_get(v->j, path_of(v, "errors", path, sizeof(path)));
    run->unknown = errors != NULL && is_null(errors);
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
    /* A merge may hold runs without ids (from before them), never more
     * ids than runs. */
    int rc = read_ids(run, v, why);
    if (rc == 0 && run->nids > (run->runs > 0 ? run->runs : 1)) {
        *why = "more run ids than runs";
        rc = -EINVAL;
    }
    return rc;
}

static int read_json(struct run *run, char *text, struct ek_hdr_budget *budget,
                     const char **why)
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
    if (rc == -E2BIG) {
        *why = "more values than a bench result holds (65536)";
        rc = -EINVAL;
    } else if (rc < 0) {
        *why = rc == -ENOMEM ? "out of memory" : "not JSON";
    }
    struct result_view v = {.j = &j, .prefix = prefix};
    struct ek_bench_result *r = &run->r;
    if (rc == 0)
        rc = read_fields(run, &v, why);
    for (int i = 0; i < BENCH_HISTOGRAMS && rc == 0; i++)
        rc = read_hist(&v, bench_hist_names[i], bench_hist(r, i), budget, why);
    if (rc == -ENOMEM)
        *why = "out of memory";
    if (rc == -E2BIG) {
        *why = MERGE_FILE_PAST;
        rc = -EINVAL;
    }
    ek_json_free(&j);
    return rc;
}

/* ---- HdrHistogram logs ---------------------------------------------- */

static int read_log(struct run *run, char *text, size_t len,
                    struct ek_hdr_budget *budget, const char **why)
{
    FILE *f = fmemopen(text, len, "r");
    if (f == NULL)
        return -errno;
    struct ek_hdr_log log;
    size_t line;
    int rc = ek_hdr_log_read(f, &log, budget, why, &line);
    fclose(f);
    if (rc == 0) {
        for (int i = 0; i < BENCH_HISTOGRAMS; i++) {
            const struct ek_hist *h =
                ek_hdr_log_hist(&log, i ? bench_hist_names[i] : "");
            if (h != NULL)
                ek_hist_merge(bench_hist(&run->r, i), h);
        }
        run->unknown = true;
        run->overlap = 1;
        run->mode = ek_hdr_log_hist(&log, "connect") != NULL ? EK_BENCH_CONNECT
                                                             : EK_BENCH_RR;
        run->r.msgs = run->r.latency.count;
        run->r.conns_done = run->r.first_echo_lat.count;
        run->start = log.first_s;
        run->seconds = log.last_s - log.first_s;
        /* Its times are any numbers the file wrote: the same ranges as a
         * result's. */
        if (!(run->start >= 0 && run->start <= MERGE_EPOCH_MAX &&
              run->seconds >= 0 && run->seconds <= MERGE_SECONDS_MAX)) {
            *why = "interval times out of the range a run can have";
            rc = -EINVAL;
        } else if (log.run_id[0] != '\0') {
            rc = add_id(run, log.run_id, why);
        }
    } else if (rc == -EINVAL || rc == -E2BIG) {
        static char where[160];
        snprintf(where, sizeof(where), "line %zu: %s", line,
                 rc == -E2BIG ? MERGE_FILE_PAST : *why);
        *why = where;
        rc = -EINVAL;
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
    if (text == NULL && errno == EFBIG) {
        ek_warnx("bench merge: %s: larger than 256 MiB: not a bench result "
                 "or log (a day's log is a few MiB)",
                 run->file);
        return EX_DATAERR;
    }
    if (text == NULL) {
        ek_warnx("bench merge: %s: %s", run->file, strerror(errno));
        return EX_NOINPUT;
    }
    if (len == 0) {
        ek_warnx("bench merge: %s: empty", run->file);
        free(text);
        return EX_DATAERR;
    }
    struct ek_hdr_budget budget = {
        .words = (uint64_t)len * MERGE_WORDS_PER_BYTE,
        .bytes = (uint64_t)len * MERGE_INFLATED_PER_BYTE};
    if (budget.words < MERGE_WORDS_MIN)
        budget.words = MERGE_WORDS_MIN;
    if (budget.bytes < MERGE_INFLATED_MIN)
        budget.bytes = MERGE_INFLATED_MIN;
    bool json = text[strspn(text, " \t\r\n")] == '{';
    int rc = json ? read_json(run, text, &budget, &why)
                  : read_log(run, text, len, &budget, &why);
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
 * (connections: 2^32; histograms: 2^63, as HdrHistogram's are signed). */
static bool add_fits(const struct ek_bench_result *into,
                     const struct ek_bench_result *from)
{
#define FITS(f)                                                                \
    if (into->f > UINT64_MAX - from->f)                                        \
        return false;
    EK_BENCH_COUNTERS(FITS)
#undef FITS
    if (into->conns_made > UINT32_MAX - from->conns_made ||
        into->conns_failed > UINT32_MAX - from->conns_failed)
        return false;
    for (int i = 0; i < BENCH_HISTOGRAMS; i++)
        if (bench_hist_of(into, i)->count >
            (uint64_t)INT64_MAX - bench_hist_of(from, i)->count)
            return false;
    return true;
}

/* *sum += v, unless that passes 2^64. */
static bool add_u64(uint64_t *sum, uint64_t v)
{
    if (*sum > UINT64_MAX - v)
        return false;
    *sum += v;
    return true;
}

/* A run id with the run that holds it, for finding one given twice. */
struct id_ref {
    const char *id;
    size_t run;
};

static int by_id(const void *a, const void *b)
{
    const struct id_ref *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c != 0 ? c : x->run < y->run ? -1 : x->run > y->run;
}

/* Whether two of the runs hold the same run (by id; results from before
 * run ids, and other tools' logs, cannot tell). Returns 0, 65 after
 * saying which, or 71 when out of memory. A merged result may hold one
 * run twice itself: someone allowed it when it was made. */
static int check_same_runs(const struct run *runs, size_t n, size_t ids)
{
    struct id_ref *all = malloc((ids ? ids : 1) * sizeof(*all));
    if (all == NULL) {
        ek_warnx("bench merge: out of memory");
        return EX_OSERR;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < runs[i].nids; j++)
            all[k++] = (struct id_ref){.id = runs[i].ids[j], .run = i};
    qsort(all, k, sizeof(*all), by_id);
    int status = 0;
    for (size_t i = 1; i < k && status == 0; i++)
        if (strcmp(all[i].id, all[i - 1].id) == 0 &&
            all[i].run != all[i - 1].run) {
            const struct run *a = &runs[all[i - 1].run], *b = &runs[all[i].run];
            ek_warnx("bench merge: %s and %s hold the same run (run id %s%s): "
                     "merged, it would count twice; --allow-same-run to "
                     "merge it all the same",
                     a->file, b->file, all[i].id,
                     a->nids > 1 || b->nids > 1 ? ", inside a merged result"
                                                : "");
            status = EX_DATAERR;
        }
    free(all);
    return status;
}

/* The runs as one report in rp (and its options in o); prints what the
 * reader should know about how they fit together. Returns 0 or 65. */
static int combine(struct run *runs, size_t n, struct bench_options *o,
                   struct report *rp)
{
    const struct run *first = &runs[0], *ref = first;
    for (size_t i = 0; i < n && ref->unknown; i++)
        ref = &runs[i]; /* the first that knows its options, if any */
    double latest_start = first->start,
           earliest_end = first->start + first->seconds;
    double shortest = first->seconds, longest = 0, rate = 0, cpu_s = 0,
           inner = 1;
    const struct run *apart = NULL; /* the merge that holds runs apart */
    size_t unknown = 0, without_id = 0;
    uint64_t count = 0;
    ek_bench_result_reset(&rp->r);
    o->mode = first->mode;
    o->size = ref->size;
    o->depth = ref->depth;
    o->exchanges = ref->exchanges;
    o->warmup_ms = (int64_t)(ref->warmup_s * 1000); /* <= 3600 s */
    rp->peer = ref->server[0] != '\0' ? ref->server : "(unknown)";
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
        if (!add_u64(&o->conns, run->conns) ||
            !add_u64(&o->threads, run->threads) ||
            !add_u64(&o->rate, run->rate) ||
            !add_u64(&count, run->runs > 0 ? run->runs : 1) ||
            count > MERGE_RUNS_MAX) {
            ek_warnx("bench merge: %s: its connections, threads, rate or "
                     "runs added to the others' pass what a result holds",
                     run->file);
            return EX_DATAERR;
        }
        ek_bench_result_add(&rp->r, &run->r);
        o->udp |= run->udp;
        o->tls_on |= run->tls;
        /* Runs with --timestamps bring the kernel's round trip. */
        o->timestamps |= run->r.kernel_rtt.count > 0;
        cpu_s += run->client_cpu_s;
        unknown += run->unknown;
        without_id += run->nids == 0;
        if (!run->unknown && run->size != o->size)
            ek_warnx("bench merge: note: %s sends %llu B messages, %s %llu B",
                     ref->file, (unsigned long long)o->size, run->file,
                     (unsigned long long)run->size);
        if (!run->unknown && strcmp(run->server, ref->server) != 0)
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
        if (run->seconds > longest)
            longest = run->seconds;
        if (run->overlap < inner) {
            inner = run->overlap;
            apart = run;
        }
    }
    if (cpu_s > MERGE_CPU_MAX) {
        ek_warnx("bench merge: the runs' client CPU times add up past %.0e "
                 "s: not results bench wrote",
                 MERGE_CPU_MAX);
        return EX_DATAERR;
    }
    double common = earliest_end - latest_start;
    rp->overlap = shortest > 0  ? fmax(0, fmin(1, common / shortest))
                  : common >= 0 ? 1
                                : 0;
    if (common <= 0 && n > 1)
        ek_warnx("bench merge: warning: the runs do not overlap in time; "
                 "their rates are summed as if they had run together");
    else if (rp->overlap < 0.9)
        ek_warnx("bench merge: warning: the runs overlap for %.2f s only, "
                 "%.0f%% of %.2f s (the shortest): the summed rate holds for "
                 "that time",
                 common, 100 * rp->overlap, shortest);
    if (apart != NULL && inner < 0.9)
        ek_warnx("bench merge: warning: %s is a merge of runs that overlap "
                 "for %.0f%% of the shortest only",
                 apart->file, 100 * inner);
    if (inner < rp->overlap)
        rp->overlap = inner; /* the least of all the runs held */
    if (unknown > 0)
        ek_warnx("bench merge: note: %zu of the %zu inputs are HdrHistogram "
                 "logs (or merges of logs alone), which carry no errors, "
                 "bytes or connections%s",
                 unknown, n,
                 unknown == n ? ": those are not known"
                              : ": the sums are the other inputs'");
    if (without_id > 0)
        ek_warnx("bench merge: note: %zu of the %zu inputs carry no run id "
                 "(another tool's logs, or results of an echokit before run "
                 "ids): a run given twice among them is not seen",
                 without_id, n);
    /* The seconds that make count / seconds the summed rate (the window,
     * when the runs were one window). */
    uint64_t units =
        o->mode == EK_BENCH_CONNECT ? rp->r.conns_done : rp->r.msgs;
    rp->seconds = rate > 0 ? (double)units / rate : shortest;
    /* A run of 0 s counts its units but adds no rate: with one, units /
     * rate can pass every run (2^63 ms: the cast below is undefined). The
     * window is never longer than the longest run. */
    if (rp->seconds > longest)
        rp->seconds = longest;
    if (rp->seconds <= 0)
        rp->seconds = 1e-9;
    /* At most the longest run: 1e9 s, so the cast holds. */
    o->duration_ms = (int64_t)(rp->seconds * 1000);
    rp->start_time = latest_start;
    rp->after.client_us = (long long)llround(cpu_s * 1e6); /* < 2^63 */
    rp->common_s = common > 0 ? common : 0;
    rp->runs = count;
    rp->log_only = unknown == n;
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

#define OPT_ALLOW_SAME_RUN 1000
#define OPT_NO_OVERLAP_CHECK 1001

/* The options, for getopt_long and for `echokit completion` (ek_cli.h). */
const struct option ek_bench_merge_options[] = {
    {"json", no_argument, NULL, 'j'},
    {"percentiles", no_argument, NULL, 'p'},
    {"allow-same-run", no_argument, NULL, OPT_ALLOW_SAME_RUN},
    {"no-overlap-check", no_argument, NULL, OPT_NO_OVERLAP_CHECK},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};
const char ek_bench_merge_shortopts[] = ":h";

/* Below this share of the shortest run in common, the runs did not run
 * together: their summed rate is no load that was offered. */
#define MERGE_OVERLAP_MIN 0.5

int ek_cmd_bench_merge(int argc, char **argv)
{
    struct bench_options o = {.json = false};
    bool percentiles = false, allow_same = false, overlap_check = true;
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
        else if (c == OPT_ALLOW_SAME_RUN)
            allow_same = true;
        else if (c == OPT_NO_OVERLAP_CHECK)
            overlap_check = false;
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
    size_t ids = 0, read = 0;
    for (; read < n && status == 0; read++) {
        runs[read].file = argv[optind + (int)read];
        ek_bench_result_reset(&runs[read].r);
        status = read_run(&runs[read]);
        ids += runs[read].nids;
    }
    if (status == 0 && ids > MERGE_RUNS_MAX) {
        ek_warnx("bench merge: more than %d runs in all: a result of them "
                 "could not be read back",
                 MERGE_RUNS_MAX);
        status = EX_DATAERR;
    }
    if (status == 0 && !allow_same)
        status = check_same_runs(runs, n, ids);
    char(*all_ids)[BENCH_RUN_ID_SIZE] = NULL;
    if (status == 0 && ids > 0 &&
        (all_ids = malloc(ids * sizeof(*all_ids))) == NULL) {
        ek_warnx("bench merge: out of memory");
        status = EX_OSERR;
    }
    if (status == 0) {
        check_shares(runs, n);
        status = combine(runs, n, &o, rp);
    }
    bool apart = false;
    if (status == 0) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < runs[i].nids; j++)
                memcpy(all_ids[k++], runs[i].ids[j], BENCH_RUN_ID_SIZE);
        rp->run_ids = (const char(*)[BENCH_RUN_ID_SIZE])all_ids;
        rp->nrun_ids = ids;
        rp->o = &o;
        rp->rss_kb = rp->pss_kb = -1;
        apart = rp->runs > 1 && rp->overlap < MERGE_OVERLAP_MIN;
        if (percentiles) {
            bench_print_percentiles(&rp->r.latency);
        } else if (o.json) {
            bench_print_json(rp);
            printf("\n");
        } else {
            printf("echokit bench merge: %zu run%s, %.2f s in common (%.0f%% "
                   "of the shortest)\n",
                   rp->runs, rp->runs == 1 ? "" : "s", rp->common_s,
                   100 * rp->overlap);
            bench_print_text(rp);
        }
        fflush(stdout);
        status = bench_errors_of(&rp->r) > 0 ? 1 : 0;
    }
    if (apart && overlap_check) {
        ek_warnx("bench merge: the runs overlap for %.0f%% of the shortest "
                 "only, under %.0f%%: they did not run together "
                 "(--no-overlap-check to accept it)",
                 100 * rp->overlap, 100 * MERGE_OVERLAP_MIN);
        status = 1;
    }
    for (size_t i = 0; i < read; i++)
        free(runs[i].ids);
    free(all_ids);
    free(runs);
    free(rp);
    return status;
}
