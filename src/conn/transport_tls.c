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
 * The server side starts behind a gate (ek_tls_hello.h): the ClientHello
 * is read here, judged and kept (at most EK_TLS_HELLO_MAX bytes) until it
 * has all come, and only then handed to OpenSSL, through a filter BIO in
 * front of the socket's that serves the kept bytes first. A ClientHello
 * past the bound is refused before OpenSSL allocates anything for it, and
 * a client that stalls halfway holds no OpenSSL buffer. What came after
 * it waits until OpenSSL has answered: a HelloRetryRequest (TLS 1.3)
 * makes the gate judge the second ClientHello as it did the first.
 * Everything else the client sends before the handshake's end is bounded
 * by its bytes (EK_TLS_FLIGHT_MAX, counted as OpenSSL reads them: the
 * filter stays until the handshake's end), so that no message OpenSSL
 * would buffer, known or not, can hold more. --max-handshakes bounds the
 * connections between the accept and the handshake's end (ek_admit.h).
 *
 * The io_uring engine's TLS (ek_transport_tls_mem, at the end of this
 * file) reads records from the ring's receive buffers and writes them
 * into the connection's queue, through a BIO of its own that keeps no
 * copy: an idle connection holds no buffer there either.
 *
 * Memory: OpenSSL's state (about 15 KiB once the handshake is done, README)
 * plus its record buffers while a record is in flight
 * (SSL_MODE_RELEASE_BUFFERS frees them when idle), and this state, 88
 * bytes; during the handshake the gate's buffer, freed once OpenSSL has
 * read what it kept.
 */
#include "ek_backend.h"
#include "ek_conn.h"
#include "ek_log.h"
#include "ek_net.h"
#include "ek_platform.h"
#include "ek_stats.h"
#include "ek_tls.h"
#include "ek_tls_hello.h"
#include "ek_transport.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* The most plaintext one record carries; each SSL_write takes at most
 * this, so a write that waited owes at most this much. */
#define EK_TLS_RECORD EK_TLS_RECORD_MAX

/* Where the gate stands. */
enum {
    GATE_JUDGING, /* a ClientHello is coming: OpenSSL gets none of it */
    GATE_HELD,    /* it has all come: OpenSSL reads it (up to end); what
                     came after it waits for OpenSSL's answer */
    GATE_OPEN,    /* answered: OpenSSL reads what is kept, then the rest */
};

/* The start of the stream while the gate judges it: what came, kept for
 * OpenSSL. Allocated with the first bytes, freed once OpenSSL has read
 * them all and answered the last ClientHello. */
struct tls_gate {
    struct ek_tls_hello hello;
    uint32_t have; /* bytes kept */
    uint32_t off;  /* of them, read by OpenSSL */
    uint32_t end;  /* GATE_HELD: where the ClientHello's records end */
    uint8_t phase; /* GATE_* */
    bool retried;  /* the second ClientHello is (or was) judged */
    char buf[EK_TLS_HELLO_MAX];
};

/* A client's handshake that met the end of the stream, whether OpenSSL
 * takes it as an error (no close_notify) or, with --allow-truncation, as
 * the end. */
static const char closed_in_handshake[] =
    "the peer closed the connection during the handshake";

/* What the server's first record header told a client (first_back). */
enum { FIRST_NONE, FIRST_TLS, FIRST_OWN_HELLO, FIRST_NOT_TLS };

