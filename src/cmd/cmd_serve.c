/*
 * echokit serve: options, then ek_server_open, then the chosen model.
 */
#include "ek_cli.h"
#include "ek_config.h"
#include "ek_log.h"
#include "ek_metrics.h"
#include "ek_model.h"
#include "ek_sd.h"
#include "ek_service.h"
#include "ek_server.h"
#include "ek_util.h"
#include "ek_acl.h"
#include "ek_listen.h"
#include "ek_stats.h"
#include "ek_tls.h"

#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sysexits.h>
#include <unistd.h>
#include <errno.h>

#define EK_DEFAULT_LISTEN "localhost:50000"
#define EK_DEFAULT_MAX_QUEUE ((size_t)256 * 1024)
#define EK_DEFAULT_DRAIN_MS 10000
/* UDP answers per second: per source address, and in all. Enough for
 * ping and tests of a path; small enough that a spoofed flood reflects at
 * most this much at its victim. Benchmarks lift them (0). */
#define EK_DEFAULT_UDP_RATE 1000
#define EK_DEFAULT_UDP_RATE_TOTAL 100000

/* serve --help, in three parts around the options that name models
 * (--io, --max-conns, --threads): print_usage builds those from the model
 * table. */
static const char usage_head[] =
    "usage: echokit serve [options]\n"
    "\n"
    "Echo back everything each client sends, in order, until it closes\n"
    "(RFC 862 over TCP).\n"
    "\n"
    "  -l, --listen ADDR         listen on ADDR; repeatable (default "
    "localhost:50000,\n"
    "                            every address localhost resolves to).\n"
    "                            HOST:PORT, [IPV6]:PORT, *:PORT, unix:PATH,\n"
    "                            unix:@NAME (abstract), tls:HOST:PORT (TLS),\n"
    "                            udp:HOST:PORT. Port 0 picks a free port.\n";
static const char usage_middle[] =
    "  -Q, --max-queue BYTES     per connection, bytes read but not yet "
    "echoed;\n"
    "                            reading pauses when full (default 256K)\n"
    "  -d, --drain-timeout SECS  after SIGINT/SIGTERM, how long open "
    "connections\n"
    "                            may go on (default 10)\n";
static const char usage_tail[] =
    "      --idle-timeout SECS   close connections on which nothing moved "
    "for SECS\n"
    "  -u, --udp                 serve every --listen address over UDP "
    "instead\n"
    "                            (udp:HOST:PORT does it for one address)\n"
    "      --udp-low-ports       also answer source ports below 1024\n"
    "      --udp-rate PPS        datagrams answered per second per source "
    "address\n"
    "                            (default 1000; 0: no limit)\n"
    "      --udp-rate-total PPS  datagrams answered per second in all "
    "(default\n"
    "                            100000; 0: no limit)\n"
    "      --proxy-protocol      every connection starts with a PROXY v1/v2\n"
    "                            header (HAProxy); --allow/--deny then apply "
    "to\n"
    "                            the client it names\n"
    "      --proxy-from CIDR     trust PROXY headers from these peers only\n"
    "                            (repeatable; default 127.0.0.0/8 and ::1, "
    "and\n"
    "                            unix socket files)\n"
    "      --tls-cert FILE       PEM certificate (then its chain) for tls:\n"
    "                            listeners; repeatable, each with its "
    "--tls-key:\n"
    "                            SNI picks the one naming the host asked for,\n"
    "                            else the first\n"
    "      --tls-key FILE        PEM private key of the --tls-cert before it\n"
    "      --tls-client-ca FILE  ask for a client certificate signed by these\n"
    "                            CAs; clients without one are refused (mTLS)\n"
    "      --tls-alpn LIST       protocols to accept by ALPN, preferred first\n"
    "                            (e.g. echo,h2); none in common: no ALPN\n"
    "      --tls-min-version V   1.2 (default) or 1.3\n"
    "      --tls-handshake-timeout SECS  close clients that have not finished\n"
    "                            the handshake by then (default 10)\n"
    "      --max-handshakes N    TLS connections in their handshake at once;\n"
    "                            more are accepted and closed at once\n"
    "                            (default 1000)\n"
    "      --tls-ciphers LIST    TLS 1.2 cipher suites, OpenSSL's syntax\n"
    "                            (default ECDHE with AES-GCM or ChaCha20:\n"
    "                            forward secrecy, AEAD); TLS 1.3's are fixed\n"
    "      --tls-ticket-rotate SECS  a new session ticket key every SECS; a\n"
    "                            ticket resumes for 2 x SECS at most "
    "(default\n"
    "                            3600); none resume under --tls-client-ca\n"
    "      --ktls                ask for kernel TLS (logged at -v per\n"
    "                            connection: whether the kernel took it)\n"
    "      --allow CIDR          accept only these peers (repeatable)\n"
    "      --deny CIDR           refuse these peers (repeatable; deny wins)\n"
    "      --user USER           drop root for USER once the sockets are "
    "bound\n"
    "      --pidfile PATH        write the pid there (locked while we run)\n"
    "      --inetd               serve one client on stdin/stdout and exit\n"
    "      --metrics HOST:PORT   serve the counters as Prometheus text at\n"
    "                            http://HOST:PORT/metrics (SIGUSR1 logs "
    "them)\n"
    "      --log-format FORMAT   text (default) or json: one object per "
    "line\n"
    "  -v, --verbose             more log lines on stderr (-vv: more "
    "still)\n"
    "  -q, --quiet               errors only\n"
    "  -h, --help                this text\n"
    "  -V, --version             print the version\n"
    "\n"
    "stdout gets one line per listener once all are bound: \"listening on "
    "ADDR\".\n"
    "Under systemd socket activation (LISTEN_FDS) the passed sockets are "
    "served\n"
    "and only explicit --listen addresses are bound besides; READY=1 and\n"
    "STOPPING=1 go to NOTIFY_SOCKET.\n"
    "Logs go to stderr. SIGINT/SIGTERM drain; a second one exits at once;\n"
    "SIGUSR1 logs the counters; SIGHUP reloads the TLS certificates (open\n"
    "connections keep theirs).\n"
    "\n"
    "Exit status: 0 after a drain; 64 bad usage; 67 no such --user; 68 host\n"
    "not found; 69 model or TLS not available; 71 system error (address in\n"
    "use, ...); 73 --pidfile not writable or held; 74 I/O error (--inetd); 77\n"
    "permission denied; 78 bad socket from systemd, or unusable TLS\n"
    "certificate or key; 128+N when a second signal N forced the exit.\n";

