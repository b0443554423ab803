/*
 * itest_bench: what network engineers take from bench: the client socket
 * options (seen from outside: by the server's log and by nftables
 * counters), the intervals (-i, --json-stream, --hdr-log, the last read
 * back by HdrHistogram's own Java library) and `bench merge` of runs made
 * at the same time.
 */
#include "check.h"
#include "hdr_crafted.h"
#include "ek_config.h"
#include "ek_hdr.h"
#include "ek_json.h"
#include "itest.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

/* What --bind-dev, --mark and --cc exit with when they work: 0, but 69
 * in a build without Linux's extensions, which refuses them (they are
 * Linux's alone). */
#ifdef EK_PORTABLE_BUILD
#define LINUX_OPTION_WORKS EX_UNAVAILABLE
#else
#define LINUX_OPTION_WORKS 0
#endif

/* How many times text occurs in hay. */
static int count_of(const char *hay, const char *text)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, text)) != NULL; p++)
        n++;
    return n;
}

/* The server's log, once it shows n connections closed. */
static const char *log_after_closes(struct h_server *s, int n)
{
    int64_t deadline = h_now_ms() + 5000;
    while (count_of(h_server_log(s), "connection closed") < n &&
           h_now_ms() < deadline)
        h_sleep_ms(20);
    return h_server_log(s);
}

/* --source spreads connections round robin over its pool (the server
 * sees each address), --bind-dev leaves by the device named, and every
 * bad value or refusal is said with its exit status. */
