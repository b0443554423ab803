/*
 * echokit ping: ping(8) over one TCP connection to an echo service.
 *
 * Request k is SIZE bytes: "ekping01", k as 8 big-endian bytes, then the
 * pattern of stream k (ek_pattern.h). Requests go out on a fixed schedule
 * (start + k * interval, to the microsecond), whether or not earlier
 * replies came back, so a slow reply delays no later request, as long as
 * fewer than --inflight await theirs; -i 0 is ping-pong (ping -f): each
 * request once the reply before it came, or was reported missing. TCP
 * keeps order, so replies come back in order: a reply later than -W is
 * reported as lost at the time, and as "late" if it turns up after all.
 *
 * --udp: the same requests as datagrams. UDP may lose, duplicate and
 * reorder them, so each reply is matched to its request by the sequence
 * number it carries, and the summary adds the replies that came out of
 * order and the duplicates.
 */
#include "ek_cli.h"
#include "ek_sockopt.h"
#include "ek_backend.h"
#include "ek_conn.h"
#include "ek_log.h"
#include "ek_net.h"
#include "ek_pattern.h"
#include "ek_platform.h"
#include "ek_util.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#define EK_PING_MAGIC "ekping01"
#define EK_PING_HEADER 16
#define EK_PING_DEFAULT_SIZE 64
#define EK_PING_MAX_SIZE (1 << 20)
/* Requests remembered while their replies are outstanding: at the default
 * interval that is over 17 minutes of silence; also the most --inflight
 * takes. */
#define EK_PING_WINDOW 1024
/* Over UDP at most this many are in flight by default: a burst larger
 * than the server's socket buffer would only measure the buffer (on
 * loopback about 270 small datagrams fit). */
#define EK_PING_UDP_FLIGHT 64

static const char usage_text[] =
    "usage: echokit ping [options] [HOST:PORT]\n"
    "\n"
    "Measure round trips to an echo service over one TCP connection, like "
    "ping(8).\n"
    "Each request carries its sequence number and a pattern; every reply "
    "is checked.\n"
    "\n"
    "  -c, --count N         stop after N requests (default: until "
    "interrupted)\n"
    "  -i, --interval SECS   time between requests (default 1; to the "
    "microsecond;\n"
    "                        0: each request once the reply before it came, "
    "like\n"
    "                        ping -f)\n"
    "      --inflight N      at most N requests awaiting their reply, 1 to "
    "1024\n"
    "                        (default 1 with -i 0, otherwise 1024, 64 over "
    "UDP)\n"
    "  -s, --size BYTES      request size, 16 to 1M (default 64)\n"
    "  -W, --timeout SECS    wait this long for each reply, and for the "
    "connect\n"
    "                        (default 2)\n"
    "  -u, --udp             over UDP (also: udp:HOST:PORT); sizes up to "
    "65507;\n"
    "                        reordered and duplicated replies are "
    "reported\n"
    "  -q, --quiet           print only the summary\n";
/* After the TLS options. */
static const char usage_tail[] =
    "  -h, --help            this text\n"
    "\n"
    "Over TLS the handshake is done before the first request: round trips "
    "are the\n"
    "echo's alone.\n"
    "Exit status: 0 every reply came back intact; 1 a reply was lost, late "
    "or\n"
    "corrupted; 64 bad usage; 68 host not found; 69 cannot connect (or no "
    "TLS in\n"
    "this build); 75 timed out connecting; 76 TLS handshake failed; 78 "
    "unusable\n"
    "--tls-cert, --tls-key or --tls-ca.\n";

static volatile sig_atomic_t interrupted;

static void on_sigint(int signo)
{
    (void)signo;
    interrupted = 1;
}

struct ping_options {
    const char *server;
    uint64_t count; /* 0: until interrupted */
    int64_t interval_us;
    uint64_t inflight; /* 0 until the options are read: the default */
    uint64_t size;
    int64_t timeout_ms;
    bool quiet;
    bool udp;
    struct ek_client_tls tls;
    struct ek_sockopts sock;
};

struct ping_state {
    const struct ping_options *o;
    struct ek_client_session s; /* socket, transport (not --udp), peer */
    uint64_t sent, received, late, corrupted;
    uint64_t next_reply; /* the seq the next complete reply has */
    int64_t sent_ns[EK_PING_WINDOW];
    uint64_t deadline_reported; /* replies before this were reported lost */
    double rtt_min, rtt_max, rtt_sum, rtt_sum2; /* ms */
    unsigned char *req, *reply;                 /* SIZE bytes each */
    size_t reply_len;
    bool broken;
    /* --udp: replies matched by sequence number. */
    uint64_t got_seq[EK_PING_WINDOW]; /* seq + 1 of the reply held there */
    uint64_t reordered, duplicates, highest;
    uint64_t lowest_open; /* below: answered or reported overdue */
};