struct tls_conn {
    SSL *ssl;
    const struct ek_conn_ctx *ctx; /* server side: its counts and limits */
    const char *why;               /* the failure, for the client's message */
    struct tls_gate *gate;         /* server side: see above */
    /* ek_transport_tls_mem: the records lent for one call (in) and where
     * the ones OpenSSL makes go (out, gathered in out_env->buf first),
     * between ek_tls_mem_lend and ek_tls_mem_done; a slot's address may
     * change between calls. */
    const char *in;
    size_t in_len;
    struct ek_conn *out;
    const struct ek_conn_env *out_env;
    size_t staged;           /* bytes gathered in out_env->buf */
    uint32_t owed;           /* a write waited: retry with >= this many */
    uint8_t read_blocked;    /* EK_EV_WRITE: the last read must write */
    uint8_t write_blocked;   /* EK_EV_READ: the last write must read */
    uint8_t hello[5];        /* client: its first record's header (the
                                ClientHello's), until the handshake ends */
    uint16_t flight;         /* server: bytes OpenSSL read before the
                                handshake's end, but the ClientHellos */
    uint16_t hellos;         /* server: the ClientHellos' bytes (saturating) */
    bool gated : 1;          /* server side: a ClientHello is judged */
    bool retry : 1;          /* server: it sent a HelloRetryRequest */
    bool too_long : 1;       /* server: the flight passed its bound */
    bool filtered : 1;       /* the gate's filter is before the socket's */
    bool established : 1;    /* handshake done (and counted) */
    bool more : 1;           /* the last read stopped with records held */
    bool renegotiation : 1;  /* TLS 1.2: the client asked to renegotiate */
    bool ktls : 1;           /* log whether the kernel took TLS */
    bool mem : 1;            /* ek_transport_tls_mem */
    bool in_eof : 1;         /* mem: the stream has ended */
    bool out_failed : 1;     /* mem: the queue could not take a record */
    bool truncated : 1;      /* client: the server's FIN, no close_notify */
    unsigned first_back : 2; /* client: FIRST_*, the server's first record */
};

/* --max-handshakes, as the server side takes a connection: true when it
 * may start its handshake, counted among those under way until
 * handshake_end (its handshake done, failed or cut); false over the
 * limit: counted as refused ("handshakes") and logged, and the caller
 * closes it. Count first, then check: exact with any number of threads
 * and processes (the counters are shared). */
static bool handshake_begin(const struct ek_conn_ctx *ctx, int fd)
{
    static struct ek_ratelimit refused_log;
    static pthread_mutex_t refused_log_lock = PTHREAD_MUTEX_INITIALIZER;
    atomic_uint_fast64_t *n = &ctx->stats->tls_handshaking;
    uint64_t before = atomic_fetch_add_explicit(n, 1, memory_order_relaxed);
    if (before < ctx->max_handshakes)
        return true;
    atomic_fetch_sub_explicit(n, 1, memory_order_relaxed);
    ek_stat_add(&ctx->stats->refused_handshakes, 1);
    if (!ek_log_enabled(EK_LOG_WARN))
        return false;
    char name[EK_ADDRSTR_MAX];
    ek_net_peer_name(fd, name, sizeof(name));
    pthread_mutex_lock(&refused_log_lock);
    ek_log_limited(&refused_log, EK_LOG_WARN,
                   "refused a TLS connection from %s: %llu handshakes under "
                   "way (--max-handshakes)",
                   name, (unsigned long long)ctx->max_handshakes);
    pthread_mutex_unlock(&refused_log_lock);
    return false;
}

static void handshake_end(const struct ek_conn_ctx *ctx)
{
    atomic_fetch_sub_explicit(&ctx->stats->tls_handshaking, 1,
                              memory_order_relaxed);
}

static struct tls_conn *state(const struct ek_conn *c)
{
    return c->tp_state;
}

/* The server's records and messages. During the handshake: whether it
 * sent a HelloRetryRequest, after which the gate judges the second
 * ClientHello. After it (TLS 1.2): renegotiation, which the server
 * refuses (OpenSSL answers a warning alert and would carry on), a
 * handshake record from the client. TLS 1.3 has no renegotiation, and its
 * records all look like application data. */