/* Text built from the model table. */
struct text {
    char buf[512];
    size_t len;
};

static void text_add(struct text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void text_add(struct text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    ek_vappendf(t->buf, sizeof(t->buf), &t->len, fmt, ap);
    va_end(ap);
}

/* Whether m has any of caps (0: every model) and, unless max_conns is 0,
 * that default --max-conns. */
static bool model_matches(const struct ek_model *m, unsigned caps,
                          uint64_t max_conns)
{
    return (caps == 0 || ek_model_has(m, caps)) &&
           (max_conns == 0 || m->default_max_conns == max_conns);
}

/* Appends the names of the models that match, in table order: "a, b, c",
 * with last (", " or " and ") before the last one. Returns how many. */
static size_t add_model_names(struct text *t, unsigned caps, uint64_t max_conns,
                              const char *last)
{
    size_t total = 0, n = 0;
    for (size_t i = 0; ek_models[i] != NULL; i++)
        total += model_matches(ek_models[i], caps, max_conns);
    for (size_t i = 0; ek_models[i] != NULL; i++)
        if (model_matches(ek_models[i], caps, max_conns)) {
            const char *sep = "";
            if (n++ > 0)
                sep = n < total ? ", " : last;
            text_add(t, "%s%s", sep, ek_models[i]->name);
        }
    return total;
}

/* The default --max-conns of the default model, then the others' by
 * value: "default 10000; thread and process: 1000; iterative: always 1". */
static void add_max_conns_defaults(struct text *t)
{
    uint64_t dflt = ek_model_auto()->default_max_conns;
    text_add(t, "default %llu", (unsigned long long)dflt);
    for (size_t i = 0; ek_models[i] != NULL; i++) {
        uint64_t v = ek_models[i]->default_max_conns;
        bool first = v != dflt && ek_model_has(ek_models[i], EK_CAP_CONCURRENT);
        for (size_t k = 0; first && k < i; k++)
            first = !model_matches(ek_models[k], EK_CAP_CONCURRENT, v);
        if (first) {
            text_add(t, "; ");
            add_model_names(t, EK_CAP_CONCURRENT, v, " and ");
            text_add(t, ": %llu", (unsigned long long)v);
        }
    }
    struct text one = {.len = 0};
    if (add_model_names(&one, EK_CAP_ONE_AT_A_TIME, 0, " and ") > 0)
        text_add(t, "; %s: always 1", one.buf);
}

/* Prints an option of the usage text: "  LABEL" padded to column 28, then
 * text filled to 80 columns, each further line indented to column 28. */
static void print_option(const char *label, const char *text)
{
    enum { COLUMN = 28, WIDTH = 80 };
    printf("  %-*s", COLUMN - 2, label);
    size_t col = COLUMN;
    bool line_start = true;
    for (const char *p = text; *p != '\0'; p += strspn(p, " ")) {
        size_t n = strcspn(p, " ");
        if (!line_start && col + 1 + n > WIDTH) {
            printf("\n%*s", COLUMN, "");
            col = COLUMN;
            line_start = true;
        }
        printf("%s%.*s", line_start ? "" : " ", (int)n, p);
        col += n + (line_start ? 0 : 1);
        line_start = false;
        p += n;
    }
    putchar('\n');
}

/* `serve --help`: the options that name models list them from the table. */
static void print_usage(void)
{
    struct text io = {.len = 0}, conns = {.len = 0}, threads = {.len = 0};
    add_model_names(&io, 0, 0, ", ");
    text_add(&io, " or auto (default); `--io list` shows which ones this "
                  "build can run");
    text_add(&conns, "connections open at once; more are accepted and "
                     "closed at once (");
    add_max_conns_defaults(&conns);
    text_add(&conns, ")");
    text_add(&threads, "event loops, each on its own thread with its own "
                       "SO_REUSEPORT listeners (default 1, at most 256; "
                       "auto: one per CPU, at most 256); ");
    add_model_names(&threads, EK_CAP_EVENT_LOOP, 0, ", ");
    text_add(&threads, " only");

    fputs(usage_head, stdout);
    print_option("-i, --io MODEL", io.buf);
    print_option("-c, --max-conns N", conns.buf);
    fputs(usage_middle, stdout);
    print_option("-t, --threads N|auto", threads.buf);
    fputs(usage_tail, stdout);
}

static void print_models(void)
{
    const struct ek_model *best = ek_model_auto();
    for (size_t i = 0; ek_models[i] != NULL; i++) {
        const struct ek_model *m = ek_models[i];
        const char *why = ek_model_unavailable(m);
        printf("%-10s %-11s %s\n", m->name, why ? "unavailable" : "available",
               why ? why : m->summary);
    }
    printf("%-10s %-11s uses %s here\n", "auto", "available", best->name);
    ek_print_tls_support();
}

struct serve_options {
    struct ek_addr_spec *listen;
    size_t nlisten;
    const char *io;
    uint64_t max_conns; /* 0: the model's default */
    uint64_t max_queue;
    int64_t drain_ms;
    uint64_t threads;
    long threads_auto_cpus; /* --threads auto: the CPUs counted */
    int verbosity;
    bool log_json;
    bool metrics;
    bool inetd;
    bool proxy_protocol;
    struct ek_acl proxy_from; /* --proxy-from: allow rules */
    bool udp;
    struct ek_udp_limits udp_limits;
    struct ek_addr_spec metrics_addr;
    int64_t idle_ms;
    struct ek_acl acl;
    const char *user;
    const char *pidfile;
    struct ek_tls_server_options tls;
    size_t nkeys;            /* --tls-key seen */
    bool tls_asked;          /* any TLS option */
    int64_t handshake_ms;    /* --tls-handshake-timeout */
    uint64_t max_handshakes; /* --max-handshakes; 0: the default */
};

static void free_options(struct serve_options *o)
{
    free(o->listen);
    ek_acl_free(&o->acl);
    ek_acl_free(&o->proxy_from);
}

/* Adds the rule --option CIDR to acl. Returns 0 or the exit status. */
static int add_cidr(struct ek_acl *acl, const char *option, bool allow,
                    const char *text)
{
    struct ek_cidr rule;
    const char *why;
    if (ek_cidr_parse(text, &rule, &why) < 0)
        return ek_usage_error("serve", "invalid --%s '%s': %s", option, text,
                              why);
    if (ek_acl_add(acl, allow, &rule) < 0) {
        ek_warnx("out of memory");
        return EX_OSERR;
    }
    return 0;
}

static int add_listen(struct serve_options *o, const char *text)
{
    const char *why;
    struct ek_addr_spec spec;
    if (ek_addr_parse(text, &spec, &why) < 0)
        return ek_usage_error("serve", "invalid --listen address '%s': %s",
                              text, why);
    struct ek_addr_spec *grown =
        realloc(o->listen, (o->nlisten + 1) * sizeof(*grown));
    if (grown == NULL) {
        ek_warnx("out of memory");
        return EX_OSERR;
    }
    o->listen = grown;
    o->listen[o->nlisten++] = spec;
    return 0;
}

/* Long options without a short form. */
enum {
    OPT_METRICS = 256,
    OPT_LOG_FORMAT,
    OPT_IDLE_TIMEOUT,
    OPT_ALLOW,
    OPT_DENY,
    OPT_USER,
    OPT_PIDFILE,
    OPT_INETD,
    OPT_PROXY_PROTOCOL,
    OPT_PROXY_FROM,
    OPT_UDP_LOW_PORTS,
    OPT_UDP_RATE,
    OPT_UDP_RATE_TOTAL,
    OPT_TLS_CERT,
    OPT_TLS_KEY,
    OPT_TLS_CLIENT_CA,
    OPT_TLS_ALPN,
    OPT_TLS_MIN_VERSION,
    OPT_TLS_HANDSHAKE_TIMEOUT,
    OPT_KTLS,
    OPT_MAX_HANDSHAKES,
    OPT_TLS_CIPHERS,
    OPT_TLS_TICKET_ROTATE,
};

/* --tls-*: collected here, checked as a whole by check_tls. Returns 0 or
 * the exit status. */
static int tls_option(struct serve_options *o, int c, const char *arg)
{
    const char *why;
    o->tls_asked = true;
    switch (c) {
    case OPT_TLS_CERT:
    case OPT_TLS_KEY: {
        size_t *n = c == OPT_TLS_CERT ? &o->tls.ncerts : &o->nkeys;
        if (*n == EK_TLS_MAX_CERTS)
            return ek_usage_error("serve",
                                  "at most %d --tls-cert and "
                                  "--tls-key",
                                  EK_TLS_MAX_CERTS);
        (c == OPT_TLS_CERT ? o->tls.certs : o->tls.keys)[(*n)++] = arg;
        return 0;
    }
    case OPT_TLS_CLIENT_CA:
        o->tls.client_ca = arg;
        return 0;
    case OPT_TLS_ALPN:
        if ((why = ek_tls_alpn_check(arg)) != NULL)
            return ek_usage_error("serve", "invalid --tls-alpn '%s': %s", arg,
                                  why);
        o->tls.alpn = arg;
        return 0;
    case OPT_TLS_MIN_VERSION:
        if (strcmp(arg, "1.2") != 0 && strcmp(arg, "1.3") != 0)
            return ek_usage_error(
                "serve", "invalid --tls-min-version '%s': 1.2 or 1.3", arg);
        o->tls.min_version = arg[2] == '3' ? 13 : 12;
        return 0;
    case OPT_TLS_HANDSHAKE_TIMEOUT:
        if (ek_parse_seconds(arg, 3600 * 1000LL, &o->handshake_ms, &why) < 0 ||
            (why = "must be more than 0", o->handshake_ms <= 0))
            return ek_usage_error(
                "serve", "invalid --tls-handshake-timeout '%s': %s", arg, why);
        return 0;
    case OPT_MAX_HANDSHAKES:
        if (ek_parse_uint(arg, 1, 10000000, &o->max_handshakes, &why) < 0)
            return ek_usage_error("serve", "invalid --max-handshakes '%s': %s",
                                  arg, why);
        return 0;
    case OPT_TLS_CIPHERS:
        o->tls.ciphers = arg; /* checked against OpenSSL's list: check_tls */
        return 0;
    case OPT_TLS_TICKET_ROTATE: {
        int64_t ms;
        if (ek_parse_seconds(arg, EK_TLS_TICKET_ROTATE_MAX * 1000LL, &ms,
                             &why) < 0 ||
            (why = "must be at least 1 second", ms < 1000) ||
            (why = "must be whole seconds (a key's period is)", ms % 1000))
            return ek_usage_error(
                "serve", "invalid --tls-ticket-rotate '%s': %s", arg, why);
        o->tls.ticket_rotate_s = (unsigned)(ms / 1000);
        return 0;
    }
    default: /* OPT_KTLS */
        o->tls.ktls = true;
        return 0;
    }
}

/* The options, for getopt_long and for `echokit completion` (ek_cli.h). */
const struct option ek_serve_options[] = {
    {"listen", required_argument, NULL, 'l'},
    {"io", required_argument, NULL, 'i'},
    {"max-conns", required_argument, NULL, 'c'},
    {"max-queue", required_argument, NULL, 'Q'},
    {"drain-timeout", required_argument, NULL, 'd'},
    {"threads", required_argument, NULL, 't'},
    {"metrics", required_argument, NULL, OPT_METRICS},
    {"idle-timeout", required_argument, NULL, OPT_IDLE_TIMEOUT},
    {"allow", required_argument, NULL, OPT_ALLOW},
    {"deny", required_argument, NULL, OPT_DENY},
    {"user", required_argument, NULL, OPT_USER},
    {"pidfile", required_argument, NULL, OPT_PIDFILE},
    {"inetd", no_argument, NULL, OPT_INETD},
    {"proxy-protocol", no_argument, NULL, OPT_PROXY_PROTOCOL},
    {"proxy-from", required_argument, NULL, OPT_PROXY_FROM},
    {"udp", no_argument, NULL, 'u'},
    {"udp-low-ports", no_argument, NULL, OPT_UDP_LOW_PORTS},
    {"udp-rate", required_argument, NULL, OPT_UDP_RATE},
    {"udp-rate-total", required_argument, NULL, OPT_UDP_RATE_TOTAL},
    {"tls-cert", required_argument, NULL, OPT_TLS_CERT},
    {"tls-key", required_argument, NULL, OPT_TLS_KEY},
    {"tls-client-ca", required_argument, NULL, OPT_TLS_CLIENT_CA},
    {"tls-alpn", required_argument, NULL, OPT_TLS_ALPN},
    {"tls-min-version", required_argument, NULL, OPT_TLS_MIN_VERSION},
    {"tls-handshake-timeout", required_argument, NULL,
     OPT_TLS_HANDSHAKE_TIMEOUT},
    {"ktls", no_argument, NULL, OPT_KTLS},
    {"max-handshakes", required_argument, NULL, OPT_MAX_HANDSHAKES},
    {"tls-ciphers", required_argument, NULL, OPT_TLS_CIPHERS},
    {"tls-ticket-rotate", required_argument, NULL, OPT_TLS_TICKET_ROTATE},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"verbose", no_argument, NULL, 'v'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};
const char ek_serve_shortopts[] = ":l:i:c:Q:d:t:vqhVu";

/* Returns -1 when the options are fine and the server should run, else
 * the exit status. */
static int parse_options(int argc, char **argv, struct serve_options *o)
{
    const char *why;
    int c, rc;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ek_serve_shortopts, ek_serve_options,
                            NULL)) != -1) {
        switch (c) {
        case 'l':
            if ((rc = add_listen(o, optarg)) != 0)
                return rc;
            break;
        case 'i':
            o->io = optarg;
            break;
        case 'c':
            if (ek_parse_uint(optarg, 1, 10000000, &o->max_conns, &why) < 0)
                return ek_usage_error("serve", "invalid --max-conns '%s': %s",
                                      optarg, why);
            break;
        case 'Q':
            if (ek_parse_size(optarg, 1, 1ull << 30, &o->max_queue, &why) < 0)
                return ek_usage_error("serve", "invalid --max-queue '%s': %s",
                                      optarg, why);
            break;
        case 'd':
            if (ek_parse_seconds(optarg, 86400 * 1000LL, &o->drain_ms, &why) <
                0)
                return ek_usage_error(
                    "serve", "invalid --drain-timeout '%s': %s", optarg, why);
            break;
        case 't':
            o->threads_auto_cpus = 0; /* the last --threads decides */
            if (strcmp(optarg, "auto") == 0) {
                /* One loop per CPU, at most EK_MAX_LOOPS (the counters
                 * have that many slots); said at start when clamped. */
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                o->threads_auto_cpus = n;
                o->threads = n < 1              ? 1
                             : n > EK_MAX_LOOPS ? EK_MAX_LOOPS
                                                : (uint64_t)n;
            } else if (ek_parse_uint(optarg, 1, EK_MAX_LOOPS, &o->threads,
                                     &why) < 0) {
                return ek_usage_error("serve", "invalid --threads '%s': %s",
                                      optarg, why);
            }
            break;
        case OPT_METRICS:
            if (ek_addr_parse(optarg, &o->metrics_addr, &why) < 0 ||
                (why = "a unix socket is not an HTTP address",
                 o->metrics_addr.kind != EK_ADDR_INET))
                return ek_usage_error("serve", "invalid --metrics '%s': %s",
                                      optarg, why);
            o->metrics = true;
            break;
        case OPT_IDLE_TIMEOUT:
            if (ek_parse_seconds(optarg, 86400 * 1000LL, &o->idle_ms, &why) <
                    0 ||
                (why = "must be more than 0", o->idle_ms <= 0))
                return ek_usage_error(
                    "serve", "invalid --idle-timeout '%s': %s", optarg, why);
            break;
        case OPT_ALLOW:
        case OPT_DENY:
            if ((rc = add_cidr(&o->acl, c == OPT_ALLOW ? "allow" : "deny",
                               c == OPT_ALLOW, optarg)) != 0)
                return rc;
            break;
        case OPT_USER:
            o->user = optarg;
            break;
        case OPT_PIDFILE:
            o->pidfile = optarg;
            break;
        case OPT_INETD:
            o->inetd = true;
            break;
        case OPT_PROXY_PROTOCOL:
            o->proxy_protocol = true;
            break;
        case OPT_PROXY_FROM:
            if ((rc = add_cidr(&o->proxy_from, "proxy-from", true, optarg)) !=
                0)
                return rc;
            break;
        case 'u':
            o->udp = true;
            break;
        case OPT_UDP_LOW_PORTS:
            o->udp_limits.low_ports = true;
            break;
        case OPT_UDP_RATE:
        case OPT_UDP_RATE_TOTAL:
            if (ek_parse_uint(optarg, 0, 1000000000,
                              c == OPT_UDP_RATE ? &o->udp_limits.rate
                                                : &o->udp_limits.total_rate,
                              &why) < 0)
                return ek_usage_error("serve", "invalid --%s '%s': %s",
                                      c == OPT_UDP_RATE ? "udp-rate"
                                                        : "udp-rate-total",
                                      optarg, why);
            break;
        case OPT_TLS_CERT:
        case OPT_TLS_KEY:
        case OPT_TLS_CLIENT_CA:
        case OPT_TLS_ALPN:
        case OPT_TLS_MIN_VERSION:
        case OPT_TLS_HANDSHAKE_TIMEOUT:
        case OPT_KTLS:
        case OPT_MAX_HANDSHAKES:
        case OPT_TLS_CIPHERS:
        case OPT_TLS_TICKET_ROTATE:
            if ((rc = tls_option(o, c, optarg)) != 0)
                return rc;
            break;
        case OPT_LOG_FORMAT:
            if (strcmp(optarg, "text") != 0 && strcmp(optarg, "json") != 0)
                return ek_usage_error("serve",
                                      "invalid --log-format '%s': text or "
                                      "json",
                                      optarg);
            o->log_json = optarg[0] == 'j';
            break;
        case 'v':
            o->verbosity++;
            break;
        case 'q':
            o->verbosity = -2;
            break;
        case 'h':
            print_usage();
            return 0;
        case 'V':
            ek_print_version();
            return 0;
        default:
            return ek_option_error("serve", c, argv);
        }
    }
    if (optind < argc)
        return ek_usage_error("serve", "unexpected argument '%s'",
                              argv[optind]);
    return -1;
}