static void build_request(unsigned char *buf, size_t size, uint64_t seq)
{
    memcpy(buf, EK_PING_MAGIC, 8);
    for (int i = 0; i < 8; i++)
        buf[8 + i] = (unsigned char)(seq >> (56 - 8 * i));
    ek_pattern_fill(seq, EK_PING_HEADER, buf + EK_PING_HEADER,
                    size - EK_PING_HEADER);
}

/* What a failed read or write (-errno) says. */
static const char *send_error(const struct ping_state *st, ssize_t err)
{
    const char *tls = err == -EPROTO ? ek_client_tls_error(&st->s.conn) : NULL;
    return tls != NULL ? tls : strerror((int)-err);
}

/* Sends one whole request. Requests are small and the socket buffer is
 * empty unless the server stalls, so a short wait for POLLOUT is fine. */
static int send_request(struct ping_state *st, uint64_t seq)
{
    size_t size = (size_t)st->o->size, off = 0;
    build_request(st->req, size, seq);
    st->sent_ns[seq % EK_PING_WINDOW] = ek_now_ns();
    while (off < size) {
        struct iovec iov = {.iov_base = st->req + off, .iov_len = size - off};
        ssize_t n =
            ek_conn_tp(&st->s.conn)->writev(&st->s.conn, st->s.fd, &iov, 1);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        if (n == -EAGAIN) {
            unsigned blocked = ek_conn_tp(&st->s.conn)->blocked(&st->s.conn);
            struct pollfd p = {
                .fd = st->s.fd,
                .events =
                    (short)(POLLOUT | (blocked & EK_EV_READ ? POLLIN : 0))};
            if (poll(&p, 1, (int)st->o->timeout_ms) > 0 || errno == EINTR)
                continue;
            n = -ETIMEDOUT;
        }
        ek_warnx("ping: %s: send: %s", st->s.peer, send_error(st, n));
        return -1;
    }
    st->sent++;
    return 0;
}

static void record_rtt(struct ping_state *st, double ms)
{
    if (st->received == 1 || ms < st->rtt_min)
        st->rtt_min = ms;
    if (ms > st->rtt_max)
        st->rtt_max = ms;
    st->rtt_sum += ms;
    st->rtt_sum2 += ms * ms;
}

/* A whole reply is in st->reply: check it and report it. */
static void on_reply(struct ping_state *st)
{
    uint64_t seq = st->next_reply++;
    size_t size = (size_t)st->o->size;
    double ms = (double)(ek_now_ns() - st->sent_ns[seq % EK_PING_WINDOW]) / 1e6;

    build_request(st->req, size, seq);
    if (memcmp(st->reply, st->req, size) != 0) {
        size_t i = 0;
        while (st->reply[i] == st->req[i])
            i++;
        st->corrupted++;
        printf("%zu bytes from %s: seq=%llu CORRUPTED (byte %zu differs)\n",
               size, st->s.peer, (unsigned long long)seq, i);
        return;
    }
    st->received++;
    record_rtt(st, ms);
    bool late = seq < st->deadline_reported;
    st->late += late;
    if (!st->o->quiet)
        printf("%zu bytes from %s: seq=%llu time=%.3f ms%s\n", size, st->s.peer,
               (unsigned long long)seq, ms, late ? " (late)" : "");
}