static void on_server_msg(int write_p, int version, int content_type,
                          const void *buf, size_t len, SSL *ssl, void *arg)
{
    (void)version;
    (void)ssl;
    struct tls_conn *t = arg;
    const unsigned char *p = buf;
    if (!t->established) {
        if (write_p && content_type == SSL3_RT_HANDSHAKE && len >= 38 &&
            p[0] == SSL3_MT_SERVER_HELLO &&
            memcmp(p + 6, ek_tls_hrr_random, sizeof(ek_tls_hrr_random)) == 0)
            t->retry = true;
        return;
    }
    if (!write_p && content_type == SSL3_RT_HEADER && len >= 1 &&
        p[0] == SSL3_RT_HANDSHAKE)
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
    if (t->ctx != NULL)
        ek_stat_add(&t->ctx->stats->tls_failed[why], 1);
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
    /* on_client_record's work ends; on_server_msg's too, but in TLS 1.2. */
    if (!SSL_is_server(t->ssl) || SSL_version(t->ssl) >= TLS1_3_VERSION)
        SSL_set_msg_callback(t->ssl, NULL);
    if (t->ctx == NULL)
        return;
    handshake_end(t->ctx);
    ek_stat_add(&t->ctx->stats->tls_handshakes, 1);
    if (SSL_session_reused(t->ssl))
        ek_stat_add(&t->ctx->stats->tls_resumed, 1);
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

/* The stream ended (err 0: the client's close_notify or FIN) or failed
 * (-errno); before the handshake's end that is counted ("closed") and
 * logged. Returns err. */
static ssize_t cut(struct tls_conn *t, int fd, int err)
{
    if (t->established)
        return err;
    count(t, EK_TLS_FAIL_CLOSED);
    if (err < 0)
        t->why = strerror(-err);
    ek_log(EK_LOG_DEBUG,
           "fd %d: closed before the end of its TLS handshake%s%s", fd,
           err < 0 ? ": " : "", err < 0 ? strerror(-err) : "");
    return err;
}

/* What an OpenSSL call that returned "no" means for the engine: -EAGAIN
 * (with *blocked the readiness it waits for, when among want_other), 0
 * (the peer's close_notify, or its TCP FIN), or -errno. */
static ssize_t outcome(struct ek_conn *c, int fd, int ret, unsigned want_other,
                       uint8_t *blocked)
{
    struct tls_conn *t = state(c);
    int e = SSL_get_error(t->ssl, ret);
    if (t->out_failed) { /* mem: no memory for the records made */
        ERR_clear_error();
        return -ENOMEM;
    }
    switch (e) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE: {
        unsigned needs = e == SSL_ERROR_WANT_READ ? EK_EV_READ : EK_EV_WRITE;
        *blocked = (uint8_t)(needs & want_other);
        return -EAGAIN;
    }
    case SSL_ERROR_ZERO_RETURN:
        return cut(t, fd, 0);
    case SSL_ERROR_SYSCALL: {
        int err = errno != 0 ? errno : ECONNRESET;
        ERR_clear_error();
        return cut(t, fd, -err);
    }
    default:
        return protocol_error(t, fd);
    }
}

/* ---- the gate: the ClientHello before OpenSSL (server side) ----------- */

/* The records gathered in the engine's buffer join the queue. Returns 0
 * or -ENOMEM (remembered: the connection fails). */
static int stage_flush(struct tls_conn *t)
{
    int err = t->staged > 0 ? ek_conn_queue(t->out, t->out_env, t->out_env->buf,
                                            t->staged, false)
                            : 0;
    t->staged = 0;
    if (err < 0)
        t->out_failed = true;
    return err;
}

/* A record OpenSSL made (or an alert of ours) for the connection's
 * queue. OpenSSL writes a record at a time, and a queue takes each append
 * in chunks of its size: they gather in the engine's buffer first
 * (out_env->buf, shared by its connections), so that the queue gets them
 * in chunks of up to 64 KiB, which the engine sends one at a time, as it
 * would the echo of plain TCP. Returns 0 or -ENOMEM. */
static int mem_out(struct tls_conn *t, const char *data, size_t len)
{
    const struct ek_conn_env *env = t->out_env;
    if (t->out == NULL) {
        t->out_failed = true; /* not reached: every call is within a loan */
        return -ENOMEM;
    }
    if (t->staged + len > env->buf_size && stage_flush(t) < 0)
        return -ENOMEM;
    if (len > env->buf_size) {
        if (ek_conn_queue(t->out, env, data, len, false) == 0)
            return 0;
        t->out_failed = true;
        return -ENOMEM;
    }
    memcpy(env->buf + t->staged, data, len);
    t->staged += len;
    return 0;
}

/* A fatal alert of ours, for what OpenSSL never saw: a TLS 1.2 record
 * (the version every client accepts in an alert before the hello's
 * answer) of level fatal. */
