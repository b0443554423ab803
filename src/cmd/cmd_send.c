/*
 * echokit send: the tutorial's client, grown up.
 *
 * Message mode (the default): send MESSAGE (default "Hello, world"), read
 * the echo, print "Received '<echo>'" with non-printable bytes escaped, and
 * check that the echo equals what was sent.
 *
 * Pipe mode (MESSAGE "-", or no MESSAGE with stdin not a terminal and not
 * empty; see first_input): copy
 * stdin to the server and the echo to stdout at the same time, so that an
 * input larger than the socket buffers cannot deadlock; half-close after
 * stdin's end; exit once the echo is complete (--verify) or the server
 * closes (--no-verify, like nc).
 *
 * Both modes run the same transfer loop; message mode just reads its input
 * from memory and collects the echo in memory.
 */
#include "cmd_send.h"
#include "ek_cli.h"
#include "ek_sockopt.h"
#include "ek_backend.h"
#include "ek_conn.h"
#include "ek_log.h"
#include "ek_net.h"
#include "ek_platform.h"
#include "ek_quote.h"
#include "ek_util.h"

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>

#define EK_DEFAULT_SERVER "localhost:50000"
#define EK_DEFAULT_MESSAGE "Hello, world"
#define EK_DEFAULT_TIMEOUT_MS 10000

/* Bytes read from stdin and not yet echoed back (with --verify) or not
 * yet sent (without): how far the input may run ahead of the echo. */
#define EK_SEND_WINDOW ((size_t)256 * 1024)
#define EK_SEND_RBUF ((size_t)64 * 1024)

/* Exit status for an echo that differs from what was sent, is short, or
 * broke off: the check failed. */
#define EK_EXIT_MISMATCH 1

static const char usage_text[] =
    "usage: echokit send [options] [HOST:PORT] [MESSAGE...]\n"
    "\n"
    "Send MESSAGE (the words joined by spaces; default \"Hello, world\") "
    "to the echo\n"
    "server at HOST:PORT (default localhost:50000) and print what came "
    "back:\n"
    "    Received 'Hello, world'\n"
    "With MESSAGE \"-\", or no MESSAGE and stdin not a terminal, stream "
    "stdin to the\n"
    "server and the echo to stdout (binary safe), half-close at the end of "
    "stdin\n"
    "and exit when the echo is complete. (Without \"-\", a stdin that is "
    "empty from\n"
    "the start, like /dev/null, sends the default message instead.)\n"
    "\n"
    "  -t, --timeout SECS    give up when the server makes no progress for "
    "SECS\n"
    "                        (default 10); also bounds the connect\n"
    "      --verify          exit 1 unless the echo equals what was sent "
    "(default\n"
    "                        for a message)\n"
    "      --no-verify       do not compare; pipe mode then ends when the "
    "server\n"
    "                        closes (default for pipe mode)\n"
    "  -u, --udp             over UDP (also: udp:HOST:PORT): the message is "
    "one\n"
    "                        datagram; stdin goes a read at a time (at most "
    "1400\n"
    "                        bytes), each sent again every second until its "
    "echo\n"
    "                        comes\n"
    "";
/* After the TLS options. */
static const char usage_tail[] =
    "  -h, --help            this text\n"
    "\n"
    "HOST:PORT may also be [IPV6]:PORT, unix:PATH or tls:HOST:PORT.\n"
    "Exit status: 0 ok; 1 the echo differs, is short or broke off; 64 bad "
    "usage;\n"
    "68 host not found; 69 connection refused or unreachable (or no TLS in "
    "this\n"
    "build); 74 stdin or stdout error; 75 timed out; 76 TLS handshake "
    "failed; 78\n"
    "unusable --tls-cert, --tls-key or --tls-ca.\n";

struct send_options {
    const char *server;
    int64_t timeout_ms;
    int verify; /* -1: the mode's default */
    bool pipe_mode;
    bool stdin_implied; /* pipe mode because stdin is not a terminal */
    bool udp;
    struct ek_client_tls tls;
    struct ek_sockopts sock;
    char *message; /* message mode: malloc'd, words joined */
    size_t message_len;
};

