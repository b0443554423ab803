/*
 * Fuzz target: the server side of the TLS transport (transport_tls.c
 * under the connection layer, ek_conn.c), fed what a stranger sends to a
 * tls: listener.
 *
 * The input is written into one end of a socketpair and the connection
 * layer reads the other end, as an event loop would, until it closes the
 * connection or stops asking to read: the handshake, the records, the
 * alerts and the echo all run through echokit's own code and OpenSSL's,
 * with the server's settings (SNI and ALPN callbacks, client CA, ticket
 * keys). A socketpair, so that the transport's own reads and writes are
 * what is fuzzed; then the same bytes through the memory BIOs that the
 * io_uring engine's TLS uses; and the ClientHello gate in front of both
 * (ek_tls_hello.h), whole and cut, as the first ClientHello's gate and as
 * the second's (after a HelloRetryRequest, which the corpus's hrr_*
 * inputs ask for: their first ClientHello offers a key share of
 * ffdhe2048, which the server does not take). The server's certificate is made
 * once, at start.
 *
 * Must hold: no crash, no sanitizer report, the connection ends within a
 * bounded number of events, and nothing is ever echoed that did not come
 * out of a finished handshake (the plain bytes of the input never come
 * back as they are).
 */
#include "ek_backend.h"
#include "ek_conn.h"
#include "ek_server.h"
#include "ek_stats.h"
#include "ek_tls.h"
#include "ek_tls_hello.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#ifdef EK_HAVE_TLS
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

static struct ek_tls_server *tls;
static struct ek_stats stats;
static struct ek_config cfg;
static struct ek_conn_ctx ctx; /* what a server lends its connections */
static char buf[64 * 1024];

/* A self-signed P-256 certificate for "localhost" into dir. */
static void make_cert(const char *cert, const char *key)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    if (pk == NULL || x == NULL)
        abort();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, pk);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                               (const unsigned char *)"localhost", -1, -1, 0);
    X509_set_issuer_name(x, name);
    if (!X509_sign(x, pk, EVP_sha256()))
        abort();
    FILE *fc = fopen(cert, "w"), *fk = fopen(key, "w");
    if (fc == NULL || fk == NULL || !PEM_write_X509(fc, x) ||
        !PEM_write_PrivateKey(fk, pk, NULL, NULL, 0, NULL, NULL))
        abort();
    fclose(fc);
    fclose(fk);
    X509_free(x);
    EVP_PKEY_free(pk);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char dir[] = "/tmp/echokit-fuzz-tls-XXXXXX";
    if (mkdtemp(dir) == NULL)
        abort();
    static char cert[64], key[64];
    snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
    snprintf(key, sizeof(key), "%s/key.pem", dir);
    make_cert(cert, key);
    struct ek_tls_server_options o = {
        .ncerts = 2, .alpn = "echo,h2", .min_version = 12};
    /* Two certificates: the SNI callback has a choice to make. */
    o.certs[0] = o.certs[1] = cert;
    o.keys[0] = o.keys[1] = key;
    if (ek_tls_server_new(&o, &tls) < 0)
        abort();
    unlink(cert);
    unlink(key);
    rmdir(dir);
    cfg.tls = tls;
    cfg.max_queue = 256 * 1024;
    cfg.handshake_timeout_ms = EK_TLS_HANDSHAKE_MS;
    cfg.max_handshakes = EK_TLS_MAX_HANDSHAKES;
    ctx = (struct ek_conn_ctx){
        .stats = &stats, .tls = tls, .max_handshakes = cfg.max_handshakes};
    return 0;
}

/* Reads and drops what the server sent. */
static void drain(int fd)
{
    char sink[16384];
    while (recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0)
        ;
}

/* The same bytes through the completion engine's TLS
 * (ek_transport_tls_mem, as model_uring.c drives it), in two receives cut
 * where the input's first byte says: lent to OpenSSL, the stream's end
 * marked, what it decrypts written back into the queue with what it
 * makes. */