static void put_alert(struct ek_conn *c, int fd, unsigned char desc)
{
    struct tls_conn *t = state(c);
    const unsigned char alert[7] = {21, 3, 3, 0, 2, 2, desc};
    if (t->mem) { /* after OpenSSL's records, which the engine sends */
        (void)mem_out(t, (const char *)alert, sizeof(alert));
        return;
    }
    /* If the socket takes it now, as OpenSSL's own alerts. */
    ssize_t n;
    do
        n = send(fd, alert, sizeof(alert), MSG_DONTWAIT | EK_MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
}

/* The gate's verdict on what came: 1 to go on to OpenSSL, -EAGAIN for
 * more, or -EPROTO (refused: counted, logged, our alert sent). */
static ssize_t gate_verdict(struct ek_conn *c, int fd,
                            enum ek_tls_hello_verdict verdict)
{
    struct tls_conn *t = state(c);
    switch (verdict) {
    case EK_HELLO_MORE:
        return -EAGAIN;
    case EK_HELLO_PASS:
        t->gated = false;
        t->gate->end = t->gate->hello.seen; /* the rest waits (gate_take) */
        t->gate->phase = GATE_HELD;
        return 1;
    case EK_HELLO_TOO_LARGE: {
        uint32_t claim = ek_tls_hello_claim(&t->gate->hello);
        const char *which = t->gate->retried ? "second " : "";
        count(t, EK_TLS_FAIL_TOO_LARGE);
        t->why = "ClientHello too large";
        if (claim > EK_TLS_HELLO_MAX - 9)
            ek_log(EK_LOG_DEBUG,
                   "fd %d: TLS handshake refused: a %sClientHello of %lu "
                   "bytes, more than %d",
                   fd, which, (unsigned long)claim, EK_TLS_HELLO_MAX - 9);
        else
            ek_log(EK_LOG_DEBUG,
                   "fd %d: TLS handshake refused: the records of its "
                   "%sClientHello pass %d bytes",
                   fd, which, EK_TLS_HELLO_MAX);
        put_alert(c, fd, 47); /* illegal_parameter, as OpenSSL says */
        return -EPROTO;
    }
    default: /* EK_HELLO_EMPTY, EK_HELLO_UNEXPECTED */
        count(t, EK_TLS_FAIL_PROTOCOL);
        t->why = verdict == EK_HELLO_EMPTY
                     ? "empty handshake record"
                     : "a record other than the second ClientHello after a "
                       "HelloRetryRequest";
        ek_log(EK_LOG_DEBUG, "fd %d: TLS handshake failed: %s", fd, t->why);
        put_alert(c, fd, 10); /* unexpected_message */
        return -EPROTO;
    }
}

/* Of len bytes of the stream past the ClientHellos, how many OpenSSL may
 * read now: all once the handshake is done; before, what is left of the
 * client's flight (EK_TLS_FLIGHT_MAX; under mTLS, which the verify mode
 * says, EK_TLS_FLIGHT_MTLS_MAX). None left: t->too_long. */
static bool mtls(const struct tls_conn *t)
{
    return (SSL_get_verify_mode(t->ssl) & SSL_VERIFY_PEER) != 0;
}

/* The client's budget past its ClientHellos: EK_TLS_FLIGHT_MAX, or under
 * mTLS EK_TLS_FLIGHT_MTLS_MAX, less, in TLS 1.2 (known once the server
 * has answered, before any of the flight is read), the ClientHello, which
 * OpenSSL keeps until the CertificateVerify (TLS 1.3 keeps a hash). */
static size_t flight_max(const struct tls_conn *t)
{
    if (!mtls(t))
        return EK_TLS_FLIGHT_MAX;
    if (SSL_version(t->ssl) >= TLS1_3_VERSION)
        return EK_TLS_FLIGHT_MTLS_MAX;
    return t->hellos < EK_TLS_FLIGHT_MTLS_MAX
               ? EK_TLS_FLIGHT_MTLS_MAX - t->hellos
               : 0;
}

static size_t flight_room(struct tls_conn *t, size_t len)
{
    if (SSL_is_init_finished(t->ssl))
        return len;
    size_t max = flight_max(t);
    size_t room = t->flight < max ? max - t->flight : 0;
    if (room == 0 && len > 0)
        t->too_long = true;
    return len < room ? len : room;
}

/* Adds n to a count, saturating. */
static void add_sat(uint16_t *count, size_t n)
{
    size_t sum = (size_t)*count + n;
    *count = (uint16_t)(sum < UINT16_MAX ? sum : UINT16_MAX);
}

/* OpenSSL read n bytes that flight_room allowed. */
static void flight_took(struct tls_conn *t, size_t n)
{
    if (!SSL_is_init_finished(t->ssl))
        add_sat(&t->flight, n);
}

/* The client's flight passed its bound (EK_TLS_FLIGHT_MAX): refused as a
 * ClientHello too large is. Returns -EPROTO. */
static ssize_t flight_refused(struct ek_conn *c, int fd)
{
    struct tls_conn *t = state(c);
    count(t, EK_TLS_FAIL_TOO_LARGE);
    t->why = "handshake too large";
    ek_log(EK_LOG_DEBUG,
           "fd %d: TLS handshake refused: the client's handshake passed "
           "its %zu bytes (the ClientHellos but under TLS 1.2 with a "
           "client certificate asked for)",
           fd, flight_max(t));
    ERR_clear_error();
    put_alert(c, fd, 47);
    return -EPROTO;
}

_Static_assert(EK_TLS_FLIGHT_MTLS_MAX <= UINT16_MAX,
               "tls_conn.flight counts up to the flight's bound");

/* The gate's state, made with the first bytes; its buffer is left
 * untouched until bytes come, so that only what came is resident. */
static struct tls_gate *gate_of(struct tls_conn *t)
{
    if (t->gate == NULL && (t->gate = malloc(sizeof(*t->gate))) != NULL) {
        memset(&t->gate->hello, 0, sizeof(t->gate->hello));
        t->gate->have = t->gate->off = t->gate->end = 0;
        t->gate->phase = GATE_JUDGING;
        t->gate->retried = false;
    }
    return t->gate;
}

/* Takes what the socket holds, up to the gate's room, and judges it. As
 * tls_read returns, or 1 once OpenSSL may go on. */
static ssize_t gate_read(struct ek_conn *c, int fd)
{
    struct tls_conn *t = state(c);
    struct tls_gate *g = gate_of(t);
    if (g == NULL)
        return -ENOMEM;
    /* (Judged already when the gate was armed again, from what it kept.) */
    enum ek_tls_hello_verdict verdict =
        (enum ek_tls_hello_verdict)g->hello.verdict;
    while (verdict == EK_HELLO_MORE) {
        /* While it says "more", every byte kept belongs to the
         * ClientHello's records, which fit in the buffer: there is room
         * (checked all the same). */
        if (g->have == sizeof(g->buf)) {
            verdict = EK_HELLO_TOO_LARGE;
            break;
        }
        ssize_t n =
            recv(fd, g->buf + g->have, sizeof(g->buf) - g->have, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN
                                                           : cut(t, fd, -errno);
        if (n == 0)
            return cut(t, fd, 0);
        verdict = ek_tls_hello_feed(&g->hello, g->buf + g->have, (size_t)n);
        g->have += (uint32_t)n;
    }
    return gate_verdict(c, fd, verdict);
}

/* The completion engine's bytes lent for this call (t->in) go to the
 * gate: kept while it says "more" (they fit: all of them are then the
 * ClientHello's); once it passes, the ClientHello's own are kept, for
 * OpenSSL to read first, and the rest stays lent, to be read once OpenSSL
 * has answered. Refused: none is read. */
static void gate_lend(struct tls_conn *t)
{
    struct tls_gate *g = t->gate;
    uint32_t before = g->hello.seen; /* == g->have while judging */
    enum ek_tls_hello_verdict verdict =
        ek_tls_hello_feed(&g->hello, t->in, t->in_len);
    size_t k = verdict == EK_HELLO_MORE   ? t->in_len
               : verdict == EK_HELLO_PASS ? g->hello.seen - before
                                          : 0;
    if (k > sizeof(g->buf) - g->have) { /* not reached: see gate_read */
        g->hello.verdict = EK_HELLO_TOO_LARGE;
        k = 0;
    }
    memcpy(g->buf + g->have, t->in, k);
    g->have += (uint32_t)k;
    t->in += k;
    t->in_len = g->hello.verdict == EK_HELLO_PASS ? t->in_len - k : 0;
}

/* OpenSSL has read all of the ClientHello the gate held, and answered it
 * (it asks for more only then: a record whole is processed before the
 * next is read). A HelloRetryRequest (on_server_msg saw it go out) asks
 * for a second ClientHello, which the gate judges as the first, from the
 * bytes kept after the first (none from a client that waits for the
 * answer, as it must) and those lent; after the second, or any other
 * answer, the gate opens. */
static void answered(struct tls_conn *t)
{
    struct tls_gate *g = t->gate;
    if (!t->retry || g->retried) {
        g->phase = GATE_OPEN;
        return;
    }
    g->retried = true;
    g->have -= g->end;
    memmove(g->buf, g->buf + g->end, g->have);
    g->off = g->end = 0;
    g->phase = GATE_JUDGING;
    t->gated = true;
    ek_tls_hello_retry(&g->hello);
    (void)ek_tls_hello_feed(&g->hello, g->buf, g->have);
    if (t->mem && g->hello.verdict == EK_HELLO_MORE)
        gate_lend(t);
}

/* Up to len bytes of what the gate kept, for OpenSSL: the ClientHello it
 * judged; then, once OpenSSL has answered it, what came after, which is
 * the client's flight (bounded: flight_room) or its second ClientHello
 * (judged first: t->gated again). */
static size_t gate_take(struct tls_conn *t, char *out, size_t len)
{
    struct tls_gate *g = t->gate;
    if (g == NULL || t->gated)
        return 0;
    if (g->phase == GATE_HELD && g->off == g->end)
        answered(t);
    if (t->gated || g->off == g->have)
        return 0;
    size_t n = g->phase == GATE_HELD ? g->end - g->off
                                     : flight_room(t, g->have - g->off);
    if (n > len)
        n = len;
    memcpy(out, g->buf + g->off, n);
    g->off += (uint32_t)n;
    if (g->phase == GATE_OPEN)
        flight_took(t, n);
    else
        add_sat(&t->hellos, n); /* flight_max's, under mTLS in TLS 1.2 */
    return n;
}

/* Whether OpenSSL has read all the gate kept and answered the last
 * ClientHello (then the gate can go). */
static bool gate_drained(const struct tls_conn *t)
{
    return t->gate != NULL && t->gate->phase == GATE_OPEN &&
           t->gate->off == t->gate->have;
}

/* The filter in front of the socket BIO until the handshake's end: reads
 * take what the gate kept first, and the socket's bytes count against
 * the flight's bound; everything else is the socket BIO's. */
static int filter_read(BIO *b, char *out, size_t len, size_t *got)
{
    struct tls_conn *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    *got = gate_take(t, out, len);
    if (*got > 0)
        return 1;
    if (t->gated) { /* a second ClientHello: tls_read judges it first */
        BIO_set_retry_read(b);
        return 0;
    }
    size_t room = t->too_long ? 0 : flight_room(t, len);
    if (room == 0)
        return 0; /* too long (tls_read says so), as an end for OpenSSL */
    int ok = BIO_read_ex(BIO_next(b), out, room, got);
    BIO_copy_next_retry(b);
    if (ok)
        flight_took(t, *got);
    return ok;
}

static int filter_write(BIO *b, const char *data, size_t len, size_t *put)
{
    BIO_clear_retry_flags(b);
    int ok = BIO_write_ex(BIO_next(b), data, len, put);
    BIO_copy_next_retry(b);
    return ok;
}

static long filter_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct tls_conn *t = BIO_get_data(b);
    if (cmd == BIO_CTRL_PUSH || cmd == BIO_CTRL_POP)
        return 0; /* about the filter itself: nothing to pass on */
    long rc = BIO_next(b) != NULL ? BIO_ctrl(BIO_next(b), cmd, num, ptr) : 0;
    if (cmd == BIO_CTRL_PENDING && t != NULL && t->gate != NULL && !t->gated)
        rc += (long)(t->gate->have - t->gate->off);
    return rc;
}

static int bio_create(BIO *b)
{
    BIO_set_init(b, 1);
    return 1;
}

/* ---- the BIO of the completion engine's TLS --------------------------- */

/* Records from what the gate kept, then from what the engine lent; none:
 * "later", or the end once the stream has ended (or, too long, now). */
static int mem_read(BIO *b, char *out, size_t len, size_t *got)
{
    struct tls_conn *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    size_t n = gate_take(t, out, len);
    if (n == 0 && t->in_len > 0 && !t->gated && !t->too_long) {
        n = flight_room(t, t->in_len < len ? t->in_len : len);
        memcpy(out, t->in, n);
        t->in += n;
        t->in_len -= n;
        flight_took(t, n);
    }
    *got = n;
    if (n > 0)
        return 1;
    if ((!t->in_eof || t->gated) && !t->too_long)
        BIO_set_retry_read(b);
    return 0;
}

/* Records OpenSSL made: straight into the connection's queue, which the
 * engine sends (no copy of ours to keep, or to shrink). -1 without
 * memory. */
static int mem_write(BIO *b, const char *data, size_t len, size_t *put)
{
    struct tls_conn *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    if (mem_out(t, data, len) < 0)
        return 0;
    *put = len;
    return 1;
}

static long mem_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num;
    (void)ptr;
    const struct tls_conn *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_PENDING:
        return (long)(t->in_len + (t->gate != NULL && !t->gated
                                       ? t->gate->have - t->gate->off
                                       : 0));
    case BIO_CTRL_EOF:
        return t->in_eof && t->in_len == 0;
    case BIO_CTRL_FLUSH:
    case BIO_CTRL_DUP:
        return 1;
    default: /* WPENDING (nothing held), kTLS (none), ... */
        return 0;
    }
}