/* Resolves --io to a model this build can run; returns it, or NULL after
 * printing why with *status set. */
static const struct ek_model *pick_model(const char *io, int *status)
{
    if (io == NULL || strcmp(io, "auto") == 0) {
        const struct ek_model *m = ek_model_auto();
        const char *why = ek_model_unavailable(ek_model_find("uring"));
        ek_log(EK_LOG_DEBUG, "--io auto: using %s (uring: %s)", m->name,
               why != NULL ? why : "available, but not faster here");
        return m;
    }
    const struct ek_model *m = ek_model_find(io);
    if (m == NULL) {
        *status = ek_usage_error("serve",
                                 "unknown I/O model '%s' (try --io list)", io);
        return NULL;
    }
    const char *why = ek_model_unavailable(m);
    if (why != NULL) {
        ek_warnx("serve: --io %s: %s", io, why);
        *status = EX_UNAVAILABLE;
        return NULL;
    }
    return m;
}

/* Servers for many connections want many descriptors (as Go's runtime
 * does, ek_fd_limit_raise). */
static void raise_fd_limit(void)
{
    unsigned long long from, to;
    if (ek_fd_limit_raise(&from, &to))
        ek_log(EK_LOG_DEBUG, "raised the open-file limit from %llu to %llu",
               from, to);
}

