/*
 * transport_tls: TLS under the connection layer (ek_transport.h), server
 * side for tls: listeners and client side for send/ping/bench --tls.
 *
 * OpenSSL reads and writes the socket itself (its socket BIO, which is
 * also what kernel TLS hands the records to); the socket is non-blocking,
 * so every call returns at once and says what it waits for:
 *   - WANT_READ in a read, WANT_WRITE in a write: the usual wait;
 *   - WANT_WRITE in a read (a handshake flight or a session ticket that
 *     the socket would not take), WANT_READ in a write: the engine is told
 *     through `blocked`, and retries both directions on that readiness;
 *   - a read stops when the buffer is full while OpenSSL still holds
 *     decrypted or read-ahead records: `pending` says so, and the engine
 *     reads again without waiting (no readiness event would come);
 *   - a write that waited must be retried with at least as many bytes
 *     (OpenSSL encrypted them already): `owed` remembers how many, and
 *     the connection's queue holds them, since unsent bytes stay queued.
 *
 * Memory: OpenSSL's state (about 15 KiB once the handshake is done, README)
 * plus its record buffers while a record is in flight
 * (SSL_MODE_RELEASE_BUFFERS frees them when idle), and this state, 40
 * bytes.
 */
#include "ek_backend.h"
#include "ek_conn.h"
#include "ek_log.h"
#include "ek_net.h"
#include "ek_server.h"
#include "ek_stats.h"
#include "ek_tls.h"
#include "ek_transport.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* The most plaintext one record carries; each SSL_write takes at most
 * this, so a write that waited owes at most this much. */
#define EK_TLS_RECORD 16384

/* A client's handshake that met the end of the stream, whether OpenSSL
 * takes it as an error (no close_notify) or, with --allow-truncation, as
 * the end. */
static const char closed_in_handshake[] =
    "the peer closed the connection during the handshake";

/* What the server's first record header told a client (first_back). */
enum { FIRST_NONE, FIRST_TLS, FIRST_OWN_HELLO, FIRST_NOT_TLS };

struct tls_conn {
    SSL *ssl;
    struct ek_stats *stats;  /* server side: where handshakes count */
    const char *why;         /* the failure, for the client's message */
    uint32_t owed;           /* a write waited: retry with >= this many */
    uint8_t read_blocked;    /* EK_EV_WRITE: the last read must write */
    uint8_t write_blocked;   /* EK_EV_READ: the last write must read */
    uint8_t hello[5];        /* client: its first record's header (the
                                ClientHello's), until the handshake ends */
    bool established : 1;    /* handshake done (and counted) */
    bool more : 1;           /* the last read stopped with records held */
    bool renegotiation : 1;  /* TLS 1.2: the client asked to renegotiate */
    bool ktls : 1;           /* log whether the kernel took TLS */
    bool truncated : 1;      /* client: the server's FIN, no close_notify */
    unsigned first_back : 2; /* client: FIRST_*, the server's first record */
};
/* The memory per connection README and SECURITY.md give. */
_Static_assert(sizeof(struct tls_conn) <= 40, "a TLS connection's state "
                                              "outgrew the documented 40 "
                                              "bytes");

static struct tls_conn *state(const struct ek_conn *c)
{
    return c->tp_state;
}

/* TLS 1.2 renegotiation, which the server refuses (OpenSSL answers a
 * warning alert and would carry on): a handshake record from the client
 * once the handshake is done. TLS 1.3 has no renegotiation, and its
 * records all look like application data. */
static void on_record(int write_p, int version, int content_type,
                      const void *buf, size_t len, SSL *ssl, void *arg)
{
    (void)version;
    (void)ssl;
    struct tls_conn *t = arg;
    if (!write_p && content_type == SSL3_RT_HEADER && len >= 1 &&
        ((const unsigned char *)buf)[0] == SSL3_RT_HANDSHAKE)
        t->renegotiation = true;
}

/* The client's record headers until its handshake ends: the first one it
 * sends (its ClientHello's), and how the server's first one compares. A
 * plain echo server sends the ClientHello back, which OpenSSL calls an
 * "unexpected message"; the clients say what it is. */
