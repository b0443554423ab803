/*
 * echokit send --udp: the same client over UDP (RFC 862's second half).
 *
 * UDP loses and duplicates datagrams, so the client works stop-and-wait:
 * one datagram out, and it waits for that datagram's echo, sending it again
 * every second until it comes or --timeout passes without progress. An
 * echo that is not the datagram in flight (a late duplicate of an earlier
 * one) is skipped. Message mode sends the message as one datagram; pipe
 * mode cuts stdin into datagrams of EK_UDP_CHUNK bytes and writes each echo
 * to stdout in order.
 */
#include "cmd_send.h"
#include "ek_addr.h"
#include "ek_cli.h"
#include "ek_log.h"
#include "ek_quote.h"
#include "ek_util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>

/* Fits the usual 1500-byte MTU with IPv6 and UDP headers: no
 * fragmentation on the path. */
#define EK_UDP_CHUNK 1400
#define EK_UDP_RESEND_MS 1000
#define EK_UDP_MAX_PAYLOAD 65507

/* Sends d[0..n) and waits for its echo. Returns 0, or an exit status
 * after saying why. */
static int exchange(int fd, const char *d, size_t n, int64_t timeout_ms,
                    char *reply, unsigned *resent)
{
    int64_t give_up = ek_now_ms() + timeout_ms;
    for (;;) {
        ssize_t w;
        do
            w = send(fd, d, n, 0);
        while (w < 0 && errno == EINTR);
        if (w < 0 && errno != ECONNREFUSED) {
            ek_warnx("send: %s", strerror(errno));
            return EX_IOERR;
        }
        int64_t resend_at = ek_now_ms() + EK_UDP_RESEND_MS;
        for (;;) {
            int64_t now = ek_now_ms();
            if (now >= give_up) {
                ek_warnx("send: timed out: no echo for %.1f s",
                         (double)timeout_ms / 1000.0);
                return EX_TEMPFAIL;
            }
            if (now >= resend_at)
                break;
            struct pollfd p = {.fd = fd, .events = POLLIN};
            int64_t until = resend_at < give_up ? resend_at : give_up;
            int rc = poll(&p, 1, ek_timeout_until(until));
            if (rc < 0 && errno != EINTR) {
                ek_warnx("send: poll: %s", strerror(errno));
                return EX_OSERR;
            }
            if (rc <= 0)
                continue;
            ssize_t r = recv(fd, reply, EK_UDP_MAX_PAYLOAD + 1, MSG_DONTWAIT);
            if (r < 0 && errno == ECONNREFUSED) {
                ek_warnx("send: connection refused (nothing answers on that "
                         "UDP port)");
                return EX_UNAVAILABLE;
            }
            if (r < 0)
                continue; /* EAGAIN, EINTR */
            if ((size_t)r == n && memcmp(reply, d, n) == 0)
                return 0;
            /* Not ours: a late echo of an earlier datagram. */
        }
        (*resent)++;
    }
}

int ek_send_udp(const char *server, const struct ek_sockopts *o,
                int64_t timeout_ms, const char *message, size_t len,
                const char *first, size_t first_len)
{
    int fd;
    char peer[EK_ADDRSTR_MAX];
    int status =
        ek_client_connect_udp("send", server, o, &fd, peer, sizeof(peer));
    if (status != 0)
        return status;
    char *reply = malloc(EK_UDP_MAX_PAYLOAD + 1);
    unsigned resent = 0;
    if (reply == NULL) {
        close(fd);
        ek_warnx("send: out of memory");
        return EX_OSERR;
    }
    if (message != NULL) { /* one datagram */
        if (len > EK_UDP_MAX_PAYLOAD) {
            status = ek_usage_error("send", "a UDP message holds at most "
                                            "65507 bytes");
        } else {
            status = exchange(fd, message, len, timeout_ms, reply, &resent);
            if (status == 0) {
                fputs("Received ", stdout);
                ek_print_quoted(stdout, reply, len);
                fputc('\n', stdout);
                if (fflush(stdout) != 0)
                    status = EX_IOERR;
            }
        }
    } else { /* stdin: each read is a datagram, as with nc -u */
        char chunk[EK_UDP_CHUNK];
        for (;;) {
            size_t have;
            if (first_len > 0) { /* what the caller already read */
                have = first_len < sizeof(chunk) ? first_len : sizeof(chunk);
                memcpy(chunk, first, have);
                first += have;
                first_len -= have;
            } else {
                ssize_t r;
                do
                    r = read(STDIN_FILENO, chunk, sizeof(chunk));
                while (r < 0 && errno == EINTR);
                if (r < 0) {
                    ek_warnx("send: reading stdin: %s", strerror(errno));
                    status = EX_IOERR;
                }
                if (r <= 0)
                    break;
                have = (size_t)r;
            }
            status = exchange(fd, chunk, have, timeout_ms, reply, &resent);
            if (status != 0)
                break;
            int err = ek_write_all(STDOUT_FILENO, reply, have);
            if (err < 0) {
                ek_warnx("send: writing stdout: %s", strerror(-err));
                status = EX_IOERR;
                break;
            }
        }
    }
    if (resent > 0)
        ek_log(EK_LOG_INFO,
               "send: %u datagram%s sent again (lost on the "
               "way)",
               resent, resent == 1 ? "" : "s");
    free(reply);
    close(fd);
    return status;
}