static void log_summary(struct ek_server *srv)
{
    struct ek_stats_view v;
    ek_stats_snapshot(srv->stats, &v);
    ek_log(EK_LOG_INFO,
           "exit: %llu connections served, %llu refused, %llu bytes in, "
           "%llu bytes out",
           (unsigned long long)v.accepted,
           (unsigned long long)v.refused_limit + v.refused_fd + v.refused_acl +
               v.refused_proxy_untrusted,
           (unsigned long long)v.bytes_in, (unsigned long long)v.bytes_out);
}

/* A port below 1024 among the addresses to bind: the one reason to start
 * as root that --user exists for. */
static unsigned privileged_port(const struct serve_options *o)
{
    for (size_t i = 0; i < o->nlisten; i++)
        if (o->listen[i].kind == EK_ADDR_INET && o->listen[i].port > 0 &&
            o->listen[i].port < 1024)
            return o->listen[i].port;
    return 0;
}

/* inetd mode. Under inetd and xinetd stderr is the client's socket too:
 * then nothing is logged, so that no log line can enter the echo. */
static int serve_inetd(void)
{
    struct stat in, err;
    if (fstat(STDIN_FILENO, &in) == 0 && fstat(STDERR_FILENO, &err) == 0 &&
        S_ISSOCK(in.st_mode) && in.st_dev == err.st_dev &&
        in.st_ino == err.st_ino)
        ek_log_set_level(EK_LOG_OFF);
    signal(SIGPIPE, SIG_IGN);
    return ek_serve_inetd() < 0 ? EX_IOERR : 0;
}