void case_bench_source(void)
{
    own_network(NULL); /* every 127.0.0.0/8 address is ours, nobody else's */
    struct h_server s;
    const char *args[] = {"--listen", "127.0.0.1:0", "-v", NULL};
    CHECK_INT(h_server_start(&s, NULL, args, 1, 0), ==, 0);
    const char *a = s.addrs[0];
    struct h_run r;

    /* 8 connections over 4 addresses, after bench's first probe
     * connection (the pool's first address). */
    const char *pool[] = {"bench", "-c",       "8",
                          "-t",    "0.3",      "-w",
                          "0",     "--source", "127.0.0.2-127.0.0.5",
                          a,       NULL};
    CHECK_INT(h_run_echokit(pool, -1, 30000, &r), ==, 0);
    const char *log = log_after_closes(&s, 9);
    int per[4];
    for (int i = 0; i < 4; i++) {
        char from[64];
        snprintf(from, sizeof(from), "connection from 127.0.0.%d:", i + 2);
        per[i] = count_of(log, from);
    }
    printf("--source 127.0.0.2-127.0.0.5, 8 connections and the probe: "
           "%d %d %d %d\n",
           per[0], per[1], per[2], per[3]);
    CHECK(per[0] == 3 && per[1] == 2 && per[2] == 2 && per[3] == 2);
    CHECK(strstr(log, "connection from 127.0.0.1:") == NULL);
    CHECK(strstr(log, "connection from 127.0.0.6:") == NULL);

    /* connect mode, two threads, a CIDR pool (/30: .9 and .10, not the
     * network .8 nor the broadcast .11), shared evenly: 150 connections
     * (at 500/s, so that the server's 64 KiB log holds every one). */
    const char *many[] = {"bench",  "-m", "connect", "-r",       "500",
                          "-c",     "4",  "-t",      "0.3",      "-w",
                          "0",      "-T", "2",       "--source", "127.0.0.8/30",
                          "--json", a,    NULL};
    CHECK_INT(h_run_echokit(many, -1, 30000, &r), ==, 0);
    double done;
    CHECK(h_json_number(r.out, "conns_done", &done) && done > 100);
    log = log_after_closes(&s, 9 + 1 + (int)done);
    int nine = count_of(log, "connection from 127.0.0.9:");
    int ten = count_of(log, "connection from 127.0.0.10:");
    printf("--source 127.0.0.8/30, %.0f connections in the window: .9 %d, "
           ".10 %d\n",
           done, nine, ten);
    CHECK(count_of(log, "connection from 127.0.0.8:") == 0);
    CHECK(count_of(log, "connection from 127.0.0.11:") == 0);
    CHECK(nine + ten >= (int)done + 1 && abs(nine - ten) <= 3);

    /* --bind-dev: lo carries it; a device that does not exist is
     * refused before any connection. */
    const char *dev[] = {"send", "--bind-dev", "lo", a, "hello", NULL};
    CHECK_INT(h_run_echokit(dev, -1, 10000, &r), ==, LINUX_OPTION_WORKS);
    CHECK_CONTAINS(LINUX_OPTION_WORKS ? r.err : r.out,
                   LINUX_OPTION_WORKS ? "Linux's extensions" : "hello");
    const char *nodev[] = {"send", "--bind-dev", "nosuch0", a, "x", NULL};
    CHECK_INT(h_run_echokit(nodev, -1, 10000, &r), ==, 64);
    CHECK_CONTAINS(r.err, "no such network interface");

    /* The kernel's refusals, named (71). */
    const char *foreign[] = {"ping",      "-c", "1", "--source",
                             "192.0.2.1", a,    NULL};
    CHECK_INT(h_run_echokit(foreign, -1, 10000, &r), ==, 71);
    CHECK_CONTAINS(r.err, "192.0.2.1 is not an address of this host");
    const char *cc[] = {"bench", "--cc", "nosuchcc", "-t", "0.1", a, NULL};
    CHECK_INT(h_run_echokit(cc, -1, 10000, &r), ==,
              LINUX_OPTION_WORKS ? LINUX_OPTION_WORKS : EX_OSERR);
    if (!LINUX_OPTION_WORKS) {
        CHECK_CONTAINS(r.err, "--cc: the kernel refused it");
        CHECK_CONTAINS(r.err, "loaded here: ");
    }
    /* --cc reno is always there (built in); the echo goes on. */
    const char *reno[] = {"send", "--cc", "reno", "--mss",
                          "1000", a,      "ok",   NULL};
    CHECK_INT(h_run_echokit(reno, -1, 10000, &r), ==, LINUX_OPTION_WORKS);

    /* Bad values and misfits (64). */
    const char *const bad[][8] = {
        {"send", "--source", "::1", a, "x"}, /* IPv6 to IPv4 */
        {"send", "--source", "127.0.0.5-127.0.0.2", a, "x"},
        {"send", "--source", "10.0.0.1/8", a, "x"}, /* host bits */
        {"send", "--tos", "256", a, "x"},
        {"send", "--dscp", "af44", a, "x"},
        {"send", "--tos", "8", "--dscp", "ef", a, "x"},
        {"send", "--mark", "-1", a, "x"},
        {"send", "--mss", "20", a, "x"},
        {"send", "--mss", "40000", a, "x"}, /* past Linux's 32767 */
        {"send", "--cc", "no such", a, "x"},
        {"send", "--udp", "--cc", "reno", a, "x"},
        {"send", "--tos", "8", "unix:/nonexistent", "x"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_INT(h_run_echokit(bad[i], -1, 10000, &r), ==, 64);
        CHECK_CONTAINS(r.err, "Try 'echokit send --help'");
    }
    stop_ok(&s);
}

/* Runs cmd (a shell command line; the test's own, made of fixed text and
 * numbers) and returns its output in buf; false when it failed. */
static bool shell(const char *cmd, char *buf, size_t size)
{
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return false;
    size_t n = fread(buf, 1, size - 1, p);
    buf[n] = '\0';
    return pclose(p) == 0;
}

/* The packets nftables counted under the rule commented `name`. */
static long nft_packets(const char *name)
{
    static char out[16384];
    CHECK(shell("nft list table inet ektest 2>&1", out, sizeof(out)));
    char tag[64];
    snprintf(tag, sizeof(tag), "comment \"%s\"", name);
    const char *rule = strstr(out, tag);
    CHECK(rule != NULL);
    /* "... counter packets N bytes M comment "name"": back to its line. */
    const char *line = rule;
    while (line > out && line[-1] != '\n')
        line--;
    const char *packets = strstr(line, "packets ");
    CHECK(packets != NULL && packets < rule);
    return atol(packets + 8);
}

/* --tos/--dscp and --mark as the network sees them: nftables counts the
 * packets whose DSCP and fwmark are what the option said, in a network
 * namespace of the test's own; a run without the option first shows that
 * those counters could stay at zero. */
void case_client_marks(void)
{
    own_network(NULL);
    char out[4096];
    if (!shell("nft add table inet ektest 2>&1", out, sizeof(out)))
        SKIP("nftables cannot be used here (%s): no nf_tables in this kernel, "
             "or no nft command (Debian: nftables)",
             strtok(out, "\n") ? out : "no output");
    struct h_server s;
    const char *args[] = {"--listen", "127.0.0.1:0",     "--listen", "[::1]:0",
                          "--listen", "udp:127.0.0.1:0", NULL};
    CHECK_INT(h_server_start(&s, NULL, args, 3, 0), ==, 0);
    unsigned port = (unsigned)atoi(strrchr(s.addrs[0], ':') + 1);
    unsigned port6 = (unsigned)atoi(strrchr(s.addrs[1], ':') + 1);
    unsigned uport = (unsigned)atoi(strrchr(s.addrs[2], ':') + 1);
    char rules[2048];
    snprintf(rules, sizeof(rules),
             "nft add chain inet ektest out '{ type filter hook output "
             "priority 0; }' && "
             "nft add rule inet ektest out tcp dport %u counter comment "
             "'\"all\"' && "
             "nft add rule inet ektest out tcp dport %u ip dscp ef counter "
             "comment '\"ef\"' && "
             "nft add rule inet ektest out tcp dport %u meta mark 42 counter "
             "comment '\"mark\"' && "
             "nft add rule inet ektest out udp dport %u ip dscp af41 counter "
             "comment '\"af41\"' && "
             "nft add rule inet ektest out tcp dport %u ip6 dscp cs1 counter "
             "comment '\"cs1v6\"' 2>&1",
             port, port, port, uport, port6);
    CHECK(shell(rules, out, sizeof(out)));
    struct h_run r;

    /* Without the options: traffic, but no DSCP EF and no mark. */
    const char *plain[] = {"bench", "-c", "2",        "-t", "0.2",
                           "-w",    "0",  s.addrs[0], NULL};
    CHECK_INT(h_run_echokit(plain, -1, 10000, &r), ==, 0);
    CHECK(nft_packets("all") > 10);
    CHECK_INT(nft_packets("ef"), ==, 0);
    CHECK_INT(nft_packets("mark"), ==, 0);

    const char *ef[] = {"send", "--dscp", "ef", s.addrs[0], "expedited", NULL};
    CHECK_INT(h_run_echokit(ef, -1, 10000, &r), ==, 0);
    long n_ef = nft_packets("ef");
    CHECK(n_ef >= 3); /* the SYN, the data, the FIN at least */
    const char *mark[] = {"bench", "--mark", "42", "-c",     "2",        "-t",
                          "0.2",   "-w",     "0",  "--json", s.addrs[0], NULL};
    CHECK_INT(h_run_echokit(mark, -1, 10000, &r), ==, LINUX_OPTION_WORKS);
    double msgs = 0;
    long n_mark = nft_packets("mark");
    if (!LINUX_OPTION_WORKS) {
        CHECK(h_json_number(r.out, "msgs", &msgs));
        CHECK(n_mark >= (long)msgs); /* a segment per message at least */
    }
    CHECK_INT(nft_packets("ef"), ==, n_ef); /* bench set no DSCP */

    const char *udp[] = {
        "ping", "--tos", "136",      "-c", "3",
        "-i",   "0.05",  s.addrs[2], NULL}; /* TOS 0x88: DSCP 34, AF41 */
    CHECK_INT(h_run_echokit(udp, -1, 10000, &r), ==, 0);
    CHECK_INT(nft_packets("af41"), ==, 3);

    const char *v6[] = {"send", "--dscp", "cs1", s.addrs[1], "class", NULL};
    CHECK_INT(h_run_echokit(v6, -1, 10000, &r), ==, 0);
    CHECK(nft_packets("cs1v6") >= 3);
    printf("nftables counted: %ld packets with DSCP EF, %ld with mark 42 "
           "(%.0f messages), 3 UDP with AF41, IPv6 CS1 too\n",
           n_ef, n_mark, msgs);
    stop_ok(&s);
}

/* ---- intervals, HdrHistogram logs, merge ----------------------------- */

/* Where HdrHistogram's Java library is, or a SKIP saying what is missing
 * (CI installs both: default-jdk-headless, libhdrhistogram-java). */
static const char *hdrhistogram_jar(void)
{
    static const char jar[] = "/usr/share/java/hdrhistogram.jar";
    char out[256];
    if (access(jar, R_OK) != 0)
        SKIP("no %s (Debian: libhdrhistogram-java), the independent "
             "HdrHistogram reader",
             jar);
    if (!shell("javac -version 2>&1", out, sizeof(out)))
        SKIP("no javac (Debian: default-jdk-headless) to run "
             "tests/hdr/HdrCheck.java");
    return jar;
}

/* What HdrHistogram's Java library makes of the logs: the total count and
 * the bucket range of p50 and p99 (ns). */
struct java_view {
    unsigned long long count, p50[2], p99[2];
};

static void java_read(const char *logs, struct java_view *v)
{
    char cmd[1024], out[1024];
    snprintf(cmd, sizeof(cmd),
             "java -cp %s %s/tests/hdr/HdrCheck.java %s -- 50 99 2>&1",
             hdrhistogram_jar(), EK_SOURCE_DIR, logs);
    bool ok = shell(cmd, out, sizeof(out));
    if (!ok)
        fprintf(stderr, "%s\n%s\n", cmd, out);
    CHECK(ok);
    CHECK(sscanf(out, "count %llu\np50 %llu %llu\np99 %llu %llu", &v->count,
                 &v->p50[0], &v->p50[1], &v->p99[0], &v->p99[1]) == 5);
}

/* Whether ours (a bucket's midpoint, in us from the JSON) lies in the
 * bucket Java found, give or take the next bucket (the two round the
 * rank differently): within 1% of its range. */
static bool same_bucket(double ours_us, const unsigned long long range[2])
{
    double ns = ours_us * 1e3;
    return ns >= (double)range[0] * 0.99 && ns <= (double)range[1] * 1.01;
}

static double json_at(const struct ek_json *j, const char *path)
{
    double v = -1;
    CHECK(ek_json_double(j, path, &v));
    return v;
}

/* -i lines, --json-stream and --hdr-log cut the window into intervals
 * that add up to the summary exactly; the log reads back in HdrHistogram's
 * own library with the same count and percentiles. */
void case_bench_hdr_log(void)
{
    struct h_server s;
    const char *args[] = {"--listen", "127.0.0.1:0", NULL};
    CHECK_INT(h_server_start(&s, NULL, args, 1, 0), ==, 0);
    const char *a = s.addrs[0];
    struct h_run r;

    const char *lines[] = {"bench", "-c", "2",   "-t", "1", "-w",
                           "0",     "-i", "0.5", a,    NULL};
    CHECK_INT(h_run_echokit(lines, -1, 30000, &r), ==, 0);
    CHECK_INT(count_of(r.out, " msgs/s "), ==, 2); /* the summary's: "/s," */
    CHECK_CONTAINS(r.out, "throughput   ");
    CHECK_CONTAINS(r.out, "[   0.0-   0.5 s]");
    CHECK_CONTAINS(r.out, "[   0.5-   1.0 s]");

    char log[512];
    snprintf(log, sizeof(log), "%s/run.hlog", h_tmpdir());
    const char *stream[] = {"bench",     "-c",  "4",  "-t",  "1.5",
                            "-w",        "0.2", "-i", "0.5", "--json-stream",
                            "--hdr-log", log,   a,    NULL};
    CHECK_INT(h_run_echokit(stream, -1, 30000, &r), ==, 0);
    /* start, 3 intervals, end: each line JSON; the intervals add up. */
    unsigned long long sum = 0, end_msgs = 0;
    int intervals = 0, events = 0;
    struct ek_json end;
    memset(&end, 0, sizeof(end));
    char *start_id = NULL, *end_id = NULL; /* the run's, at both ends */
    for (char *line = strtok(r.out, "\n"); line; line = strtok(NULL, "\n")) {
        struct ek_json j;
        CHECK_INT(ek_json_parse(line, &j), ==, 0);
        char *ev = ek_json_string(&j, "event");
        CHECK(ev != NULL);
        size_t len = strlen(ev) + 1; /* the prefixes below end with it */
        uint64_t msgs = 0;
        if (strncmp(ev, "interval", len) == 0) {
            CHECK(ek_json_u64(&j, "data.msgs", &msgs));
            sum += msgs;
            intervals++;
        }
        if (strncmp(ev, "start", len) == 0)
            start_id = ek_json_string(&j, "data.run_id");
        if (strncmp(ev, "end", len) == 0) {
            CHECK(ek_json_u64(&j, "data.msgs", &msgs));
            end_msgs = msgs;
            end_id = ek_json_string(&j, "data.run_id");
            end = j;
        } else {
            ek_json_free(&j);
        }
        CHECK(events++ > 0 || strncmp(ev, "start", len) == 0);
        free(ev);
    }
    printf("--json-stream: %d intervals of %llu messages in all, the summary "
           "%llu\n",
           intervals, sum, end_msgs);
    CHECK_INT(intervals, ==, 3);
    CHECK(sum == end_msgs && end_msgs > 1000);
    CHECK(start_id != NULL && end_id != NULL);
    CHECK_INT(strspn(start_id, "0123456789abcdef"), ==, 32);
    CHECK_STR(end_id, start_id);
    free(start_id);
    free(end_id);

    /* The log: 3 interval lines, read by echokit and by HdrHistogram. */
    static char text[1 << 16];
    read_text_file(log, text, sizeof(text));
    CHECK_CONTAINS(text, "#[BaseTime: ");
    CHECK_INT(count_of(text, ",HISTF"), ==, 3);
    struct java_view java;
    java_read(log, &java);
    double p50 = json_at(&end, "data.latency_us.p50");
    double p99 = json_at(&end, "data.latency_us.p99");
    printf("HdrHistogram (Java) read %llu values, p50 %llu-%llu ns, p99 "
           "%llu-%llu ns; echokit: %llu, p50 %.3f us, p99 %.3f us\n",
           java.count, java.p50[0], java.p50[1], java.p99[0], java.p99[1],
           end_msgs, p50, p99);
    CHECK(java.count == end_msgs);
    CHECK(same_bucket(p50, java.p50));
    CHECK(same_bucket(p99, java.p99));
    ek_json_free(&end);

    /* Stopped in the warm-up: nothing measured, so no interval and no
     * end event, and the exit status says so (130). */
#ifdef EK_TEST_TSAN
    printf("note: SIGINT in the warm-up not checked: ThreadSanitizer holds "
           "a signal back until the thread's next intercepted call, which "
           "bench's clock makes only when the run ends (checked in the "
           "other builds)\n");
#else
    const char *early[] = {"bench",         "-c", "1", "-w", "5", "-t", "1",
                           "--json-stream", a,    NULL};
    CHECK_INT(h_run_echokit_signal(early, -1, 20000, 300, SIGINT, &r), ==, 130);
    CHECK(strstr(r.out, "\"event\":\"interval\"") == NULL);
    CHECK(strstr(r.out, "\"event\":\"end\"") == NULL);
#endif
    stop_ok(&s);
}

/* In a child: execs echokit with argv (NULL-terminated, at most 30). */
static void exec_echokit(const char *const *argv)
{
    const char *full[32] = {h_echokit};
    for (int i = 0; i < 30 && argv[i] != NULL; i++)
        full[i + 1] = argv[i];
    execv(h_echokit, (char *const *)full);
    _exit(127);
}

/* Runs echokit argv with stdout into a pipe of one page that nobody
 * reads for stall_ms, then reads it all into out. Returns the exit
 * status. */
static int run_stalled(const char *const *argv, int stall_ms, char *out,
                       size_t size)
{
    int p[2];
    CHECK(pipe(p) == 0);
    (void)fcntl(p[0], F_SETPIPE_SZ, 4096); /* at its smallest */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        if (dup2(p[1], STDOUT_FILENO) < 0)
            _exit(127);
        exec_echokit(argv);
    }
    close(p[1]);
    h_sleep_ms(stall_ms);
    size_t n = 0;
    ssize_t k;
    while ((k = read(p[0], out + n, size - 1 - n)) > 0)
        n += (size_t)k;
    out[n] = '\0';
    close(p[0]);
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* A reader of the intervals that stops reading (stdout a one-page pipe
 * nobody reads for 3 s; 8 lines fill it in 0.8 s) must not stall the
 * load: the intervals it missed come as one longer interval, every one of
 * them at the offered rate. Before the fix the workers waited for it:
 * intervals of no messages, and the stall in the latency. */
void case_bench_stalled_reader(void)
{
    struct h_server s;
    const char *args[] = {"--listen", "127.0.0.1:0", NULL};
    CHECK_INT(h_server_start(&s, NULL, args, 1, 0), ==, 0);
    const char *argv[] = {
        "bench", "-c",  "2",  "-r",  "2000",          "-t",       "3",
        "-w",    "0.1", "-i", "0.1", "--json-stream", s.addrs[0], NULL};
    static char out[1 << 18];
    CHECK_INT(run_stalled(argv, 3000, out, sizeof(out)), ==, 0);
    uint64_t sum = 0, end_msgs = 0, longest = 0;
    int events = 0, short_ones = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n")) {
        struct ek_json j;
        CHECK_INT(ek_json_parse(line, &j), ==, 0);
        uint64_t msgs, spans;
        double seconds;
        if (ek_json_u64(&j, "data.intervals", &spans)) {
            CHECK(ek_json_u64(&j, "data.msgs", &msgs));
            CHECK(ek_json_double(&j, "data.seconds", &seconds));
            /* Open loop at 2000/s: each interval near it (half), the
             * long one too; a loaded machine may starve the client for
             * one or two, where the stall left twenty empty. */
            if ((double)msgs < 0.5 * 2000 * seconds) {
                fprintf(stderr, "interval of %.3f s: %llu msgs\n", seconds,
                        (unsigned long long)msgs);
                short_ones++;
            }
            sum += msgs;
            longest = spans > longest ? spans : longest;
            events++;
        } else if (ek_json_u64(&j, "data.msgs", &msgs)) {
            end_msgs = msgs;
        }
        ek_json_free(&j);
    }
    printf("reader stalled 3 s: %d interval events, the longest %llu "
           "intervals; %llu msgs in them, %llu in the summary\n",
           events, (unsigned long long)longest, (unsigned long long)sum,
           (unsigned long long)end_msgs);
    CHECK(longest > 1);
    CHECK(short_ones <= 2);
    CHECK(sum == end_msgs && end_msgs > 4000);
    stop_ok(&s);
}