/* --udp: the datagram in st->reply (n bytes) answers which request? */
static void on_datagram(struct ping_state *st, size_t n)
{
    size_t size = (size_t)st->o->size;
    uint64_t seq = 0;
    bool framed =
        n >= EK_PING_HEADER && memcmp(st->reply, EK_PING_MAGIC, 8) == 0;
    for (int i = 0; framed && i < 8; i++)
        seq = seq << 8 | st->reply[8 + i];
    if (!framed || seq >= st->sent || st->sent - seq > EK_PING_WINDOW) {
        st->corrupted++;
        printf("%zu bytes from %s: not a reply to any request in flight\n", n,
               st->s.peer);
        return;
    }
    build_request(st->req, size, seq);
    if (n != size || memcmp(st->reply, st->req, size) != 0) {
        st->corrupted++;
        printf("%zu bytes from %s: seq=%llu CORRUPTED\n", n, st->s.peer,
               (unsigned long long)seq);
        return;
    }
    uint64_t *slot = &st->got_seq[seq % EK_PING_WINDOW];
    if (*slot == seq + 1) {
        st->duplicates++;
        if (!st->o->quiet)
            printf("%zu bytes from %s: seq=%llu (DUP!)\n", size, st->s.peer,
                   (unsigned long long)seq);
        return;
    }
    *slot = seq + 1;
    double ms = (double)(ek_now_ns() - st->sent_ns[seq % EK_PING_WINDOW]) / 1e6;
    bool reordered = st->received > 0 && seq < st->highest;
    if (seq > st->highest || st->received == 0)
        st->highest = seq;
    st->received++;
    st->reordered += reordered;
    record_rtt(st, ms);
    bool late = seq < st->deadline_reported;
    st->late += late;
    if (!st->o->quiet)
        printf("%zu bytes from %s: seq=%llu time=%.3f ms%s%s\n", size,
               st->s.peer, (unsigned long long)seq, ms,
               reordered ? " (out of order)" : "", late ? " (late)" : "");
}

static int read_datagrams(struct ping_state *st)
{
    for (;;) {
        ssize_t n = recv(st->s.fd, st->reply, (size_t)st->o->size + 1,
                         MSG_DONTWAIT | EK_MSG_TRUNC);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n < 0 && errno == ECONNREFUSED) {
            ek_warnx("ping: %s: connection refused (nothing answers on that "
                     "UDP port)",
                     st->s.peer);
            return -1;
        }
        if (n < 0) {
            ek_warnx("ping: %s: %s", st->s.peer, strerror(errno));
            return -1;
        }
        on_datagram(st, (size_t)n);
    }
}

/* Reads replies until none is ready (TLS: until OpenSSL holds none
 * either, so no reply waits for a readiness that will not come). */
static int read_replies(struct ping_state *st)
{
    if (st->o->udp)
        return read_datagrams(st);
    size_t size = (size_t)st->o->size;
    for (;;) {
        ssize_t n = ek_conn_tp(&st->s.conn)
                        ->read(&st->s.conn, st->s.fd, st->reply + st->reply_len,
                               size - st->reply_len);
        if (n == -EAGAIN)
            return 0;
        if (n <= 0) {
            ek_warnx("ping: %s: %s", st->s.peer,
                     n == 0 ? "the server closed the connection"
                            : send_error(st, n));
            return -1;
        }
        st->reply_len += (size_t)n;
        if (st->reply_len == size) {
            st->reply_len = 0;
            on_reply(st);
        }
    }
}

/* Reports requests whose reply is overdue, once each. */
static void report_overdue(struct ping_state *st, int64_t now)
{
    int64_t timeout_ns = st->o->timeout_ms * 1000000;
    if (!st->o->udp && st->deadline_reported < st->next_reply)
        st->deadline_reported = st->next_reply;
    /* Signed: `now` may predate a request sent after it was read. */
    while (st->deadline_reported < st->sent &&
           now - st->sent_ns[st->deadline_reported % EK_PING_WINDOW] >=
               timeout_ns) {
        uint64_t seq = st->deadline_reported;
        bool answered =
            st->o->udp && st->got_seq[seq % EK_PING_WINDOW] == seq + 1;
        if (!st->o->quiet && !answered)
            printf("no reply from %s for seq=%llu within %.1f s\n", st->s.peer,
                   (unsigned long long)seq, (double)st->o->timeout_ms / 1000.0);
        st->deadline_reported++;
    }
}

static void print_summary(const struct ping_state *st, int64_t elapsed_ms)
{
    uint64_t lost = st->sent - st->received - st->corrupted;
    printf("\n--- %s echokit ping statistics ---\n", st->s.peer);
    printf("%llu sent, %llu received, %.1f%% loss, %llu corrupted, %llu "
           "late, time %lld ms\n",
           (unsigned long long)st->sent, (unsigned long long)st->received,
           st->sent ? 100.0 * (double)lost / (double)st->sent : 0.0,
           (unsigned long long)st->corrupted, (unsigned long long)st->late,
           (long long)elapsed_ms);
    if (st->o->udp)
        printf("%llu out of order, %llu duplicates\n",
               (unsigned long long)st->reordered,
               (unsigned long long)st->duplicates);
    if (st->received > 0) {
        double n = (double)st->received, avg = st->rtt_sum / n;
        double var = st->rtt_sum2 / n - avg * avg;
        printf("rtt min/avg/max/mdev = %.3f/%.3f/%.3f/%.3f ms\n", st->rtt_min,
               avg, st->rtt_max, sqrt(var > 0 ? var : 0));
    }
    fflush(stdout);
}