static BIO_METHOD *filter_method, *mem_method;
static pthread_once_t methods_once = PTHREAD_ONCE_INIT;

/* Made once, kept for the process's life. */
static void methods_init(void)
{
    filter_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER,
                                 "echokit ClientHello gate");
    mem_method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK,
                              "echokit ring and queue");
    if (filter_method == NULL || mem_method == NULL ||
        !BIO_meth_set_read_ex(filter_method, filter_read) ||
        !BIO_meth_set_write_ex(filter_method, filter_write) ||
        !BIO_meth_set_ctrl(filter_method, filter_ctrl) ||
        !BIO_meth_set_create(filter_method, bio_create) ||
        !BIO_meth_set_read_ex(mem_method, mem_read) ||
        !BIO_meth_set_write_ex(mem_method, mem_write) ||
        !BIO_meth_set_ctrl(mem_method, mem_ctrl) ||
        !BIO_meth_set_create(mem_method, bio_create)) {
        BIO_meth_free(filter_method);
        BIO_meth_free(mem_method);
        filter_method = mem_method = NULL;
    }
}

/* ---- reading and writing ---------------------------------------------- */

/* The gate's part of a read: 1 once the ClientHello has passed, or what
 * tls_read returns. The socket's bytes are read here; the completion
 * engine's were judged as they were lent (ek_tls_mem_lend), or as the
 * gate was armed again (answered). */