static void on_client_record(int write_p, int version, int content_type,
                             const void *buf, size_t len, SSL *ssl, void *arg)
{
    (void)version;
    (void)ssl;
    struct tls_conn *t = arg;
    const unsigned char *h = buf;
    if (content_type != SSL3_RT_HEADER || len < sizeof(t->hello) ||
        t->first_back != FIRST_NONE)
        return;
    if (write_p) {
        if (t->hello[0] == 0) /* no record type is 0 */
            memcpy(t->hello, h, sizeof(t->hello));
        return;
    }
    if (t->hello[0] != 0 && memcmp(h, t->hello, sizeof(t->hello)) == 0)
        t->first_back = FIRST_OWN_HELLO;
    else if (h[0] < SSL3_RT_CHANGE_CIPHER_SPEC ||
             h[0] > 24 /* heartbeat, the last */)
        t->first_back = FIRST_NOT_TLS;
    else
        t->first_back = FIRST_TLS;
}

static void count(struct tls_conn *t, enum ek_tls_fail why)
{
    if (t->stats != NULL)
        ek_stat_add(&t->stats->tls_failed[why], 1);
}

void ek_tls_describe(const struct ek_conn *c, char *buf, size_t size)
{
    SSL *ssl = state(c)->ssl;
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    SSL_get0_alpn_selected(ssl, &alpn, &alpn_len);
    const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    snprintf(buf, size, "%s %s%s%s%s%s%.*s", SSL_get_version(ssl),
             SSL_get_cipher_name(ssl),
             SSL_session_reused(ssl) ? ", resumed" : "",
             sni != NULL ? ", SNI " : "", sni != NULL ? sni : "",
             alpn_len > 0 ? ", ALPN " : "", (int)alpn_len, (const char *)alpn);
}

/* The handshake just ended: counted and logged (server side). */
static void established(struct ek_conn *c, int fd)
{
    struct tls_conn *t = state(c);
    t->established = true;
    if (!SSL_is_server(t->ssl))
        SSL_set_msg_callback(t->ssl, NULL); /* on_client_record's work ends */
    else if (SSL_version(t->ssl) < TLS1_3_VERSION) {
        SSL_set_msg_callback(t->ssl, on_record);
        SSL_set_msg_callback_arg(t->ssl, t);
    }
    if (t->stats == NULL)
        return;
    ek_stat_add(&t->stats->tls_handshakes, 1);
    if (SSL_session_reused(t->ssl))
        ek_stat_add(&t->stats->tls_resumed, 1);
    if (!ek_log_enabled(EK_LOG_DEBUG))
        return;
    char what[256];
    ek_tls_describe(c, what, sizeof(what));
    if (t->ktls)
        ek_log(EK_LOG_DEBUG, "fd %d: %s; kernel TLS: send %s, receive %s", fd,
               what, BIO_get_ktls_send(SSL_get_wbio(t->ssl)) ? "yes" : "no",
               BIO_get_ktls_recv(SSL_get_rbio(t->ssl)) ? "yes" : "no");
    else
        ek_log(EK_LOG_DEBUG, "fd %d: %s", fd, what);
}

/* Why a handshake failed, by OpenSSL's first reason. */
static enum ek_tls_fail failure_reason(unsigned long e)
{
    if (ERR_GET_LIB(e) != ERR_LIB_SSL)
        return EK_TLS_FAIL_PROTOCOL;
    switch (ERR_GET_REASON(e)) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
    case SSL_R_CERTIFICATE_VERIFY_FAILED:
    case SSL_R_NO_CERTIFICATES_RETURNED:
        return EK_TLS_FAIL_CLIENT_CERT;
    default:
        return EK_TLS_FAIL_PROTOCOL;
    }
}

/* A failed call: remembers why (for a client's message; a verification
 * failure says what was wrong with the certificate), counts a failed
 * handshake, and logs it at -v. Returns -EPROTO. */
static ssize_t protocol_error(struct tls_conn *t, int fd)
{
    unsigned long e = ERR_peek_error();
    t->why = ERR_reason_error_string(e);
    long verify = SSL_get_verify_result(t->ssl);
    if (ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED &&
        verify != X509_V_OK)
        t->why = X509_verify_cert_error_string(verify);
    /* A client whose ClientHello came back, or something else than TLS. */
    if (t->first_back == FIRST_OWN_HELLO)
        t->why = "the server sent our ClientHello back: it looks like a "
                 "plain echo server, not TLS";
    else if (t->first_back == FIRST_NOT_TLS)
        t->why = "the server's first bytes are not TLS: it does not speak "
                 "TLS on that port";
    /* A FIN without close_notify (the clients: the server ignores it). */
    if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
        ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        t->truncated = t->established;
        t->why = t->established
                     ? "the peer closed the connection without a TLS "
                       "close_notify: the stream may be cut short"
                     : closed_in_handshake;
    }
    if (t->why == NULL)
        t->why = "protocol error";
    if (!t->established) {
        count(t, failure_reason(e));
        ek_log(EK_LOG_DEBUG, "fd %d: TLS handshake failed: %s", fd, t->why);
    } else {
        ek_log(EK_LOG_DEBUG, "fd %d: TLS failed: %s", fd, t->why);
    }
    ERR_clear_error();
    return -EPROTO;
}