/* The transfer: input -> window -> socket -> rbuf -> output. */
struct xfer {
    struct ek_client_session s; /* its socket and transport: plain or TLS */
    bool finishing;             /* the transport's end (close_notify) waits */
    bool verify;
    int64_t timeout_ms;

    /* Input: a descriptor (pipe mode) or memory (message mode). */
    int in_fd;
    const char *in_mem;
    size_t in_mem_len, in_mem_off;
    bool in_eof;

    /* The window, a ring indexed by absolute stream offsets:
     * [acked, sent) sent, echo not yet checked; [sent, filled) not sent. */
    char *ring;
    uint64_t acked, sent, filled;
    bool shut_wr;

    /* The echo: rbuf[roff, rlen) received, not yet written out. */
    char *rbuf;
    size_t rlen, roff;
    uint64_t received;
    bool peer_eof;

    /* Output: a descriptor (pipe mode) or memory (message mode). */
    int out_fd;
    char *out_mem;
    size_t out_mem_len, out_mem_cap;

    int64_t last_progress_ms;
    int error; /* errno of an XFER_BROKEN */
};

/* Where a transfer ended. */
enum xfer_result {
    XFER_OK,
    XFER_MISMATCH, /* the echo differs */
    XFER_SHORT,    /* the server closed before echoing everything */
    XFER_BROKEN,   /* the connection failed (reset, ...) */
    XFER_TIMEOUT,
    XFER_IO_ERROR, /* stdin or stdout failed */
};

static size_t ring_off(uint64_t pos)
{
    return (size_t)(pos % EK_SEND_WINDOW);
}

/* Contiguous free space at the ring's fill end. */
static size_t ring_free_run(const struct xfer *x)
{
    size_t used = (size_t)(x->filled - x->acked);
    size_t free_total = EK_SEND_WINDOW - used;
    size_t to_end = EK_SEND_WINDOW - ring_off(x->filled);
    return free_total < to_end ? free_total : to_end;
}

/* Contiguous unsent bytes at the ring's send end. */
static size_t ring_unsent_run(const struct xfer *x)
{
    size_t unsent = (size_t)(x->filled - x->sent);
    size_t to_end = EK_SEND_WINDOW - ring_off(x->sent);
    return unsent < to_end ? unsent : to_end;
}

static void fill_from_memory(struct xfer *x)
{
    while (!x->in_eof && ring_free_run(x) > 0) {
        size_t n = x->in_mem_len - x->in_mem_off;
        if (n > ring_free_run(x))
            n = ring_free_run(x);
        memcpy(x->ring + ring_off(x->filled), x->in_mem + x->in_mem_off, n);
        x->in_mem_off += n;
        x->filled += n;
        if (x->in_mem_off == x->in_mem_len)
            x->in_eof = true;
    }
}

static int read_input(struct xfer *x)
{
    ssize_t n;
    do
        n = read(x->in_fd, x->ring + ring_off(x->filled), ring_free_run(x));
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        ek_warnx("send: reading stdin: %s", strerror(errno));
        return -1;
    }
    if (n == 0)
        x->in_eof = true;
    x->filled += (uint64_t)n;
    return 0;
}

static int send_window(struct xfer *x)
{
    struct iovec iov = {.iov_base = x->ring + ring_off(x->sent),
                        .iov_len = ring_unsent_run(x)};
    ssize_t n = ek_conn_tp(&x->s.conn)->writev(&x->s.conn, x->s.fd, &iov, 1);
    if (n < 0)
        return n == -EAGAIN ? 0 : (int)n;
    x->sent += (uint64_t)n;
    if (!x->verify)
        x->acked = x->sent; /* nothing to compare: free the space now */
    x->last_progress_ms = ek_now_ms();
    return 0;
}

/* Compares freshly received bytes with what was sent at that offset. */
static bool echo_matches(struct xfer *x, const char *p, size_t n)
{
    if (x->received + n > x->sent)
        return false; /* more came back than was sent */
    while (n > 0) {
        size_t off = ring_off(x->acked);
        size_t run = EK_SEND_WINDOW - off;
        if (run > n)
            run = n;
        if (memcmp(x->ring + off, p, run) != 0)
            return false;
        x->acked += run;
        p += run;
        n -= run;
    }
    return true;
}