static ssize_t gate(struct ek_conn *c, int fd)
{
    struct tls_conn *t = state(c);
    if (t->out_failed)
        return -ENOMEM;
    if (!t->mem)
        return gate_read(c, fd);
    enum ek_tls_hello_verdict verdict =
        t->gate != NULL ? (enum ek_tls_hello_verdict)t->gate->hello.verdict
                        : EK_HELLO_MORE;
    if (verdict == EK_HELLO_MORE && t->in_eof)
        return cut(t, fd, 0);
    return gate_verdict(c, fd, verdict);
}

/* OpenSSL has read all the gate kept, and answered the last ClientHello:
 * the gate goes; once the handshake is done, the filter in front of the
 * socket BIO goes too, and OpenSSL reads the socket directly again (the
 * BIO kernel TLS takes over). */
static void gate_done(struct tls_conn *t)
{
    if (gate_drained(t)) {
        free(t->gate);
        t->gate = NULL;
    }
    if (t->filtered && t->gate == NULL && t->established) {
        BIO *filter = SSL_get_rbio(t->ssl);
        SSL_set0_rbio(t->ssl, BIO_pop(filter)); /* frees the filter */
        t->filtered = false;
    }
}

static ssize_t tls_read(struct ek_conn *c, int fd, void *buf, size_t len)
{
    struct tls_conn *t = state(c);
    size_t total = 0;
    bool stopped = false; /* by the end, or an error */
    t->read_blocked = 0;
    t->more = false;
    ssize_t rc = t->gated ? gate(c, fd) : 1;
    if (rc != 1)
        return rc;
    rc = -EAGAIN;
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
        if (!ok && t->gated) { /* the second ClientHello, judged first */
            ERR_clear_error();
            rc = gate(c, fd);
            if (rc == 1)
                continue;
            stopped = rc != -EAGAIN;
            break;
        }
        if (!ok) {
            rc = t->too_long ? flight_refused(c, fd)
                             : outcome(c, fd, 0, EK_EV_WRITE, &t->read_blocked);
            stopped = rc != -EAGAIN;
            break;
        }
        total += n;
    }
    if (!t->mem)
        gate_done(t);
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
    if (t->ctx != NULL && !t->established)
        handshake_end(t->ctx);
    SSL_free(t->ssl);
    free(t->gate);
    free(t);
    c->tp_state = NULL;
}