/* All sent (count reached or interrupted) and nothing more to wait for. */
static bool done_waiting(const struct ping_state *st, int64_t now)
{
    if (st->o->udp ? st->received + st->corrupted >= st->sent
                   : st->next_reply >= st->sent)
        return true;
    int64_t last = st->sent_ns[(st->sent - 1) % EK_PING_WINDOW];
    return now - last >= st->o->timeout_ms * 1000000;
}

/* The oldest request still waited for: a window slot is reused only past
 * it. TCP answers in order; UDP in any order, or not at all. */
static uint64_t settled(struct ping_state *st)
{
    if (!st->o->udp)
        return st->next_reply;
    while (
        st->lowest_open < st->sent &&
        (st->lowest_open < st->deadline_reported ||
         st->got_seq[st->lowest_open % EK_PING_WINDOW] == st->lowest_open + 1))
        st->lowest_open++;
    return st->lowest_open;
}

/* Whether another request may go now that `sent` are out: fewer than
 * --inflight await their reply (one reported missing awaits no more),
 * and the window still holds the send time of every reply that may come
 * (a full one waits rather than forget them). */
static bool may_send(struct ping_state *st)
{
    uint64_t oldest = settled(st);
    uint64_t awaited =
        st->deadline_reported > oldest ? st->deadline_reported : oldest;
    return st->sent - awaited < st->o->inflight &&
           st->sent - oldest < EK_PING_WINDOW;
}

static void ping_loop(struct ping_state *st)
{
    const struct ping_options *o = st->o;
    int64_t start = ek_now_ns(), next_send = start;
    bool sending = true;

    ek_timer_slack_min(); /* -i to the microsecond, not Linux's 50 us late */
    while (!st->broken) {
        int64_t now = ek_now_ns();
        if (interrupted || (o->count != 0 && st->sent >= o->count))
            sending = false;
        if (sending && now >= next_send && may_send(st)) {
            if (send_request(st, st->sent) < 0) {
                st->broken = true;
                break;
            }
            next_send = start + (int64_t)st->sent * o->interval_us * 1000;
        }
        report_overdue(st, now);
        if (!sending && (interrupted > 0 || done_waiting(st, now)))
            break;

        /* Wait for a reply until the next send or reply deadline. */
        int64_t wake = sending && may_send(st) ? next_send : now + 1000000000;
        uint64_t oldest = o->udp ? st->deadline_reported : st->next_reply;
        if (oldest < st->sent) {
            int64_t due =
                st->sent_ns[oldest % EK_PING_WINDOW] + o->timeout_ms * 1000000;
            if (due > now && due < wake)
                wake = due;
        }
        unsigned blocked =
            st->o->udp ? 0 : ek_conn_tp(&st->s.conn)->blocked(&st->s.conn);
        struct pollfd p = {
            .fd = st->s.fd,
            .events = (short)(POLLIN | (blocked & EK_EV_WRITE ? POLLOUT : 0))};
        int rc = ek_poll_ns(&p, 1, wake > now ? wake - now : 0);
        if (rc > 0 && read_replies(st) < 0)
            st->broken = true;
    }
    print_summary(st, (ek_now_ns() - start) / 1000000);
}

/* The options, for getopt_long and for `echokit completion` (ek_cli.h). */
enum { OPT_INFLIGHT = 1000 }; /* below the clients' shared options */

const struct option ek_ping_options[] = {
    {"count", required_argument, NULL, 'c'},
    {"interval", required_argument, NULL, 'i'},
    {"inflight", required_argument, NULL, OPT_INFLIGHT},
    {"size", required_argument, NULL, 's'},
    {"timeout", required_argument, NULL, 'W'},
    {"quiet", no_argument, NULL, 'q'},
    {"udp", no_argument, NULL, 'u'},
    {"help", no_argument, NULL, 'h'},
    EK_CLIENT_TLS_LONGOPTS,
    EK_CLIENT_SOCK_LONGOPTS,
    {NULL, 0, NULL, 0},
};
const char ek_ping_shortopts[] = ":c:i:s:W:quh";