static int recv_echo(struct xfer *x)
{
    ssize_t n = ek_conn_tp(&x->s.conn)
                    ->read(&x->s.conn, x->s.fd, x->rbuf, EK_SEND_RBUF);
    if (n < 0)
        return n == -EAGAIN ? 0 : (int)n;
    x->last_progress_ms = ek_now_ms();
    if (n == 0) {
        x->peer_eof = true;
        return 0;
    }
    x->rlen = (size_t)n;
    x->roff = 0;
    bool ok = !x->verify || echo_matches(x, x->rbuf, (size_t)n);
    x->received += (uint64_t)n;
    return ok ? 0 : 1;
}

static int write_output(struct xfer *x)
{
    size_t n = x->rlen - x->roff;
    if (x->out_fd < 0) {
        if (x->out_mem_len + n > x->out_mem_cap) {
            size_t cap = (x->out_mem_len + n) * 2;
            char *grown = realloc(x->out_mem, cap);
            if (grown == NULL) {
                ek_warnx("send: out of memory");
                return -1;
            }
            x->out_mem = grown;
            x->out_mem_cap = cap;
        }
        memcpy(x->out_mem + x->out_mem_len, x->rbuf + x->roff, n);
        x->out_mem_len += n;
        x->roff = x->rlen;
        return 0;
    }
    ssize_t w;
    do
        w = write(x->out_fd, x->rbuf + x->roff, n);
    while (w < 0 && errno == EINTR);
    if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        ek_warnx("send: writing stdout: %s", strerror(errno));
        return -1;
    }
    x->roff += (size_t)w;
    return 0;
}

/* Whether the server owes us something: only then does silence count
 * towards the timeout (a human typing slowly on stdin is not a timeout). */
static bool waiting_on_server(const struct xfer *x)
{
    return x->sent > x->received || x->filled > x->sent ||
           (x->shut_wr && !x->peer_eof);
}

/* With --verify the transfer is complete when all input went out and all
 * of it came back; without, when the server closes (nc semantics). */
static bool finished(const struct xfer *x)
{
    if (x->roff < x->rlen)
        return false;
    if (x->verify)
        return x->shut_wr && x->received == x->sent;
    return x->peer_eof;
}

/* Whether the server owes us something and has made no progress for
 * the timeout. */
static bool stalled(const struct xfer *x)
{
    return !finished(x) && waiting_on_server(x) &&
           ek_now_ms() - x->last_progress_ms >= x->timeout_ms;
}

static enum xfer_result broken(struct xfer *x, int err)
{
    x->error = err;
    return XFER_BROKEN;
}

static enum xfer_result xfer_step(struct xfer *x)
{
    struct pollfd p[3];
    int n = 0, in = -1, out = -1;
    bool out_pending = x->roff < x->rlen;

    if (x->in_mem != NULL)
        fill_from_memory(x);
    if (x->in_eof && x->sent == x->filled && !x->shut_wr) {
        /* Our end: the transport's (TLS: close_notify), then TCP's. */
        int err = ek_conn_tp(&x->s.conn)->finish(&x->s.conn, x->s.fd);
        x->finishing = err == -EAGAIN;
        if (err < 0 && err != -EAGAIN)
            return broken(x, -err);
        if (err == 0 && shutdown(x->s.fd, SHUT_WR) < 0)
            return broken(x, errno);
        x->shut_wr = err == 0;
    }
    bool want_write = x->filled > x->sent || x->finishing;
    bool want_read = !x->peer_eof && !out_pending;
    /* TLS records already read and decrypted: no readiness will say so. */
    bool held = want_read && ek_conn_tp(&x->s.conn)->pending(&x->s.conn);
    unsigned blocked = ek_conn_tp(&x->s.conn)->blocked(&x->s.conn);
    /* Each direction waits for what its last call waits for: a TLS write
     * that must read first (EK_EV_READ) for POLLIN, a read that must write
     * first (EK_EV_WRITE) for POLLOUT. Waiting for the usual one instead
     * finds it at once, and again: a TLS write blocked on a handshake that
     * never came spun at 100% CPU (issue 20). The socket is left out (fd
     * -1) when nothing is wanted from it, or its POLLHUP would wake us in
     * a loop while stdout is blocked. */
    short sock_events = 0;
    if (want_write)
        sock_events = blocked & EK_EV_READ ? POLLIN : POLLOUT;
    if (want_read)
        sock_events =
            (short)(sock_events | (blocked & EK_EV_WRITE ? POLLOUT : POLLIN));
    p[n++] = (struct pollfd){.fd = sock_events ? x->s.fd : -1,
                             .events = sock_events};
    if (x->in_mem == NULL && !x->in_eof && ring_free_run(x) > 0) {
        in = n;
        p[n++] = (struct pollfd){.fd = x->in_fd, .events = POLLIN};
    }
    if (out_pending) {
        out = n;
        p[n++] = (struct pollfd){.fd = x->out_fd, .events = POLLOUT};
    }