/* A session on fd, accepting (server: ctx) or connecting (client). */
static int attach(struct ek_conn *c, int fd, SSL *ssl,
                  const struct ek_conn_ctx *ctx)
{
    struct tls_conn *t = calloc(1, sizeof(*t));
    if (ssl == NULL || t == NULL || !SSL_set_fd(ssl, fd)) {
        SSL_free(ssl);
        free(t);
        return -ENOMEM;
    }
    t->ssl = ssl;
    t->ctx = ctx;
    c->tp_state = t;
    return 0;
}

/* Puts the gate's filter in front of the socket BIO that SSL_set_fd made
 * (which stays the write side, and which the filter reads through). */
static int add_filter(struct tls_conn *t)
{
    BIO *sock = SSL_get_rbio(t->ssl);
    BIO *filter = BIO_new(filter_method);
    if (filter == NULL || !BIO_up_ref(sock)) { /* the filter's reference */
        BIO_free(filter);
        return -ENOMEM;
    }
    BIO_set_data(filter, t);
    BIO_push(filter, sock);
    SSL_set0_rbio(t->ssl, filter); /* drops the read side's reference */
    t->filtered = true;
    return 0;
}

/* A server session's start: behind the gate, watched for a
 * HelloRetryRequest (on_server_msg). */