/* What an OpenSSL call that returned "no" means for the engine: -EAGAIN
 * (with *blocked the readiness it waits for, when among want_other), 0
 * (the peer's close_notify, or its TCP FIN), or -errno. */
static ssize_t outcome(struct ek_conn *c, int fd, int ret, unsigned want_other,
                       uint8_t *blocked)
{
    struct tls_conn *t = state(c);
    int e = SSL_get_error(t->ssl, ret);
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: {
        unsigned needs = e == SSL_ERROR_WANT_READ ? EK_EV_READ : EK_EV_WRITE;
        *blocked = (uint8_t)(needs & want_other);
        return -EAGAIN;
    }
    case SSL_ERROR_ZERO_RETURN:
        if (!t->established) {
            count(t, EK_TLS_FAIL_CLOSED);
            ek_log(EK_LOG_DEBUG,
                   "fd %d: closed before the end of its TLS "
                   "handshake",
                   fd);
        }
        return 0;
    case SSL_ERROR_SYSCALL: {
        int err = errno != 0 ? errno : ECONNRESET;
        ERR_clear_error();
        if (!t->established) {
            count(t, EK_TLS_FAIL_CLOSED);
            t->why = strerror(err);
        }
        return -err;
    }
    default:
        return protocol_error(t, fd);
    }
}

static ssize_t tls_read(struct ek_conn *c, int fd, void *buf, size_t len)
{
    struct tls_conn *t = state(c);
    size_t total = 0;
    ssize_t rc = -EAGAIN;
    bool stopped = false; /* by the end, or an error */
    t->read_blocked = 0;
    t->more = false;
    /* Record after record until the buffer is full or OpenSSL holds no
     * more bytes: the socket is read once per call, so that an echo's
     * request is answered before its connection is read again (which,
     * with the client waiting for that answer, would only find nothing). */
    while (total < len && (total == 0 || SSL_has_pending(t->ssl) == 1)) {
        size_t n = 0;
        ERR_clear_error();
        errno = 0;
        int ok = SSL_read_ex(t->ssl, (char *)buf + total, len - total, &n);
        if (!t->established && SSL_is_init_finished(t->ssl))
            established(c, fd);
        if (t->renegotiation) {
            count(t, EK_TLS_FAIL_RENEGOTIATION);
            ek_log(EK_LOG_DEBUG,
                   "fd %d: the client asked to renegotiate: "
                   "refused, closed",
                   fd);
            t->why = "renegotiation refused";
            return -EPROTO;
        }
        if (!ok) {
            rc = outcome(c, fd, 0, EK_EV_WRITE, &t->read_blocked);
            stopped = rc != -EAGAIN;
            break;
        }
        total += n;
    }
    if (total == 0)
        return rc;
    /* Bytes first. The engine must then read again without waiting for
     * what OpenSSL holds, or for the end or the error it met after them
     * (a close_notify in the same segment as the last data): no readiness
     * would announce either. */
    t->more = stopped || SSL_has_pending(t->ssl) == 1;
    return (ssize_t)total;
}

/* Copies up to `want` bytes of iov from piece i, offset off, into buf. */
static size_t gather(const struct iovec *iov, int iovcnt, int i, size_t off,
                     char *buf, size_t want)
{
    size_t got = 0;
    for (; i < iovcnt && got < want; i++, off = 0) {
        size_t k = iov[i].iov_len - off;
        if (k > want - got)
            k = want - got;
        memcpy(buf + got, (const char *)iov[i].iov_base + off, k);
        got += k;
    }
    return got;
}