static void memory_bio(const uint8_t *data, size_t size)
{
    struct ek_conn c;
    const struct ek_conn_env env = {.counters = &stats.loop[1],
                                    .max_queue = cfg.max_queue,
                                    .pipe = {-1, -1}};
    if (ek_conn_open(&c, -1, &ek_transport_tls_mem, &ctx) < 0)
        abort();
    const struct ek_transport *tp = ek_conn_tp(&c);
    uint64_t echoed = 0;
    size_t cut = size > 0 ? data[0] * size / 256 : 0;
    const struct {
        const uint8_t *p;
        size_t n;
    } recv[] = {{data, cut}, {data + cut, size - cut}, {NULL, 0}};
    bool failed = false;
    for (size_t r = 0; r < 3 && !failed; r++) {
        if (r == 2)
            ek_tls_mem_eof(&c);
        ek_tls_mem_lend(&c, &env, recv[r].p, recv[r].n);
        for (int turns = 0;; turns++) {
            if (turns == 1000)
                abort(); /* the input has ended: so must this */
            ssize_t k = tp->read(&c, -1, buf, sizeof(buf));
            failed = k != -EAGAIN && k <= 0;
            if (k <= 0)
                break;
            struct iovec iov = {.iov_base = buf, .iov_len = (size_t)k};
            if (tp->writev(&c, -1, &iov, 1) != k)
                abort(); /* into the queue: all of it */
            echoed += (uint64_t)k;
        }
        /* OpenSSL reads all it is lent but after an end or an error. */
        if (ek_tls_mem_done(&c) != 0 && !failed)
            abort();
    }
    if (echoed > 0 && !ek_tls_established(&c))
        abort();
    ek_conn_release(&c);
}

/* A fresh gate: a first ClientHello's, or (retry) a second one's. */
static void gate_init(struct ek_tls_hello *h, bool retry)
{
    memset(h, 0, sizeof(*h));
    if (retry)
        ek_tls_hello_retry(h);
}

/* The ClientHello gate, for a first ClientHello and for a second (after a
 * HelloRetryRequest): the same verdict on the input fed whole, and cut
 * anywhere in two. */
static void gate(const uint8_t *data, size_t size)
{
    for (int retry = 0; retry < 2; retry++) {
        struct ek_tls_hello whole, split;
        gate_init(&whole, retry);
        enum ek_tls_hello_verdict v = ek_tls_hello_feed(&whole, data, size);
        for (size_t cut = 0; cut <= size && cut < 64; cut++) {
            gate_init(&split, retry);
            (void)ek_tls_hello_feed(&split, data, cut);
            if (ek_tls_hello_feed(&split, data + cut, size - cut) != v)
                abort();
        }
        if (v == EK_HELLO_PASS && whole.seen > EK_TLS_HELLO_MAX)
            abort(); /* it never lets more than its bound through */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    if (size > 65536 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) < 0)
        return 0;
    /* The client's bytes, then its end of the stream. */
    size_t off = 0;
    while (off < size) {
        ssize_t n = send(sv[1], data + off, size - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    shutdown(sv[1], SHUT_WR);

    struct ek_conn c;
    const struct ek_conn_env env = {.counters = &stats.loop[0],
                                    .max_queue = cfg.max_queue,
                                    .buf = buf,
                                    .buf_size = sizeof(buf),
                                    .pipe = {-1, -1}};
    if (ek_conn_open(&c, sv[0], &ek_transport_tls, &ctx) < 0)
        abort();
    uint64_t echoed_before = stats.loop[0].bytes_out;
    /* The input has ended: every connection must end, and soon (each
     * event reads up to 64 KiB; 1000 is far beyond any input's need). */
    int events = 0;
    for (;; events++) {
        if (events == 1000)
            abort();
        int rc = ek_conn_event(&c, sv[0], &env, EK_EV_READ | EK_EV_WRITE);
        drain(sv[1]);
        if (rc != EK_CONN_KEEP || ek_conn_want(&c, env.max_queue) == 0)
            break;
    }
    /* A client that never finished a handshake gets nothing echoed. */
    if (!ek_tls_established(&c) && stats.loop[0].bytes_out != echoed_before)
        abort();
    ek_conn_release(&c);
    close(sv[0]);
    close(sv[1]);
    memory_bio(data, size);
    gate(data, size);
    /* Every connection's handshake slot (--max-handshakes) went back. */
    if (atomic_load(&stats.tls_handshaking) != 0)
        abort();
    return 0;
}

#else /* a build without OpenSSL has no TLS to fuzz */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)data;
    (void)size;
    return 0;
}

#endif