/* Runs echokit argv (NULL-terminated) in the background, stdout into
 * path. Returns its pid. */
static pid_t spawn_to(const char *const *argv, const char *path)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || dup2(fd, STDOUT_FILENO) < 0)
            _exit(127);
        exec_echokit(argv);
    }
    return pid;
}

static int wait_status(pid_t pid)
{
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Parses the JSON in path into *j; returns the text j points into, to
 * be freed after it. */
static char *parse_file(const char *path, struct ek_json *j)
{
    static char text[1 << 18];
    read_text_file(path, text, sizeof(text));
    char *copy = strdup(text); /* the fields point into it */
    CHECK(copy != NULL);
    CHECK_INT(ek_json_parse(copy, j), ==, 0);
    return copy;
}

/* Two benches at once against one server, merged: the count is the sum,
 * exactly; p50 and p99 lie between the two runs' own; HdrHistogram's Java
 * library, adding the two logs itself, finds the same. */
void case_bench_merge(void)
{
    struct h_server s;
    const char *args[] = {"--listen", "127.0.0.1:0", NULL};
    CHECK_INT(h_server_start(&s, NULL, args, 1, 0), ==, 0);
    const char *dir = h_tmpdir();
    char aj[256], bj[256], al[256], bl[256], both[600];
    snprintf(aj, sizeof(aj), "%s/a.json", dir);
    snprintf(bj, sizeof(bj), "%s/b.json", dir);
    snprintf(al, sizeof(al), "%s/a.hlog", dir);
    snprintf(bl, sizeof(bl), "%s/b.hlog", dir);
    /* Different loads, so that their percentiles differ: 2 connections
     * one message deep, and 6 four deep. */
    const char *a_argv[] = {"bench",     "-c", "2",        "-t",
                            "1.5",       "-w", "0.2",      "--json",
                            "--hdr-log", al,   s.addrs[0], NULL};
    const char *b_argv[] = {"bench",     "-c",  "6",        "-d",  "4",
                            "-t",        "1.5", "-w",       "0.2", "--json",
                            "--hdr-log", bl,    s.addrs[0], NULL};
    pid_t pa = spawn_to(a_argv, aj), pb = spawn_to(b_argv, bj);
    CHECK_INT(wait_status(pa), ==, 0);
    CHECK_INT(wait_status(pb), ==, 0);

    struct h_run r;
    const char *merge[] = {"bench", "merge", "--json", aj, bj, NULL};
    CHECK_INT(h_run_echokit(merge, -1, 30000, &r), ==, 0);
    struct ek_json ja, jb, jm;
    char *ta = parse_file(aj, &ja), *tb = parse_file(bj, &jb);
    char *merged = strdup(r.out);
    CHECK(merged != NULL && ek_json_parse(merged, &jm) == 0);
    uint64_t ma, mb, mm;
    CHECK(ek_json_u64(&ja, "msgs", &ma) && ek_json_u64(&jb, "msgs", &mb));
    CHECK(ek_json_u64(&jm, "msgs", &mm));
    const char *q[] = {"latency_us.p50", "latency_us.p99"};
    double qa[2], qb[2], qm[2];
    for (int i = 0; i < 2; i++) {
        qa[i] = json_at(&ja, q[i]);
        qb[i] = json_at(&jb, q[i]);
        qm[i] = json_at(&jm, q[i]);
    }
    printf("a: %llu msgs, p50 %.1f us, p99 %.1f us; b: %llu msgs, p50 %.1f "
           "us, p99 %.1f us; merged: %llu msgs, p50 %.1f us, p99 %.1f us\n",
           (unsigned long long)ma, qa[0], qa[1], (unsigned long long)mb, qb[0],
           qb[1], (unsigned long long)mm, qm[0], qm[1]);
    CHECK(mm == ma + mb);
    for (int i = 0; i < 2; i++)
        CHECK(qm[i] >= fmin(qa[i], qb[i]) && qm[i] <= fmax(qa[i], qb[i]));
    double common, overlap;
    CHECK(ek_json_double(&jm, "common_s", &common) && common > 1.0);
    CHECK(ek_json_double(&jm, "overlap", &overlap) && overlap > 0.5);
    /* Each run's id: in its result, its log's header, and the merge's. */
    char *ida = ek_json_string(&ja, "run_id"),
         *idb = ek_json_string(&jb, "run_id");
    char *m0 = ek_json_string(&jm, "run_ids.0"),
         *m1 = ek_json_string(&jm, "run_ids.1");
    CHECK(ida != NULL && idb != NULL && m0 != NULL && m1 != NULL);
    CHECK_INT(strlen(ida), ==, 32);
    CHECK(strcmp(ida, idb) != 0);
    CHECK_STR(m0, ida);
    CHECK_STR(m1, idb);
    static char log_a[1 << 16];
    read_text_file(al, log_a, sizeof(log_a));
    char head[64];
    snprintf(head, sizeof(head), "#[RunId: %s]\n", ida);
    CHECK(strncmp(log_a, head, strlen(head)) == 0);
    printf("run ids: a %s, b %s; overlap %.3f\n", ida, idb, overlap);

    snprintf(both, sizeof(both), "%s %s", al, bl);
    struct java_view java;
    java_read(both, &java);
    printf("HdrHistogram (Java) merged the logs: %llu values, p50 %llu-%llu "
           "ns, p99 %llu-%llu ns\n",
           java.count, java.p50[0], java.p50[1], java.p99[0], java.p99[1]);
    CHECK(java.count == mm);
    CHECK(same_bucket(qm[0], java.p50));
    CHECK(same_bucket(qm[1], java.p99));

    /* The logs merge in echokit too; and the merged result again. */
    const char *logs[] = {"bench", "merge", "--json", al, bl, NULL};
    CHECK_INT(h_run_echokit(logs, -1, 30000, &r), ==, 0);
    double v;
    CHECK(h_json_number(r.out, "msgs", &v) && (uint64_t)v == mm);
    char mj[256];
    snprintf(mj, sizeof(mj), "%s/m.json", dir);
    int fd = open(mj, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0 && write(fd, merged, strlen(merged)) > 0);
    close(fd);
    /* A run given twice is refused, on its own, as its log (the same
     * id in its header), or inside a merged result; --allow-same-run
     * merges it all the same. (The previous build added them up.) */
    const char *again[] = {"bench", "merge", "--json", mj, aj, NULL};
    CHECK_INT(h_run_echokit(again, -1, 30000, &r), ==, 65);
    CHECK_CONTAINS(r.err, "hold the same run");
    CHECK_CONTAINS(r.err, "inside a merged result");
    const char *same[] = {"bench", "merge", aj, aj, NULL};
    CHECK_INT(h_run_echokit(same, -1, 30000, &r), ==, 65);
    CHECK_CONTAINS(r.err, ida);
    const char *its_log[] = {"bench", "merge", aj, al, NULL};
    CHECK_INT(h_run_echokit(its_log, -1, 30000, &r), ==, 65);
    const char *allowed[] = {"bench", "merge", "--json", mj, "--allow-same-run",
                             aj,      NULL};
    CHECK_INT(h_run_echokit(allowed, -1, 30000, &r), ==, 0);
    CHECK(h_json_number(r.out, "msgs", &v) && (uint64_t)v == mm + ma);
    CHECK(h_json_number(r.out, "runs", &v) && v == 3);
    const char *text[] = {"bench", "merge", aj, bj, NULL};
    CHECK_INT(h_run_echokit(text, -1, 30000, &r), ==, 0);
    CHECK_CONTAINS(r.out, "echokit bench merge: 2 runs");
    CHECK_CONTAINS(r.out, "% of the shortest)");
    CHECK_CONTAINS(r.out, "latency      min ");

    /* Logs alone carry latencies only: the rest is "not known" (null),
     * not zeros. (The previous build printed "0 connections x 0 B,
     * depth 0" and "errors 0".) */
    const char *logs_text[] = {"bench", "merge", al, bl, NULL};
    CHECK_INT(h_run_echokit(logs_text, -1, 30000, &r), ==, 0);
    CHECK_CONTAINS(r.out, "connections  not known");
    CHECK_CONTAINS(r.out, "errors       not known");
    CHECK(strstr(r.out, "0 connections") == NULL);
    CHECK(strstr(r.out, "depth 0") == NULL);
    CHECK(strstr(r.out, "errors       0") == NULL);
    const char *logs_json[] = {"bench", "merge", "--json", al, bl, NULL};
    CHECK_INT(h_run_echokit(logs_json, -1, 30000, &r), ==, 0);
    CHECK(h_json_valid(r.out));
    CHECK(h_json_number(r.out, "msgs", &v) && (uint64_t)v == mm);
    CHECK_CONTAINS(r.out, "\"conns\":null");
    CHECK_CONTAINS(r.out, "\"size\":null");
    CHECK_CONTAINS(r.out, "\"errors\":null");
    CHECK_CONTAINS(r.out, "\"bytes\":null");
    printf("logs alone: %.0f msgs; connections, size, bytes, errors null\n", v);

    /* The same result written otherwise (spaces around colons, every '/'
     * escaped, as other JSON writers do) merges the same; an error text
     * with a quote and an escape character goes through merges intact. */
    static char text_a[1 << 18], other[1 << 19];
    read_text_file(aj, text_a, sizeof(text_a));
    size_t o = 0;
    bool in_string = false;
    for (const char *p = text_a; *p && o + 8 < sizeof(other); p++) {
        if (*p == '"' && p[-1] != '\\')
            in_string = !in_string;
        if (in_string && *p == '/')
            o += (size_t)snprintf(other + o, 3, "\\/");
        else if (!in_string && *p == ':')
            o += (size_t)snprintf(other + o, 4, " : ");
        else if (!in_string && *p == '}' && p[1] == '\n')
            o += (size_t)snprintf(
                other + o, 60,
                ",\"first_error\":\"said \\\"no\\\" \\u001b[31m\"}");
        else
            other[o++] = *p;
    }
    other[o] = '\0';
    char oj[256];
    snprintf(oj, sizeof(oj), "%s/other.json", dir);
    fd = open(oj, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0 && write(fd, other, o) == (ssize_t)o);
    close(fd);
    const char *spaced[] = {"bench", "merge", "--json", oj, NULL};
    CHECK_INT(h_run_echokit(spaced, -1, 30000, &r), ==, 0);
    CHECK(h_json_valid(r.out));
    CHECK(h_json_number(r.out, "msgs", &v) && (uint64_t)v == ma);
    snprintf(mj, sizeof(mj), "%s/m2.json", dir);
    fd = open(mj, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0 && write(fd, r.out, r.out_len) == (ssize_t)r.out_len);
    close(fd);
    const char *twice[] = {"bench", "merge", "--json", mj, NULL};
    CHECK_INT(h_run_echokit(twice, -1, 30000, &r), ==, 0);
    struct ek_json jt;
    char *tt = strdup(r.out);
    CHECK(tt != NULL && ek_json_parse(tt, &jt) == 0);
    char *said = ek_json_string(&jt, "first_error");
    CHECK(said != NULL);
    printf("first_error after two merges: %s\n", said + strlen(oj) + 2);
    CHECK(strstr(said, ": said \"no\" \x1b[31m") != NULL);
    free(said);
    ek_json_free(&jt);
    free(tt);

    /* The spectrum: HdrHistogram's levels. */
    const char *spectrum[] = {"bench", "merge", "--percentiles", aj, NULL};
    CHECK_INT(h_run_echokit(spectrum, -1, 30000, &r), ==, 0);
    CHECK_CONTAINS(r.out, " 0.100000000000 ");
    CHECK_CONTAINS(r.out, " 0.550000000000 ");
    CHECK_CONTAINS(r.out, " 0.775000000000 ");
    CHECK_CONTAINS(r.out, "#[Max     = ");

    /* What cannot be merged, said. */
    const char *none[] = {"bench", "merge", NULL};
    CHECK_INT(h_run_echokit(none, -1, 10000, &r), ==, 64);
    const char *missing[] = {"bench", "merge", "/nonexistent/x.json", NULL};
    CHECK_INT(h_run_echokit(missing, -1, 10000, &r), ==, 66);
    char readme[512];
    snprintf(readme, sizeof(readme), "%s/README.md", EK_SOURCE_DIR);
    const char *garbage[] = {"bench", "merge", "--json", aj, readme, NULL};
    CHECK_INT(h_run_echokit(garbage, -1, 10000, &r), ==, 65);
    const char *conn[] = {"bench", "-m", "connect", "-c",     "1",        "-t",
                          "0.2",   "-w", "0",       "--json", s.addrs[0], NULL};
    CHECK_INT(h_run_echokit(conn, -1, 10000, &r), ==, 0);
    snprintf(mj, sizeof(mj), "%s/c.json", dir);
    fd = open(mj, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0 && write(fd, r.out, r.out_len) > 0);
    close(fd);
    const char *modes[] = {"bench", "merge", aj, mj, NULL};
    CHECK_INT(h_run_echokit(modes, -1, 10000, &r), ==, 65);
    CHECK_CONTAINS(r.err, "runs of one mode only");

    /* A run after the others did not run with them: exit 1, said, unless
     * --no-overlap-check. (The previous build exited 0, with a note.) */
    char cj[256];
    snprintf(cj, sizeof(cj), "%s/c.json", dir);
    const char *c_argv[] = {"bench", "-c", "1",      "-t",       "0.3",
                            "-w",    "0",  "--json", s.addrs[0], NULL};
    CHECK_INT(wait_status(spawn_to(c_argv, cj)), ==, 0);
    const char *apart[] = {"bench", "merge", "--json", aj, cj, NULL};
    CHECK_INT(h_run_echokit(apart, -1, 30000, &r), ==, 1);
    CHECK(h_json_number(r.out, "overlap", &v) && v == 0);
    CHECK_CONTAINS(r.err, "did not run together");
    const char *apart_ok[] = {"bench", "merge", "--no-overlap-check",
                              aj,      cj,      NULL};
    CHECK_INT(h_run_echokit(apart_ok, -1, 30000, &r), ==, 0);
    CHECK_CONTAINS(r.out, "(0% of the shortest)");
    /* A merge keeps the least overlap of the runs it holds: merged again,
     * alone, they still did not run together. */
    const char *apart_json[] = {
        "bench", "merge", "--json", "--no-overlap-check", aj, cj, NULL};
    CHECK_INT(h_run_echokit(apart_json, -1, 30000, &r), ==, 0);
    snprintf(mj, sizeof(mj), "%s/apart.json", dir);
    fd = open(mj, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0 && write(fd, r.out, r.out_len) == (ssize_t)r.out_len);
    close(fd);
    const char *alone[] = {"bench", "merge", mj, NULL};
    CHECK_INT(h_run_echokit(alone, -1, 30000, &r), ==, 1);
    CHECK_CONTAINS(r.err, "did not run together");

    /* A result from before run ids (none in it) merges, said (a run
     * given twice among such is not seen); the merge holds more runs than
     * ids, and merges again. */
    static char no_id[1 << 16];
    read_text_file(aj, no_id, sizeof(no_id));
    char *at = strstr(no_id, "\"run_id\":");
    CHECK(at != NULL);
    memmove(at, at + 44, strlen(at + 44) + 1); /* "run_id":"<32>", */
    char oldj[256];
    snprintf(oldj, sizeof(oldj), "%s/old.json", dir);
    fd = open(oldj, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0 && write(fd, no_id, strlen(no_id)) > 0);
    close(fd);
    const char *with_old[] = {"bench", "merge", "--json", oldj, bj, NULL};
    CHECK_INT(h_run_echokit(with_old, -1, 30000, &r), ==, 0);
    CHECK_CONTAINS(r.err, "1 of the 2 inputs carry no run id");
    CHECK(h_json_number(r.out, "runs", &v) && v == 2);
    CHECK_CONTAINS(r.out, idb);
    fd = open(mj, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    CHECK(fd >= 0 && write(fd, r.out, r.out_len) == (ssize_t)r.out_len);
    close(fd);
    CHECK_INT(h_run_echokit(alone, -1, 30000, &r), ==, 0);
    CHECK(h_json_number(r.out, "runs", &v) == false); /* text */
    CHECK_CONTAINS(r.out, "echokit bench merge: 2 runs");
    free(ida);
    free(idb);
    free(m0);
    free(m1);
    ek_json_free(&ja);
    ek_json_free(&jb);
    ek_json_free(&jm);
    free(ta);
    free(tb);
    free(merged);
    stop_ok(&s);
}

/* text with the value of "key" (a number, in text's first line)
 * replaced by value, into out. */
static void with_value(char *out, size_t size, const char *text,
                       const char *key, const char *value)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", key);
    const char *at = strstr(text, pat);
    CHECK(at != NULL);
    at += strlen(pat);
    size_t keep = (size_t)(at - text), skip = strcspn(at, ",}");
    CHECK((size_t)snprintf(out, size, "%.*s%s%s", (int)keep, text, value,
                           at + skip) < size);
}

/* The same, into path. */
static void write_with(const char *text, const char *key, const char *value,
                       const char *path)
{
    static char edited[1 << 16];
    with_value(edited, sizeof(edited), text, key, value);
    FILE *f = fopen(path, "we");
    CHECK(f != NULL);
    fputs(edited, f);
    CHECK(fclose(f) == 0);
}

/* An interval log of `lines` lines, each the histogram text. */
static void write_log(const char *path, const char *hist, int lines)
{
    FILE *f = fopen(path, "we");
    CHECK(f != NULL);
    for (int i = 0; i < lines; i++)
        fprintf(f, "%d.000,1.000,1.000,%s\n", i, hist);
    CHECK(fclose(f) == 0);
}

/* Files made to hurt bench merge (a review's findings): every value out
 * of the range a run can have is refused (65) before it is summed or
 * cast, as are more values than a result holds and histograms that
 * decode to more counts than a real run has, per line and per file. The
 * previous build printed a warm-up of 1e300 s as -9223372036854776.000,
 * overflowed a signed sum of client CPU (UBSan), exited 66 "Argument list
 * too long", and decoded every line (31 ms each here: 17 minutes for a
 * 256 MiB file). */
void case_bench_merge_crafted(void)
{
    struct h_server s;
    const char *args[] = {"--listen", "127.0.0.1:0", NULL};
    CHECK_INT(h_server_start(&s, NULL, args, 1, 0), ==, 0);
    struct h_run r;
    const char *run[] = {"bench", "-c", "1",      "-t",       "0.2",
                         "-w",    "0",  "--json", s.addrs[0], NULL};
    CHECK_INT(h_run_echokit(run, -1, 30000, &r), ==, 0);
    static char base[1 << 16], other[1 << 16];
    snprintf(base, sizeof(base), "%s", r.out);
    stop_ok(&s);
    /* The same result as another run (another id), to merge with it. */
    char *id = strstr(base, "\"run_id\":\"");
    CHECK(id != NULL);
    snprintf(other, sizeof(other), "%s", base);
    memset(other + (id - base) + 10, 'f', 32);

    const char *dir = h_tmpdir();
    char a[256], b[256];
    snprintf(a, sizeof(a), "%s/crafted-a.json", dir);
    snprintf(b, sizeof(b), "%s/crafted-b.json", dir);
    static const struct {
        const char *key, *value, *said;
    } bad[] = {
        {"warmup_s", "1e300", "\"warmup_s\": not a number in the range"},
        {"warmup_s", "-1", "\"warmup_s\""},
        {"duration_s", "1e300", "\"duration_s\""},
        {"start_time", "-5", "\"start_time\""},
        {"client_cpu_s", "1e300", "\"client_cpu_s\""},
        {"conns_made", "4294967296", "\"conns_made\": not a whole number"},
        {"msgs", "-1", "\"msgs\": not a whole number"},
        {"msgs", "1.5", "\"msgs\""},
        {"size", "\"64\"", "\"size\""},
        {"run_id", "\"not-hex\"", "a run id that is not 32"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_with(base, bad[i].key, bad[i].value, a);
        const char *argv[] = {"bench", "merge", "--json", a, NULL};
        CHECK_INT(h_run_echokit(argv, -1, 10000, &r), ==, 65);
        if (strstr(r.err, bad[i].said) == NULL)
            fprintf(stderr, "%s: %s\n", bad[i].key, r.err);
        CHECK_CONTAINS(r.err, bad[i].said);
    }
    /* Each in range, their sum not: two of 9e12 s of client CPU. */
    write_with(base, "client_cpu_s", "9e12", a);
    write_with(other, "client_cpu_s", "9e12", b);
    const char *cpu[] = {"bench", "merge", a, b, NULL};
    CHECK_INT(h_run_echokit(cpu, -1, 10000, &r), ==, 65);
    CHECK_CONTAINS(r.err, "client CPU times add up past");
    printf("%zu out-of-range values and a sum past 2^63 us: refused (65)\n",
           sizeof(bad) / sizeof(bad[0]));

    /* Issue 20's review, finding 6: a run of 0 s with 10^15 messages
     * beside one of 10^9 s with one: the window was 10^24 s, cast to
     * milliseconds past 2^63 (undefined behaviour). Now at most the
     * longest run. */
    static char step[sizeof(base)], edited[sizeof(base)];
    with_value(step, sizeof(step), base, "duration_s", "0");
    with_value(edited, sizeof(edited), step, "msgs", "1000000000000000");
    write_with(edited, "warmup_s", "0", a);
    with_value(step, sizeof(step), other, "duration_s", "1000000000");
    with_value(edited, sizeof(edited), step, "msgs", "1");
    write_with(edited, "warmup_s", "0", b);
    const char *zero[] = {"bench", "merge", "--json", a, b, NULL};
    CHECK_INT(h_run_echokit(zero, -1, 10000, &r), ==, 0);
    double window = -1;
    CHECK(h_json_number(r.out, "duration_s", &window));
    printf("a run of 0 s with 10^15 messages merged with one of 10^9 s: "
           "a window of %g s\n",
           window);
    CHECK(window >= 0 && window <= 1e9);

    /* More values than a result holds: 65, not 66. */
    FILE *f = fopen(a, "we");
    CHECK(f != NULL);
    fprintf(f, "{\"mode\":\"rr\",\"msgs\":0,\"pad\":[0");
    for (int i = 0; i < 70000; i++)
        fputs(",0", f);
    fputs("]}\n", f);
    CHECK(fclose(f) == 0);
    const char *many[] = {"bench", "merge", a, NULL};
    CHECK_INT(h_run_echokit(many, -1, 10000, &r), ==, 65);
    CHECK_CONTAINS(r.err, "more values than a bench result holds");

    /* A log line of 2^21 + 1 counts, a few KiB: refused at line 1
     * (before: decoded, 56 ms each). */
    char *big = hdr_crafted_ones(EK_HDR_WORDS_MAX + 1);
    write_log(a, big, 20);
    const char *one_line[] = {"bench", "merge", a, NULL};
    int64_t t0 = h_now_ms();
    CHECK_INT(h_run_echokit(one_line, -1, 30000, &r), ==, 65);
    int64_t t1 = h_now_ms();
    CHECK_CONTAINS(r.err, "line 1: more than 2097152 counts in one histogram");
    printf("20 lines of %zu bytes, each 2^21 + 1 counts: refused at line 1 "
           "in %lld ms\n",
           strlen(big), (long long)(t1 - t0));
    free(big);

    /* 2^20 counts a line is well within one histogram's bound, but two
     * of them fill what a file of a few KiB may hold (2 counts a byte,
     * 2^21 at least): refused at line 3 (before: read in full). */
    big = hdr_crafted_ones(EK_HDR_WORDS_MAX / 2);
    write_log(a, big, 70);
    t0 = h_now_ms();
    CHECK_INT(h_run_echokit(one_line, -1, 60000, &r), ==, 65);
    t1 = h_now_ms();
    CHECK_CONTAINS(r.err, "line 3: more counts than the file's size allows");
    printf("70 lines of 2^20 counts (%zu bytes each): refused at line 3 in "
           "%lld ms\n",
           strlen(big), (long long)(t1 - t0));
    free(big);
}

/* --share I/N: four benches with the same -c 10 -r 2000 take 3, 3, 2 and
 * 2 connections and 500 msgs/s each, and their merge is one run of 10
 * connections; shares that cannot be made are usage errors. */
void case_bench_share(void)
{
    struct h_server s;
    const char *args[] = {"--listen", "127.0.0.1:0", NULL};
    CHECK_INT(h_server_start(&s, NULL, args, 1, 0), ==, 0);
    const char *dir = h_tmpdir();
    enum { N = 4 };
    char out[N][256], share[N][16];
    pid_t pid[N];
    for (int i = 0; i < N; i++) {
        snprintf(out[i], sizeof(out[i]), "%s/share%d.json", dir, i);
        snprintf(share[i], sizeof(share[i]), "%d/%d", i, N);
        const char *argv[] = {"bench",     "-c",      "10",       "-r",
                              "2000",      "-t",      "1",        "-w",
                              "0.2",       "--share", share[i],   "--json",
                              "--timeout", "5",       s.addrs[0], NULL};
        pid[i] = spawn_to(argv, out[i]);
    }
    static const uint64_t want_conns[N] = {3, 3, 2, 2};
    uint64_t msgs = 0;
    for (int i = 0; i < N; i++) {
        CHECK_INT(wait_status(pid[i]), ==, 0);
        struct ek_json j;
        char *text = parse_file(out[i], &j);
        uint64_t conns, rate, m;
        CHECK(ek_json_u64(&j, "conns", &conns) &&
              ek_json_u64(&j, "rate", &rate) && ek_json_u64(&j, "msgs", &m));
        char *said = ek_json_string(&j, "share");
        printf("share %s: %llu connections at %llu msgs/s: %llu msgs\n",
               share[i], (unsigned long long)conns, (unsigned long long)rate,
               (unsigned long long)m);
        CHECK_INT(conns, ==, want_conns[i]);
        CHECK_INT(rate, ==, 500);
        CHECK(said != NULL && strcmp(said, share[i]) == 0);
        msgs += m;
        free(said);
        ek_json_free(&j);
        free(text);
    }
    struct h_run r;
    const char *merge[] = {"bench", "merge", "--json", out[0],
                           out[1],  out[2],  out[3],   NULL};
    CHECK_INT(h_run_echokit(merge, -1, 30000, &r), ==, 0);
    double v;
    CHECK(h_json_number(r.out, "conns", &v) && v == 10);
    CHECK(h_json_number(r.out, "msgs", &v) && (uint64_t)v == msgs);
    CHECK(strstr(r.err, "share") == NULL); /* all four: no warning */
    /* A share missing, or one given twice, is said. */
    const char *three[] = {"bench", "merge", "--json", out[0],
                           out[1],  out[2],  NULL};
    CHECK_INT(h_run_echokit(three, -1, 30000, &r), ==, 0);
    CHECK_CONTAINS(r.err, "3 of the 3 runs are shares of 4");
    const char *twice[] = {"bench", "merge", "--json",           out[0],
                           out[1],  out[2],  "--allow-same-run", out[1],
                           NULL};
    CHECK_INT(h_run_echokit(twice, -1, 30000, &r), ==, 0);
    CHECK_CONTAINS(r.err, "share 1/4 is given twice");
    twice[6] = out[3]; /* without --allow-same-run: the same run, refused */
    CHECK_INT(h_run_echokit(twice, -1, 30000, &r), ==, 65);
    CHECK_CONTAINS(r.err, "hold the same run");

    static const char *const bad[][2] = {
        {"4/4", "10"}, {"1/0", "10"},  {"x", "10"}, {"-1/4", "10"},
        {"1/", "10"},  {"15/20", "10"} /* no connection left */};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *argv[] = {"bench",   "-c",      bad[i][1],  "-t", "1",
                              "--share", bad[i][0], s.addrs[0], NULL};
        CHECK_INT(h_run_echokit(argv, -1, 10000, &r), ==, 64);
        CHECK_CONTAINS(r.err, "--share");
    }
    stop_ok(&s);
}