static void server_start(struct tls_conn *t)
{
    SSL_set_accept_state(t->ssl);
    SSL_set_msg_callback(t->ssl, on_server_msg);
    SSL_set_msg_callback_arg(t->ssl, t);
    t->gated = true;
}

static int tls_open(struct ek_conn *c, int fd, const struct ek_conn_ctx *ctx)
{
    pthread_once(&methods_once, methods_init);
    if (filter_method == NULL)
        return -ENOMEM;
    if (!handshake_begin(ctx, fd))
        return -EBUSY;
    /* The blocking models' sockets too: every call must return at once. */
    int err = ek_net_set_nonblock(fd, true);
    if (err == 0)
        err = attach(c, fd, ek_tls_server_session(ctx->tls), ctx);
    if (err == 0 && (err = add_filter(state(c))) < 0)
        tls_release(c); /* ends the handshake's count too */
    else if (err < 0)
        handshake_end(ctx);
    if (err < 0)
        return err;
    struct tls_conn *t = state(c);
    server_start(t);
    t->ktls = ek_tls_server_ktls(ctx->tls);
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

/* A session whose records come from the engine's receives and go to the
 * connection's queue (mem_read, mem_write). */
static int tls_mem_open(struct ek_conn *c, int fd,
                        const struct ek_conn_ctx *ctx)
{
    pthread_once(&methods_once, methods_init);
    if (mem_method == NULL)
        return -ENOMEM;
    if (!handshake_begin(ctx, fd))
        return -EBUSY;
    SSL *ssl = ek_tls_server_session(ctx->tls);
    BIO *bio = BIO_new(mem_method);
    struct tls_conn *t = calloc(1, sizeof(*t));
    if (ssl == NULL || bio == NULL || t == NULL) {
        SSL_free(ssl);
        BIO_free(bio);
        free(t);
        handshake_end(ctx);
        return -ENOMEM;
    }
    BIO_set_data(bio, t);
    SSL_set_bio(ssl, bio, bio); /* the session owns it now */
    t->ssl = ssl;
    t->ctx = ctx;
    t->mem = true;
    server_start(t);
    t->ktls = false; /* the kernel never sees these records */
    c->tp_state = t;
    return 0;
}

void ek_tls_mem_lend(struct ek_conn *c, const struct ek_conn_env *env,
                     const void *data, size_t n)
{
    struct tls_conn *t = state(c);
    t->out = c;
    t->out_env = env;
    t->in = data;
    t->in_len = n;
    if (!t->gated || n == 0)
        return;
    /* The gate first: while it says "more", the bytes are all the
     * ClientHello's, kept in its buffer, not lent (gate_lend). */
    if (gate_of(t) == NULL) {
        t->out_failed = true; /* the read says -ENOMEM */
        t->in_len = 0;
        return;
    }
    gate_lend(t);
}

ssize_t ek_tls_mem_done(struct ek_conn *c)
{
    struct tls_conn *t = state(c);
    size_t left = t->in_len;
    int err = stage_flush(t);
    t->in = NULL;
    t->in_len = 0;
    t->out = NULL;
    t->out_env = NULL;
    gate_done(t);
    return err < 0 ? err : (ssize_t)left;
}

void ek_tls_mem_eof(struct ek_conn *c)
{
    state(c)->in_eof = true; /* empty now reads as the end */
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