static ssize_t tls_writev(struct ek_conn *c, int fd, const struct iovec *iov,
                          int iovcnt)
{
    struct tls_conn *t = state(c);
    char stage[EK_TLS_RECORD];
    size_t total = 0, off = 0;
    t->write_blocked = 0;
    for (int i = 0; i < iovcnt;) {
        size_t left = iov[i].iov_len - off;
        if (left == 0) {
            i++;
            off = 0;
            continue;
        }
        const char *p = (const char *)iov[i].iov_base + off;
        size_t len = left < EK_TLS_RECORD ? left : EK_TLS_RECORD;
        if (t->owed > len) {
            /* The write that waited was longer than this piece: the same
             * bytes, gathered from the pieces that follow. */
            len = gather(iov, iovcnt, i, off, stage, t->owed);
            if (len < t->owed)
                return total > 0 ? (ssize_t)total : -EIO; /* not reached:
                                              the queue holds them all */
            p = stage;
        }
        size_t n = 0;
        ERR_clear_error();
        errno = 0;
        int ok = SSL_write_ex(t->ssl, p, len, &n);
        if (!t->established && SSL_is_init_finished(t->ssl))
            established(c, fd); /* a client's first write shakes hands */
        if (!ok) {
            ssize_t rc = outcome(c, fd, 0, EK_EV_READ, &t->write_blocked);
            if (rc == -EAGAIN)
                t->owed = (uint32_t)len;
            if (rc == 0)
                rc = -EPIPE; /* close_notify while writing: nothing goes */
            return total > 0 && rc == -EAGAIN ? (ssize_t)total : rc;
        }
        t->owed = 0;
        total += n;
        /* Advance over n bytes, which may span pieces (a staged write). */
        while (n > 0 && i < iovcnt) {
            size_t k = iov[i].iov_len - off;
            if (n < k) {
                off += n;
                n = 0;
            } else {
                n -= k;
                i++;
                off = 0;
            }
        }
    }
    return (ssize_t)total;
}

static bool tls_pending(const struct ek_conn *c)
{
    return state(c)->more;
}

static unsigned tls_blocked(const struct ek_conn *c)
{
    const struct tls_conn *t = state(c);
    return (unsigned)(t->read_blocked | t->write_blocked);
}

static bool tls_handshaking(const struct ek_conn *c)
{
    return !state(c)->established;
}

/* Our close_notify, after the client's (or its FIN) and the echo of all
 * it sent. Nothing to say when no handshake was done. */
static int tls_finish(struct ek_conn *c, int fd)
{
    struct tls_conn *t = state(c);
    if (!t->established)
        return 0;
    ERR_clear_error();
    errno = 0;
    t->write_blocked = 0;
    int rc = SSL_shutdown(t->ssl);
    if (rc >= 0) /* sent (1: theirs had come, 0: it had not; either way) */
        return 0;
    ssize_t out = outcome(c, fd, rc, EK_EV_READ, &t->write_blocked);
    return out == 0 ? 0 : (int)out;
}

static void tls_release(struct ek_conn *c)
{
    struct tls_conn *t = state(c);
    if (t == NULL)
        return;
    SSL_free(t->ssl);
    free(t);
    c->tp_state = NULL;
}

/* A session on fd, accepting (server) or connecting (client). */
static int attach(struct ek_conn *c, int fd, SSL *ssl, struct ek_stats *stats)
{
    struct tls_conn *t = calloc(1, sizeof(*t));
    if (ssl == NULL || t == NULL || !SSL_set_fd(ssl, fd)) {
        SSL_free(ssl);
        free(t);
        return -ENOMEM;
    }
    t->ssl = ssl;
    t->stats = stats;
    c->tp_state = t;
    return 0;
}

static int tls_open(struct ek_conn *c, int fd, const struct ek_server *srv)
{
    /* The blocking models' sockets too: every call must return at once. */
    int err = ek_net_set_nonblock(fd, true);
    if (err == 0)
        err = attach(c, fd, ek_tls_server_session(srv->cfg->tls), srv->stats);
    if (err < 0)
        return err;
    struct tls_conn *t = state(c);
    SSL_set_accept_state(t->ssl);
    t->ktls = ek_tls_server_ktls(srv->cfg->tls);
    return 0;
}

int ek_tls_client_attach(struct ek_tls_client *tc, struct ek_conn *c, int fd,
                         const char *host)
{
    int err = attach(c, fd, ek_tls_client_session(tc, host), NULL);
    if (err < 0)
        return err;
    SSL_set_connect_state(state(c)->ssl);
    SSL_set_msg_callback(state(c)->ssl, on_client_record);
    SSL_set_msg_callback_arg(state(c)->ssl, state(c));
    c->tp = EK_TP_TLS;
    return 0;
}

