/*
 * echokit serve: options, then ek_server_open, then the chosen model.
 */
#include "ek_cli.h"
#include "ek_config.h"
#include "ek_log.h"
#include "ek_model.h"
#include "ek_server.h"
#include "ek_util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sysexits.h>
#include <unistd.h>

#define EK_DEFAULT_LISTEN "localhost:50000"
#define EK_DEFAULT_MAX_QUEUE (256 * 1024)
#define EK_DEFAULT_DRAIN_MS 10000

static const char usage_text[] =
    "usage: echokit serve [options]\n"
    "\n"
    "Echo back everything each client sends, in order, until it closes\n"
    "(RFC 862 over TCP).\n"
    "\n"
    "  -l, --listen ADDR         listen on ADDR; repeatable (default "
    "localhost:50000,\n"
    "                            every address localhost resolves to).\n"
    "                            HOST:PORT, [IPV6]:PORT, *:PORT, unix:PATH,\n"
    "                            unix:@NAME (abstract). Port 0 picks a free "
    "port.\n"
    "  -i, --io MODEL            iterative, thread, process, select, poll, "
    "epoll,\n"
    "                            kqueue, uring or auto (default); `--io "
    "list` shows\n"
    "                            which ones this build can run\n"
    "  -c, --max-conns N         connections open at once; more are "
    "accepted and\n"
    "                            closed at once (default 10000; thread and "
    "process:\n"
    "                            1000; iterative: always 1)\n"
    "  -Q, --max-queue BYTES     per connection, bytes read but not yet "
    "echoed;\n"
    "                            reading pauses when full (default 256K)\n"
    "  -d, --drain-timeout SECS  after SIGINT/SIGTERM, how long open "
    "connections\n"
    "                            may go on (default 10)\n"
    "  -t, --threads N|auto      event loops, each on its own thread with its "
    "own\n"
    "                            SO_REUSEPORT listeners (default 1; auto: one "
    "per\n"
    "                            CPU); select, poll, epoll, kqueue, uring "
    "only\n"
    "  -v, --verbose             more log lines on stderr (-vv: more "
    "still)\n"
    "  -q, --quiet               errors only\n"
    "  -h, --help                this text\n"
    "  -V, --version             print the version\n"
    "\n"
    "stdout gets one line per listener once all are bound: \"listening on "
    "ADDR\".\n"
    "Logs go to stderr. SIGINT/SIGTERM drain; a second one exits at once.\n"
    "\n"
    "Exit status: 0 after a drain; 64 bad usage; 68 host not found; 69 "
    "model not\n"
    "available; 71 system error (address in use, ...); 77 permission "
    "denied;\n"
    "128+N when a second signal N forced the exit.\n";

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
}

struct serve_options {
    struct ek_addr_spec *listen;
    size_t nlisten;
    const char *io;
    uint64_t max_conns; /* 0: the model's default */
    uint64_t max_queue;
    int64_t drain_ms;
    uint64_t threads;
    int verbosity;
};

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

/* Returns -1 when the options are fine and the server should run, else
 * the exit status. */
static int parse_options(int argc, char **argv, struct serve_options *o)
{
    static const struct option longopts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"io", required_argument, NULL, 'i'},
        {"max-conns", required_argument, NULL, 'c'},
        {"max-queue", required_argument, NULL, 'Q'},
        {"drain-timeout", required_argument, NULL, 'd'},
        {"threads", required_argument, NULL, 't'},
        {"verbose", no_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    const char *why;
    int c, rc;

    opterr = 0;
    while ((c = getopt_long(argc, argv, ":l:i:c:Q:d:t:vqhV", longopts, NULL)) !=
           -1) {
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
            if (strcmp(optarg, "auto") == 0) {
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                o->threads = n > 0 ? (uint64_t)n : 1;
            } else if (ek_parse_uint(optarg, 1, 256, &o->threads, &why) < 0) {
                return ek_usage_error("serve", "invalid --threads '%s': %s",
                                      optarg, why);
            }
            break;
        case 'v':
            o->verbosity++;
            break;
        case 'q':
            o->verbosity = -2;
            break;
        case 'h':
            fputs(usage_text, stdout);
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
    if (o->nlisten == 0 && (rc = add_listen(o, EK_DEFAULT_LISTEN)) != 0)
        return rc;
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

/* Servers for many connections want many descriptors: raise the soft limit
 * to the hard one, as Go's runtime does. Lower the hard limit to bound
 * echokit (ulimit -Hn, LimitNOFILE=). */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rlim_t old = rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) == 0)
        ek_log(EK_LOG_DEBUG, "raised the open-file limit from %llu to %llu",
               (unsigned long long)old, (unsigned long long)rl.rlim_cur);
}

static void log_summary(struct ek_server *srv)
{
    struct ek_stats *s = srv->stats;
    ek_log(EK_LOG_INFO,
           "exit: %llu connections served, %llu refused, %llu bytes in, "
           "%llu bytes out",
           (unsigned long long)ek_stat_get(&s->accepted),
           (unsigned long long)(ek_stat_get(&s->refused_limit) +
                                ek_stat_get(&s->refused_fd)),
           (unsigned long long)ek_stat_get(&s->bytes_in),
           (unsigned long long)ek_stat_get(&s->bytes_out));
}

int ek_cmd_serve(int argc, char **argv)
{
    struct serve_options o = {.max_queue = EK_DEFAULT_MAX_QUEUE,
                              .drain_ms = EK_DEFAULT_DRAIN_MS};
    int status = parse_options(argc, argv, &o);
    if (status >= 0) {
        free(o.listen);
        return status;
    }
    ek_log_set_level(EK_LOG_INFO + o.verbosity);

    if (o.io != NULL && strcmp(o.io, "list") == 0) {
        print_models();
        free(o.listen);
        return 0;
    }
    const struct ek_model *model = pick_model(o.io, &status);
    if (model == NULL) {
        free(o.listen);
        return status;
    }

    if (o.threads > 1 && model->backend == NULL && !model->multi_loop) {
        free(o.listen);
        return ek_usage_error("serve",
                              "--threads applies to the event-loop models "
                              "(select, poll, epoll, kqueue, uring), not to "
                              "--io %s",
                              model->name);
    }
    struct ek_config cfg = {
        .listen = o.listen,
        .nlisten = o.nlisten,
        .model = model,
        .threads = o.threads ? (unsigned)o.threads : 1,
        .max_conns = o.max_conns ? o.max_conns : model->default_max_conns,
        .max_queue = (size_t)o.max_queue,
        .drain_timeout_ms = o.drain_ms,
    };
    if (model->run == ek_run_iterative && o.max_conns > 1)
        ek_log(EK_LOG_WARN, "--max-conns has no effect with --io iterative: "
                            "it serves one connection at a time");
    raise_fd_limit();

    struct ek_server srv;
    status = ek_server_open(&srv, &cfg);
    if (status == 0) {
        ek_log(EK_LOG_INFO,
               "echokit %s serving with %s x %u on %zu listener%s (max-conns "
               "%llu, max-queue %zu bytes)",
               EK_VERSION, model->name, cfg.threads, srv.nlisteners,
               srv.nlisteners == 1 ? "" : "s",
               (unsigned long long)cfg.max_conns, cfg.max_queue);
        status = model->run(&srv, model);
        log_summary(&srv);
        ek_server_close(&srv);
    }
    free(o.listen);
    return status;
}