/* Where to listen: systemd's sockets, --listen, or the default. Returns
 * -1 to go on, else the exit status. */
static int choose_listeners(struct serve_options *o, unsigned *sd_fds)
{
    const char *why;
    int n = ek_sd_listen_fds(&why);
    if (n < 0) {
        ek_warnx("socket activation: %s", why);
        return EX_CONFIG;
    }
    *sd_fds = (unsigned)n;
    if (n > 0)
        ek_log(EK_LOG_INFO, "socket activation: %d socket%s from systemd", n,
               n == 1 ? "" : "s");
    if (o->nlisten == 0 && n == 0) {
        int rc = add_listen(o, EK_DEFAULT_LISTEN);
        if (rc != 0)
            return rc;
    }
    for (size_t i = 0; o->udp && i < o->nlisten; i++) {
        if (o->listen[i].kind == EK_ADDR_UNIX)
            return ek_usage_error("serve",
                                  "--udp: unix:%s is a stream "
                                  "socket; UDP needs HOST:PORT",
                                  o->listen[i].path);
        o->listen[i].udp = true;
    }
    unsigned port = privileged_port(o);
    if (port != 0 && o->user == NULL && ek_running_as_root())
        return ek_usage_error(
            "serve",
            "refusing to serve as root only to bind port %u: add --user "
            "USER to drop root once bound (--user root to keep it), or "
            "use socket activation or CAP_NET_BIND_SERVICE",
            port);
    return -1;
}