    int timeout = -1;
    if (held)
        timeout = 0;
    else if (waiting_on_server(x))
        timeout = ek_timeout_until(x->last_progress_ms + x->timeout_ms);
    int rc = poll(p, (nfds_t)n, timeout);
    if (rc < 0 && errno != EINTR)
        return broken(x, errno);
    if (rc < 0)
        return stalled(x) ? XFER_TIMEOUT : XFER_OK;

    if (in >= 0 && p[in].revents != 0 && read_input(x) < 0)
        return XFER_IO_ERROR;
    short sock_ready = p[0].revents;
    if (held)
        sock_ready |= POLLIN;
    /* What the transport waited for came: both directions may go on. */
    if (sock_ready & ((blocked & EK_EV_READ ? POLLIN : 0) |
                      (blocked & EK_EV_WRITE ? POLLOUT : 0)))
        sock_ready |= POLLIN | POLLOUT;
    if ((sock_ready & (POLLOUT | POLLERR | POLLHUP)) && x->filled > x->sent) {
        int err = send_window(x);
        if (err < 0)
            return broken(x, -err);
    }
    if ((sock_ready & (POLLIN | POLLERR | POLLHUP)) && !x->peer_eof &&
        !out_pending) {
        int r = recv_echo(x);
        if (r < 0)
            return broken(x, -r);
        if (r > 0)
            return XFER_MISMATCH;
        if (x->peer_eof && x->verify && !(x->shut_wr && x->received == x->sent))
            return XFER_SHORT;
    }
    /* Memory output never blocks: take the echo at once. */
    if (x->roff < x->rlen && (x->out_fd < 0 || (out >= 0 && p[out].revents)))
        if (write_output(x) < 0)
            return XFER_IO_ERROR;
    /* After every wait, whatever woke it: a readiness that brings no
     * progress must not keep the transfer alive past -t. */
    return stalled(x) ? XFER_TIMEOUT : XFER_OK;
}

static enum xfer_result xfer_run(struct xfer *x)
{
    x->last_progress_ms = ek_now_ms();
    while (!finished(x)) {
        enum xfer_result r = xfer_step(x);
        if (r != XFER_OK) {
            /* What did come back is part of the answer: pass it on (a few
             * tries: stdout might be a stuck non-blocking pipe). */
            for (int i = 0; i < 16 && x->roff < x->rlen; i++)
                if (write_output(x) < 0)
                    break;
            return r;
        }
    }
    return XFER_OK;
}