static int parse_options(int argc, char **argv, struct ping_options *o)
{
    const char *why;
    int c, rc;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ek_ping_shortopts, ek_ping_options,
                            NULL)) != -1) {
        switch (c) {
        case 'c':
            if (ek_parse_uint(optarg, 1, UINT32_MAX, &o->count, &why) < 0)
                return ek_usage_error("ping", "invalid --count '%s': %s",
                                      optarg, why);
            break;
        case 'i':
            if (ek_parse_seconds_us(optarg, 3600LL * 1000000, &o->interval_us,
                                    &why) < 0)
                return ek_usage_error("ping", "invalid --interval '%s': %s",
                                      optarg, why);
            break;
        case OPT_INFLIGHT:
            if (ek_parse_uint(optarg, 1, EK_PING_WINDOW, &o->inflight, &why) <
                0)
                return ek_usage_error("ping", "invalid --inflight '%s': %s",
                                      optarg, why);
            break;
        case 's':
            if (ek_parse_size(optarg, EK_PING_HEADER, EK_PING_MAX_SIZE,
                              &o->size, &why) < 0)
                return ek_usage_error("ping", "invalid --size '%s': %s", optarg,
                                      why);
            break;
        case 'W':
            if (ek_parse_seconds(optarg, 3600L * 1000, &o->timeout_ms, &why) <
                    0 ||
                o->timeout_ms == 0)
                return ek_usage_error("ping", "invalid --timeout '%s': %s",
                                      optarg,
                                      o->timeout_ms == 0 ? "must be > 0" : why);
            break;
        case 'q':
            o->quiet = true;
            break;
        case 'u':
            o->udp = true;
            break;
        case 'h':
            fputs(usage_text, stdout);
            ek_client_tls_usage(24, false);
            ek_client_sock_usage(24);
            fputs(usage_tail, stdout);
            return 0;
        default:
            if ((rc = ek_client_option("ping", &o->tls, &o->sock, c, optarg)) >=
                0) {
                if (rc != 0)
                    return rc;
                break;
            }
            return ek_option_error("ping", c, argv);
        }
    }
    if (argc - optind > 1)
        return ek_usage_error("ping", "unexpected argument '%s'",
                              argv[optind + 1]);
    if (argc - optind == 1)
        o->server = argv[optind];
    o->udp |= ek_addr_text_is_udp(o->server);
    if (o->udp && (o->tls.on || o->tls.asked))
        return ek_usage_error("ping", "--tls is TLS over TCP, not UDP");
    if (o->udp && o->size > 65507)
        return ek_usage_error("ping", "invalid --size: a UDP request holds "
                                      "at most 65507 bytes");
    if (o->inflight == 0)
        o->inflight = o->interval_us == 0 ? 1
                      : o->udp            ? EK_PING_UDP_FLIGHT
                                          : EK_PING_WINDOW;
    return -1;
}

int ek_cmd_ping(int argc, char **argv)
{
    struct ping_options o = {.server = "localhost:50000",
                             .interval_us = 1000000,
                             .size = EK_PING_DEFAULT_SIZE,
                             .timeout_ms = 2000,
                             .sock = EK_SOCKOPTS_NONE};
    int status = parse_options(argc, argv, &o);
    if (status >= 0)
        return status;

    struct ping_state st = {.o = &o};
    struct ek_tls_client *tls = NULL;
    char what[160] = "";
    status = 0;
    if (!o.udp)
        status = ek_client_tls_start("ping", &o.tls, o.server, &tls);
    if (status == 0)
        status =
            ek_client_session_open("ping", o.server, &o.sock, o.udp, tls,
                                   o.timeout_ms, what, sizeof(what), &st.s);
    if (status != 0) {
        ek_client_tls_free(tls);
        return status;
    }

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_sigint};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL); /* no SA_RESTART: poll returns at ^C */

    st.req = malloc((size_t)o.size);
    st.reply = malloc((size_t)o.size + 1); /* +1: a longer datagram shows */
    if (st.req == NULL || st.reply == NULL) {
        ek_warnx("ping: out of memory");
        status = EX_OSERR;
    } else {
        if (!o.quiet)
            printf("ECHOKIT PING %s%s%s%s: %llu bytes per request\n", st.s.peer,
                   what[0] ? " (" : "", what, what[0] ? ")" : "",
                   (unsigned long long)o.size);
        ping_loop(&st);
        bool intact =
            st.sent > 0 && st.received == st.sent && !st.broken && st.late == 0;
        status = intact ? 0 : 1;
    }
    ek_client_session_close(&st.s);
    ek_client_tls_free(tls);
    free(st.req);
    free(st.reply);
    return status;
}