/* The TLS options against the listeners and the model. Returns -1 to go
 * on, else the exit status. */
static int check_tls(const struct serve_options *o, const struct ek_model *m)
{
    bool listener = false;
    for (size_t i = 0; i < o->nlisten; i++) {
        if (o->listen[i].tls && o->listen[i].udp)
            return ek_usage_error("serve",
                                  "--udp: tls:%s:%u is TLS, over TCP only",
                                  o->listen[i].host, o->listen[i].port);
        listener |= o->listen[i].tls;
    }
    if (!listener && !o->tls_asked)
        return -1;
#ifndef EK_HAVE_TLS
    ek_warnx("serve: TLS: %s", EK_TLS_UNAVAILABLE);
    return EX_UNAVAILABLE;
#endif
    if (!listener)
        return ek_usage_error("serve",
                              "the TLS options (--tls-*, --ktls, "
                              "--max-handshakes) are for tls: listeners, and "
                              "there is none (--listen tls:HOST:PORT)");
    if (o->tls.ncerts == 0)
        return ek_usage_error("serve", "tls: listeners need --tls-cert FILE "
                                       "and --tls-key FILE");
    if (o->nkeys != o->tls.ncerts)
        return ek_usage_error("serve",
                              "each --tls-cert needs its --tls-key (%zu "
                              "certificate%s, %zu key%s)",
                              o->tls.ncerts, o->tls.ncerts == 1 ? "" : "s",
                              o->nkeys, o->nkeys == 1 ? "" : "s");
#ifdef EK_HAVE_TLS
    const char *why =
        o->tls.ciphers != NULL ? ek_tls_ciphers_check(o->tls.ciphers) : NULL;
    if (why != NULL)
        return ek_usage_error("serve", "invalid --tls-ciphers '%s': %s",
                              o->tls.ciphers, why);
#endif
    if (!ek_model_has(m, EK_CAP_TLS)) {
        struct text tls = {.len = 0};
        add_model_names(&tls, EK_CAP_TLS, 0, " or ");
        ek_warnx("serve: --io %s does not serve tls: listeners yet; use %s",
                 m->name, tls.buf);
        return EX_UNAVAILABLE;
    }
    return -1;
}