static int report(const struct xfer *x, enum xfer_result r)
{
    switch (r) {
    case XFER_OK:
        return 0;
    case XFER_MISMATCH:
        ek_warnx("send: the echo differs from what was sent, within bytes "
                 "%llu..%llu",
                 (unsigned long long)(x->received - x->rlen),
                 (unsigned long long)x->received);
        return EK_EXIT_MISMATCH;
    case XFER_SHORT:
        ek_warnx("send: the server closed the connection after echoing "
                 "%llu of %llu bytes",
                 (unsigned long long)x->received, (unsigned long long)x->sent);
        return EK_EXIT_MISMATCH;
    case XFER_BROKEN:
        if (x->error == EPROTO && ek_client_tls_truncated(&x->s.conn)) {
            ek_warnx("send: TLS: the server closed the connection without "
                     "close_notify after %llu of %llu bytes came back: the "
                     "echo may be cut short (--allow-truncation takes such "
                     "an end as the end)",
                     (unsigned long long)x->received,
                     (unsigned long long)x->sent);
            return EK_EXIT_MISMATCH;
        }
        if (x->error == EPROTO && ek_client_tls_error(&x->s.conn) != NULL) {
            ek_warnx("send: TLS: %s", ek_client_tls_error(&x->s.conn));
            return EK_EXIT_TLS;
        }
        ek_warnx("send: connection lost after %llu of %llu bytes came back: "
                 "%s",
                 (unsigned long long)x->received, (unsigned long long)x->sent,
                 strerror(x->error));
        return EK_EXIT_MISMATCH;
    case XFER_TIMEOUT:
        ek_warnx("send: timed out: no progress for %.1f s (%llu of %llu "
                 "bytes came back)",
                 (double)x->timeout_ms / 1000.0,
                 (unsigned long long)x->received, (unsigned long long)x->sent);
        return EX_TEMPFAIL;
    case XFER_IO_ERROR:
    default:
        return EX_IOERR;
    }
}

static char *join_words(char **words, int n, size_t *len)
{
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += strlen(words[i]) + 1;
    char *s = malloc(total + 1);
    if (s == NULL)
        return NULL;
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        size_t k = strlen(words[i]);
        if (i > 0)
            s[off++] = ' ';
        memcpy(s + off, words[i], k);
        off += k;
    }
    s[off] = '\0';
    *len = off;
    return s;
}

static int set_message(struct send_options *o, char **words, int n);

/* The options, for getopt_long and for `echokit completion` (ek_cli.h). */
const struct option ek_send_options[] = {
    {"timeout", required_argument, NULL, 't'},
    {"verify", no_argument, NULL, 'y'},
    {"no-verify", no_argument, NULL, 'n'},
    {"udp", no_argument, NULL, 'u'},
    {"help", no_argument, NULL, 'h'},
    EK_CLIENT_TLS_LONGOPTS,
    EK_CLIENT_SOCK_LONGOPTS,
    {NULL, 0, NULL, 0},
};
const char ek_send_shortopts[] = "+:t:hu";

static int parse_options(int argc, char **argv, struct send_options *o)
{
    const char *why;
    int c, rc;

    opterr = 0;
    /* "+": options end at the first operand, so a message may start with
     * '-' after the address ("echokit send host:7 -- -x" also works). */
    while ((c = getopt_long(argc, argv, ek_send_shortopts, ek_send_options,
                            NULL)) != -1) {
        switch (c) {
        case 't':
            if (ek_parse_seconds(optarg, 86400 * 1000LL, &o->timeout_ms, &why) <
                    0 ||
                o->timeout_ms == 0)
                return ek_usage_error("send", "invalid --timeout '%s': %s",
                                      optarg,
                                      o->timeout_ms == 0 ? "must be > 0" : why);
            break;
        case 'y':
            o->verify = 1;
            break;
        case 'n':
            o->verify = 0;
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
            if ((rc = ek_client_option("send", &o->tls, &o->sock, c, optarg)) >=
                0) {
                if (rc != 0)
                    return rc;
                break;
            }
            return ek_option_error("send", c, argv);
        }
    }
    char **rest = argv + optind;
    int nrest = argc - optind;
    if (nrest > 0) {
        o->server = rest[0];
        rest++;
        nrest--;
    }
    if (nrest == 1 && strcmp(rest[0], "-") == 0) {
        o->pipe_mode = true;
    } else if (nrest == 0 && !isatty(STDIN_FILENO)) {
        o->pipe_mode = true;
        o->stdin_implied = true;
    } else if (set_message(o, rest, nrest) < 0) {
        return EX_OSERR;
    }
    return -1;
}

/* Message mode with the words given, or the default message. */
static int set_message(struct send_options *o, char **words, int n)
{
    static char hello[] = EK_DEFAULT_MESSAGE;
    char *dflt[] = {hello};
    o->pipe_mode = false;
    o->message = n > 0 ? join_words(words, n, &o->message_len)
                       : join_words(dflt, 1, &o->message_len);
    if (o->message == NULL) {
        ek_warnx("send: out of memory");
        return -1;
    }
    return 0;
}