int ek_tls_handshake(struct ek_conn *c, int fd, unsigned *wait)
{
    struct tls_conn *t = state(c);
    if (t->established)
        return 0;
    ERR_clear_error();
    errno = 0;
    int rc = SSL_do_handshake(t->ssl);
    if (rc == 1) {
        established(c, fd);
        return 0;
    }
    uint8_t other = 0;
    ssize_t out = outcome(c, fd, rc, EK_EV_READ | EK_EV_WRITE, &other);
    if (out == -EAGAIN) {
        *wait = other;
        return -EAGAIN;
    }
    if (out == 0) /* the end, taken as such: still no handshake */
        t->why = closed_in_handshake;
    return out == 0 ? -EPROTO : (int)out;
}

const char *ek_tls_error(const struct ek_conn *c)
{
    return state(c) != NULL ? state(c)->why : NULL;
}

bool ek_tls_truncated(const struct ek_conn *c)
{
    return state(c) != NULL && state(c)->truncated;
}

bool ek_tls_resumed(const struct ek_conn *c)
{
    return state(c) != NULL && SSL_session_reused(state(c)->ssl) == 1;
}

bool ek_tls_established(const struct ek_conn *c)
{
    return state(c) != NULL && state(c)->established;
}

const struct ek_transport ek_transport_tls = {
    .name = "tls",
    .id = EK_TP_TLS,
    .open = tls_open,
    .read = tls_read,
    .writev = tls_writev,
    .pending = tls_pending,
    .blocked = tls_blocked,
    .handshaking = tls_handshaking,
    .finish = tls_finish,
    .release = tls_release,
    .splice = false,
    .header_peek = true,
};

/* ---- over memory, for the completion engine -------------------------- */

/* A session whose records come from and go to memory BIOs. */
static int tls_mem_open(struct ek_conn *c, int fd, const struct ek_server *srv)
{
    (void)fd;
    SSL *ssl = ek_tls_server_session(srv->cfg->tls);
    BIO *in = BIO_new(BIO_s_mem()), *out = BIO_new(BIO_s_mem());
    struct tls_conn *t = calloc(1, sizeof(*t));
    if (ssl == NULL || in == NULL || out == NULL || t == NULL) {
        SSL_free(ssl);
        BIO_free(in);
        BIO_free(out);
        free(t);
        return -ENOMEM;
    }
    SSL_set_bio(ssl, in, out); /* the session owns them now */
    SSL_set_accept_state(ssl);
    t->ssl = ssl;
    t->stats = srv->stats;
    t->ktls = false; /* the kernel never sees these records */
    c->tp_state = t;
    return 0;
}

int ek_tls_mem_input(struct ek_conn *c, const void *data, size_t n)
{
    BIO *in = SSL_get_rbio(state(c)->ssl);
    while (n > 0) {
        int chunk = n > INT_MAX ? INT_MAX : (int)n;
        int k = BIO_write(in, data, chunk);
        if (k <= 0)
            return -ENOMEM;
        data = (const char *)data + k;
        n -= (size_t)k;
    }
    return 0;
}

void ek_tls_mem_eof(struct ek_conn *c)
{
    /* Empty now reads as the end, not as "more later". */
    BIO_set_mem_eof_return(SSL_get_rbio(state(c)->ssl), 0);
}

size_t ek_tls_mem_output(const struct ek_conn *c, const char **data)
{
    char *p = NULL;
    long n = BIO_get_mem_data(SSL_get_wbio(state(c)->ssl), &p);
    *data = p;
    return n > 0 ? (size_t)n : 0;
}

void ek_tls_mem_output_taken(struct ek_conn *c)
{
    (void)BIO_reset(SSL_get_wbio(state(c)->ssl));
}

const struct ek_transport ek_transport_tls_mem = {
    .name = "tls-memory",
    .id = EK_TP_TLS_MEM,
    .open = tls_mem_open,
    .read = tls_read,
    .writev = tls_writev,
    .pending = tls_pending,
    .blocked = tls_blocked,
    .handshaking = tls_handshaking,
    .finish = tls_finish,
    .release = tls_release,
    .splice = false,
    .header_peek = false,
};