/* Says what UDP will answer, when there is UDP to serve. */
static void log_udp_limits(const struct ek_server *srv)
{
    const struct ek_udp_limits *u = &srv->cfg->udp;
    bool any = false;
    for (size_t i = 0; i < srv->nlisteners; i++)
        any |= srv->listeners[i].udp;
    if (!any)
        return;
    char rate[32] = "no limit", total[32] = "no limit";
    if (u->rate > 0)
        snprintf(rate, sizeof(rate), "%llu/s", (unsigned long long)u->rate);
    if (u->total_rate > 0)
        snprintf(total, sizeof(total), "%llu/s",
                 (unsigned long long)u->total_rate);
    ek_log(EK_LOG_INFO,
           "udp: answering %s per source address, %s in all, %s source "
           "ports below 1024 (--udp-rate, --udp-rate-total, --udp-low-ports)",
           rate, total, u->low_ports ? "including" : "not");
}

/* The exit status for a failure (-errno) of the server's set-up or run:
 * the one place where the server's errors become sysexits(3) codes. */
static int exit_status_for(int err)
{
    switch (err) {
    case -ENXIO: /* a name resolves to no address */
        return EX_NOHOST;
    case -ENOTSOCK: /* systemd passed a socket we cannot serve */
        return EX_CONFIG;
    case -ESRCH: /* --user: no such user */
        return EX_NOUSER;
    case -EACCES:
    case -EPERM:
        return EX_NOPERM;
    default:
        return EX_OSERR;
    }
}

/* Binds, drops privileges, serves, cleans up. Returns the exit status. */
static int run_server(struct serve_options *o, struct ek_config *cfg)
{
    struct ek_server srv;
    struct ek_metrics *metrics = NULL;
    struct ek_pidfile pidfile = {.fd = -1};

    if (o->pidfile != NULL) {
        int err = ek_pidfile_open(&pidfile, o->pidfile);
        if (err < 0)
            return err == -ENOMEM ? EX_OSERR : EX_CANTCREAT;
    }
    int err = ek_server_open(&srv, cfg);
    if (err < 0) {
        ek_pidfile_close(&pidfile);
        return exit_status_for(err);
    }
    err = ek_listeners_open(&srv);
    if (err < 0) {
        ek_listeners_free(&srv);
        ek_server_close(&srv);
        ek_pidfile_close(&pidfile);
        return exit_status_for(err);
    }
    if (o->metrics)
        err = ek_metrics_start(&srv, cfg->model->name, &o->metrics_addr,
                               &metrics);
    if (err == 0 && o->user != NULL)
        err = ek_drop_privileges(o->user);
    if (err == 0) {
        ek_listeners_announce(&srv);
        ek_metrics_announce(metrics);
        log_udp_limits(&srv);
        ek_log(EK_LOG_INFO,
               "echokit %s serving with %s x %u on %zu listener%s (max-conns "
               "%llu, max-queue %zu bytes)",
               EK_VERSION, cfg->model->name, cfg->threads, srv.nlisteners,
               srv.nlisteners == 1 ? "" : "s",
               (unsigned long long)cfg->max_conns, cfg->max_queue);
        ek_sd_notifyf("READY=1\nSTATUS=serving with %s x %u on %zu "
                      "listener%s",
                      cfg->model->name, cfg->threads, srv.nlisteners,
                      srv.nlisteners == 1 ? "" : "s");
        err = cfg->model->run(&srv, cfg->model);
        if (srv.abandoned) { /* threads still use it: no clean-up */
            int forced = ek_server_exit_status(&srv);
            _exit(forced != 0 ? forced : EX_SOFTWARE);
        }
        log_summary(&srv);
    }
    ek_metrics_stop(metrics); /* it reads srv's counters */
    int status = err < 0 ? exit_status_for(err) : ek_server_exit_status(&srv);
    ek_listeners_free(&srv);
    ek_server_close(&srv);
    ek_pidfile_close(&pidfile);
    return status;
}