/* Pipe mode chosen only because stdin is not a terminal: read the first
 * bytes now. If stdin ends before any (</dev/null under cron, CI, ssh),
 * there is no stream to send, and the tutorial's client still says hello:
 * fall back to the default message. Returns the bytes read into buf (0
 * after falling back), or -1 on error. An explicit "-" never falls back. */
static ssize_t first_input(struct send_options *o, char *buf, size_t size)
{
    ssize_t n;
    do
        n = read(STDIN_FILENO, buf, size);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        ek_warnx("send: reading stdin: %s", strerror(errno));
        return -1;
    }
    if (n == 0 && set_message(o, NULL, 0) < 0)
        return -1;
    return n;
}

int ek_cmd_send(int argc, char **argv)
{
    struct send_options o = {.server = EK_DEFAULT_SERVER,
                             .timeout_ms = EK_DEFAULT_TIMEOUT_MS,
                             .verify = -1,
                             .sock = EK_SOCKOPTS_NONE};
    int status = parse_options(argc, argv, &o);
    if (status >= 0)
        return status;
    signal(SIGPIPE, SIG_IGN); /* stdout EPIPE becomes an error message */

    char *ring = malloc(EK_SEND_WINDOW);
    ssize_t first = 0;
    if (ring == NULL) {
        ek_warnx("send: out of memory");
        free(o.message);
        return EX_OSERR;
    }
    if (o.stdin_implied &&
        (first = first_input(&o, ring, EK_SEND_WINDOW)) < 0) {
        free(ring);
        free(o.message);
        return EX_IOERR;
    }

    bool udp = o.udp || ek_addr_text_is_udp(o.server);
    struct ek_tls_client *tls = NULL;
    status = 0;
    if (udp && (o.tls.on || o.tls.asked))
        status = ek_usage_error("send", "--tls is TLS over TCP, not UDP");
    else if (!udp)
        status = ek_client_tls_start("send", &o.tls, o.server, &tls);
    if (status != 0) {
        free(ring);
        free(o.message);
        return status;
    }
    if (udp) {
        status = ek_send_udp(o.server, &o.sock, o.timeout_ms,
                             o.pipe_mode ? NULL : o.message, o.message_len,
                             ring, (size_t)first);
        free(ring);
        free(o.message);
        return status;
    }
    /* The TLS handshake first, as ping and bench do: within -t, with its
     * own message and exit status, before any input is taken. */
    struct ek_client_session sess;
    status = ek_client_session_open("send", o.server, &o.sock, false, tls,
                                    o.timeout_ms, NULL, 0, &sess);
    if (status != 0) {
        free(ring);
        free(o.message);
        ek_client_tls_free(tls);
        return status;
    }

    struct xfer x = {
        .s = sess,
        .verify = o.verify >= 0 ? o.verify == 1 : !o.pipe_mode,
        .timeout_ms = o.timeout_ms,
        .in_fd = o.pipe_mode ? STDIN_FILENO : -1,
        .in_mem = o.pipe_mode ? NULL : o.message,
        .in_mem_len = o.message_len,
        .in_eof = !o.pipe_mode && o.message_len == 0,
        .out_fd = o.pipe_mode ? STDOUT_FILENO : -1,
        .ring = ring,
        .filled = (uint64_t)first, /* what first_input already read */
        .rbuf = malloc(EK_SEND_RBUF),
    };
    if (x.rbuf == NULL) {
        ek_warnx("send: out of memory");
        status = EX_OSERR;
    } else {
        enum xfer_result r = xfer_run(&x);
        /* "Received" only for an echo: a transfer that failed before
         * anything came back prints nothing on stdout (issue 19). */
        if (!o.pipe_mode && (r == XFER_OK || x.out_mem_len > 0)) {
            fputs("Received ", stdout);
            ek_print_quoted(stdout, x.out_mem, x.out_mem_len);
            fputc('\n', stdout);
            if (fflush(stdout) != 0 && r == XFER_OK)
                r = XFER_IO_ERROR;
        }
        status = report(&x, r);
    }
    ek_client_session_close(&x.s);
    ek_client_tls_free(tls);
    free(x.ring);
    free(x.rbuf);
    free(x.out_mem);
    free(o.message);
    return status;
}