int ek_cmd_serve(int argc, char **argv)
{
    struct serve_options o = {
        .max_queue = EK_DEFAULT_MAX_QUEUE,
        .drain_ms = EK_DEFAULT_DRAIN_MS,
        .udp_limits = {.rate = EK_DEFAULT_UDP_RATE,
                       .total_rate = EK_DEFAULT_UDP_RATE_TOTAL},
    };
    int status = parse_options(argc, argv, &o);
    if (status >= 0) {
        free_options(&o);
        return status;
    }
    ek_log_set_level(EK_LOG_INFO + o.verbosity);
    ek_log_set_json(o.log_json);

    if (o.proxy_from.nallow > 0 && !o.proxy_protocol) {
        free_options(&o);
        return ek_usage_error("serve", "--proxy-from applies to "
                                       "--proxy-protocol only");
    }
    /* Without --proxy-from, only a proxy on this host is trusted: anyone
     * who can reach the port could otherwise claim any client address
     * and pass --allow/--deny. */
    if (o.proxy_protocol && o.proxy_from.nallow == 0 &&
        (add_cidr(&o.proxy_from, "proxy-from", true, "127.0.0.0/8") != 0 ||
         add_cidr(&o.proxy_from, "proxy-from", true, "::1") != 0)) {
        free_options(&o);
        return EX_OSERR;
    }
    if (o.inetd && o.tls_asked) {
        free_options(&o);
        return ek_usage_error("serve", "--inetd serves plain TCP: the --tls-* "
                                       "options do not apply");
    }
    if (o.inetd && o.proxy_protocol) {
        free_options(&o);
        return ek_usage_error("serve", "--proxy-protocol does not apply to "
                                       "--inetd (inetd sends no header)");
    }
    if (o.inetd) {
        free_options(&o);
        return serve_inetd();
    }
    if (o.io != NULL && strcmp(o.io, "list") == 0) {
        print_models();
        free_options(&o);
        return 0;
    }
    const struct ek_model *model = pick_model(o.io, &status);
    if (model == NULL) {
        free_options(&o);
        return status;
    }
    if (o.threads > 1 && !ek_model_has(model, EK_CAP_EVENT_LOOP)) {
        free_options(&o);
        struct text loops = {.len = 0};
        add_model_names(&loops, EK_CAP_EVENT_LOOP, 0, ", ");
        return ek_usage_error("serve",
                              "--threads applies to the event-loop models "
                              "(%s), not to --io %s",
                              loops.buf, model->name);
    }
    unsigned sd_fds = 0;
    status = choose_listeners(&o, &sd_fds);
    if (status < 0)
        status = check_tls(&o, model);
    if (status >= 0) {
        free_options(&o);
        return status;
    }
    struct ek_config cfg = {
        .listen = o.listen,
        .nlisten = o.nlisten,
        .sd_fds = sd_fds,
        .model = model,
        .threads = o.threads ? (unsigned)o.threads : 1,
        .max_conns = o.max_conns ? o.max_conns : model->default_max_conns,
        .max_queue = (size_t)o.max_queue,
        .drain_timeout_ms = o.drain_ms,
        .idle_timeout_ms = o.idle_ms,
        .acl = &o.acl,
        .proxy_protocol = o.proxy_protocol,
        .proxy_from = &o.proxy_from,
        .udp = o.udp_limits,
        .handshake_timeout_ms =
            o.handshake_ms > 0 ? o.handshake_ms : EK_TLS_HANDSHAKE_MS,
        .max_handshakes =
            o.max_handshakes > 0 ? o.max_handshakes : EK_TLS_MAX_HANDSHAKES,
    };
    if (o.threads_auto_cpus > EK_MAX_LOOPS)
        ek_log(EK_LOG_WARN,
               "--threads auto: %ld CPUs, running %d loops (the most "
               "echokit runs)",
               o.threads_auto_cpus, EK_MAX_LOOPS);
    if (ek_model_has(model, EK_CAP_ONE_AT_A_TIME) && o.max_conns > 1)
        ek_log(EK_LOG_WARN,
               "--max-conns has no effect with --io %s: it serves one "
               "connection at a time",
               model->name);
    if (o.user == NULL && ek_running_as_root())
        ek_log(EK_LOG_DEBUG, "running as root; --user USER drops root once "
                             "the sockets are bound");
    raise_fd_limit();
#ifdef EK_HAVE_TLS
    /* Before --user drops root: key files are often readable by root only
     * (a reload by SIGHUP then needs them readable by USER). */
    if (o.tls.ncerts > 0) {
        int err = ek_tls_server_new(&o.tls, &cfg.tls);
        if (err < 0) {
            free_options(&o);
            return err == -ENOMEM ? EX_OSERR : EX_CONFIG;
        }
    }
#endif
    status = run_server(&o, &cfg);
#ifdef EK_HAVE_TLS
    ek_tls_server_free(cfg.tls);
#endif
    free_options(&o);
    return status;
}
