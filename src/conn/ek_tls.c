/*
 * ek_tls: OpenSSL contexts for the server and the clients (see ek_tls.h).
 */
#include "ek_tls.h"
#include "ek_log.h"
#include "ek_tls_hello.h"
#include "ek_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/mman.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

/* TLS 1.2 session IDs the server remembers (tickets, the default, need no
 * memory): a bound, not OpenSSL's 20 000. */
#define EK_TLS_SESSION_CACHE 4096

/* ALPN in its wire form: each name preceded by its length. */
struct alpn {
    unsigned char wire[EK_TLS_ALPN_WIRE_MAX];
    unsigned len;
};

/* alpn was checked by ek_tls_alpn_check. */
static void alpn_wire(const char *alpn, struct alpn *out)
{
    out->len = 0;
    for (const char *p = alpn;; p++) {
        size_t n = strcspn(p, ",");
        out->wire[out->len++] = (unsigned char)n;
        memcpy(out->wire + out->len, p, n);
        out->len += (unsigned)n;
        p += n;
        if (*p == '\0')
            break;
    }
}

/* OpenSSL's error queue, taken (it is left empty): the codes of the last
 * failure, oldest first. */
struct openssl_errors {
    unsigned long code[8];
    size_t n;
};

static void take_errors(struct openssl_errors *q)
{
    unsigned long e;
    q->n = 0;
    while ((e = ERR_get_error()) != 0)
        if (q->n < sizeof(q->code) / sizeof(q->code[0]))
            q->code[q->n++] = e;
}

static bool has_reason(const struct openssl_errors *q, int lib, int reason)
{
    for (size_t i = 0; i < q->n; i++)
        if (!ERR_SYSTEM_ERROR(q->code[i]) && ERR_GET_LIB(q->code[i]) == lib &&
            ERR_GET_REASON(q->code[i]) == reason)
            return true;
    return false;
}

/* Their reasons in one line. A system error is the system's text (OpenSSL
 * 3.0 has none for it: "system lib"). */
static void errors_text(const struct openssl_errors *q, char *buf, size_t size)
{
    size_t len = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < q->n && len + 2 < size; i++) {
        unsigned long e = q->code[i];
        const char *r = ERR_SYSTEM_ERROR(e) ? strerror(ERR_GET_REASON(e))
                                            : ERR_reason_error_string(e);
        int n = snprintf(buf + len, size - len, "%s%s", len ? "; " : "",
                         r != NULL ? r : "unknown error");
        if (n < 0)
            break;
        len += (size_t)n;
    }
    if (len == 0)
        snprintf(buf, size, "unknown error");
}

/* Prints "what FILE: OpenSSL's reason". Returns -EINVAL. */
static int load_failed(const char *what, const char *file)
{
    struct openssl_errors q;
    char why[256];
    take_errors(&q);
    errors_text(&q, why, sizeof(why));
    ek_warnx("tls: %s %s: %s", what, file, why);
    return -EINVAL;
}

/* ---- the certificate, key and CA files (server and clients) ---------- */

/* Whether path, given as option opt, can be read as a file: 0, or
 * -EINVAL after saying why as the system says it (ENOENT, EACCES, EISDIR:
 * fopen takes a directory, and OpenSSL then finds "no start line" in it;
 * a missing file is "system lib" to OpenSSL 3.0). */
static int readable(const char *opt, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    int err = fd < 0                ? errno
              : fstat(fd, &st) < 0  ? errno
              : S_ISDIR(st.st_mode) ? EISDIR
                                    : 0;
    if (fd >= 0)
        close(fd);
    if (err == 0)
        return 0;
    ek_warnx("tls: %s %s: %s", opt, path, strerror(err));
    return -EINVAL;
}

/* What the files given as --tls-cert (or --tls-ca, --tls-client-ca) and
 * --tls-key must hold. */
enum pem_kind { PEM_CERT, PEM_CA, PEM_KEY };

/* Whether a PEM label ("CERTIFICATE" of "-----BEGIN CERTIFICATE-----")
 * is of kind's: a certificate (not a CERTIFICATE REQUEST), a private
 * key. */
static bool label_is(enum pem_kind kind, const char *label)
{
    if (kind == PEM_KEY)
        return strstr(label, "PRIVATE KEY") != NULL;
    return strstr(label, "CERTIFICATE") != NULL &&
           strstr(label, "REQUEST") == NULL;
}

/* When path holds no PEM block of kind's: says so (as option opt), and
 * what the file holds instead, and returns true. OpenSSL's words for it
 * are "no start line", "unsupported" or "no certificate or crl found". */
static bool not_pem(enum pem_kind kind, const char *opt, const char *path)
{
    static const char *const wanted[] = {"certificate", "CA certificate",
                                         "private key"};
    char first[64] = "", line[256];
    bool found = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    FILE *f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (f == NULL) {
        if (fd >= 0)
            close(fd);
        return false; /* gone since it was checked: OpenSSL's reason */
    }
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        const char *b = strstr(line, "-----BEGIN ");
        if (b == NULL)
            continue;
        char label[64];
        snprintf(label, sizeof(label), "%.*s", (int)strcspn(b + 11, "-\r\n"),
                 b + 11);
        found = label_is(kind, label);
        if (first[0] == '\0')
            snprintf(first, sizeof(first), "%s", label);
    }
    fclose(f);
    if (found)
        return false;
    bool swapped =
        kind != PEM_CA && label_is(kind == PEM_KEY ? PEM_CERT : PEM_KEY, first);
    ek_warnx("tls: %s %s: not a PEM %s: %s%s%s", opt, path, wanted[kind],
             first[0] != '\0' ? "it holds a PEM " : "no PEM block in it", first,
             swapped ? " (--tls-cert and --tls-key swapped?)" : "");
    return true;
}

/* Says that key does not go with the certificate of cert. */
static int key_mismatch(const char *key, const char *cert)
{
    ek_warnx("tls: --tls-key %s: the key does not match the certificate of "
             "--tls-cert %s",
             key, cert);
    return -EINVAL;
}

/* Loads path, given as option opt, into ctx as kind says. What cannot be
 * used is said by its cause: the system's reason (no such file, a
 * directory, permission), a file that holds something else, a key that
 * does not match the certificate loaded (cert); OpenSSL's reasons
 * otherwise. Returns 0, or -EINVAL after saying why. */
static int use_file(SSL_CTX *ctx, enum pem_kind kind, const char *opt,
                    const char *path, const char *cert)
{
    int err = readable(opt, path);
    if (err < 0)
        return err;
    ERR_clear_error();
    int ok = kind == PEM_CERT ? SSL_CTX_use_certificate_chain_file(ctx, path)
             : kind == PEM_CA
                 ? SSL_CTX_load_verify_locations(ctx, path, NULL)
                 : SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM);
    if (ok == 1)
        return 0;
    struct openssl_errors q;
    take_errors(&q);
    if (not_pem(kind, opt, path))
        return -EINVAL;
    if (kind == PEM_KEY && cert != NULL &&
        (has_reason(&q, ERR_LIB_X509, X509_R_KEY_VALUES_MISMATCH) ||
         has_reason(&q, ERR_LIB_X509, X509_R_KEY_TYPE_MISMATCH)))
        return key_mismatch(path, cert);
    char why[256];
    errors_text(&q, why, sizeof(why));
    ek_warnx("tls: %s %s: %s", opt, path, why);
    return -EINVAL;
}

/* A certificate and its key into ctx (the server's, a client's). */
static int use_pair(SSL_CTX *ctx, const char *cert, const char *key)
{
    int err = use_file(ctx, PEM_CERT, "--tls-cert", cert, NULL);
    if (err == 0)
        err = use_file(ctx, PEM_KEY, "--tls-key", key, cert);
    /* A key of another type than the certificate's is taken for another
     * certificate slot: only this check sees it. */
    if (err == 0 && SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        err = key_mismatch(key, cert);
    }
    return err;
}

/* ---- the server -------------------------------------------------------- */

/* A session ticket key: the name a ticket carries, and what seals it
 * (AES-256-CBC and HMAC-SHA256, OpenSSL's own choice for tickets). */
struct ticket_key {
    int64_t period; /* the period it encrypts in; -1: none */
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
};

/* The session ticket keys, by period of --tls-ticket-rotate seconds on the
 * monotonic clock: the current period's key encrypts, and is made by the
 * first ticket of its period; the keys of the EK_TLS_TICKET_KEYS - 1
 * periods before it decrypt (and the ticket is renewed); older ones are
 * erased as soon as the ring is next used. In a shared mapping, so that
 * the process model's children, which make and read the tickets, share
 * the keys and their rotation; the lock is process-shared. */
struct ticket_ring {
    pthread_mutex_t lock;
    struct ticket_key keys[EK_TLS_TICKET_KEYS]; /* [period % KEYS] */
};

/* One load of the certificate files: a context per certificate, all alike
 * but for the certificate; ctx[0] is the default, whose servername
 * callback moves a connection to the one its SNI names. */
struct generation {
    atomic_uint refs; /* the server's, and one per session */
    SSL_CTX *ctx[EK_TLS_MAX_CERTS];
    X509 *leaf[EK_TLS_MAX_CERTS]; /* owned by ctx[i] */
    size_t n;
    struct alpn alpn;
    struct ticket_ring *ring; /* the server's, which outlives it */
    int64_t rotate_ms;
};

struct ek_tls_server {
    struct ek_tls_server_options opt;
    pthread_mutex_t lock; /* guards cur (reload against new sessions) */
    struct generation *cur;
    struct ticket_ring *ring; /* every generation's */
};

/* The SSL ex_data slot that holds a session's generation reference. */
static int gen_slot = -1;
static pthread_once_t gen_slot_once = PTHREAD_ONCE_INIT;

static void gen_unref(struct generation *g)
{
    if (g == NULL || atomic_fetch_sub(&g->refs, 1) != 1)
        return;
    for (size_t i = 0; i < g->n; i++)
        SSL_CTX_free(g->ctx[i]);
    free(g);
}

/* OpenSSL calls this as it frees a session. */
static void gen_slot_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
                          long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    gen_unref(ptr);
}

static void gen_slot_init(void)
{
    gen_slot = SSL_get_ex_new_index(0, NULL, NULL, NULL, gen_slot_free);
}

/* SNI: the first certificate that names the host the client asked for;
 * the default one (ctx[0]) otherwise, as every TLS server does. */
static int on_servername(SSL *ssl, int *alert, void *arg)
{
    (void)alert;
    const struct generation *g = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (name == NULL)
        return SSL_TLSEXT_ERR_OK;
    for (size_t i = 0; i < g->n; i++)
        if (X509_check_host(g->leaf[i], name, 0, 0, NULL) == 1) {
            if (i > 0 && SSL_set_SSL_CTX(ssl, g->ctx[i]) == NULL)
                return SSL_TLSEXT_ERR_ALERT_FATAL;
            break;
        }
    return SSL_TLSEXT_ERR_OK;
}

/* ALPN: our first protocol the client offers. None in common: the
 * handshake goes on without ALPN (as HAProxy and nginx's stream module
 * do), and the client decides whether that is fatal. */
static int on_alpn(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned inlen, void *arg)
{
    (void)ssl;
    struct generation *g = arg;
    unsigned char *chosen = NULL;
    if (SSL_select_next_proto(&chosen, outlen, g->alpn.wire, g->alpn.len, in,
                              inlen) != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK;
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
}

static int version_of(int min_version)
{
    return min_version == 13 ? TLS1_3_VERSION : TLS1_2_VERSION;
}

/* The key exchange groups offered and accepted: elliptic curves only.
 * OpenSSL 3.0 also accepts the finite-field groups (ffdhe2048 to 8192),
 * and one ffdhe8192 ClientHello, which a client can replay without doing
 * any work itself, costs the server about 140 ms of CPU on its loop. */
#define EK_TLS_GROUPS "X25519:P-256:X448:P-384:P-521"

void ek_tls_thread_end(void)
{
    OPENSSL_thread_stop();
}

static struct ticket_ring *ring_new(void)
{
    struct ticket_ring *r = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE,
                                 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pthread_mutexattr_t a;
    if (r == MAP_FAILED)
        return NULL;
    bool ok = pthread_mutexattr_init(&a) == 0;
    /* Robust: a process model's child killed while it holds the lock
     * (SIGKILL, the OOM killer) leaves it to the next locker, not locked
     * for ever (ring_lock). */
    ok = ok && pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED) == 0 &&
         pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST) == 0 &&
         pthread_mutex_init(&r->lock, &a) == 0;
    pthread_mutexattr_destroy(&a);
    if (!ok) {
        munmap(r, sizeof(*r));
        return NULL;
    }
    for (size_t i = 0; i < EK_TLS_TICKET_KEYS; i++)
        r->keys[i].period = -1;
    return r;
}

static void ring_free(struct ticket_ring *r)
{
    if (r == NULL)
        return;
    pthread_mutex_destroy(&r->lock);
    OPENSSL_cleanse(r->keys, sizeof(r->keys));
    munmap(r, sizeof(*r));
}

/* Takes the ring's lock. Its last holder may have died holding it: the
 * ring is then still whole, for a key's period is written after its
 * bytes (a key half made is never used), and the lock is made whole
 * again. */
static void ring_lock(struct ticket_ring *r)
{
    if (pthread_mutex_lock(&r->lock) == EOWNERDEAD)
        pthread_mutex_consistent(&r->lock);
}

/* Copies into *out the key of the current period (name NULL: to
 * encrypt; made now if this is the period's first ticket) or the live
 * key called name (to decrypt), after erasing the keys past their time.
 * Returns false when there is none (or no randomness to make one). */
static bool ring_key(struct ticket_ring *r, int64_t period,
                     const unsigned char *name, struct ticket_key *out)
{
    bool found = false;
    ring_lock(r);
    for (size_t i = 0; i < EK_TLS_TICKET_KEYS; i++) {
        struct ticket_key *k = &r->keys[i];
        if (k->period >= 0 && k->period <= period - EK_TLS_TICKET_KEYS) {
            OPENSSL_cleanse(k, sizeof(*k));
            k->period = -1;
        }
    }
    struct ticket_key *cur = &r->keys[period % EK_TLS_TICKET_KEYS];
    if (cur->period != period && name == NULL &&
        RAND_priv_bytes(cur->name, sizeof(cur->name)) == 1 &&
        RAND_priv_bytes(cur->aes, sizeof(cur->aes)) == 1 &&
        RAND_priv_bytes(cur->hmac, sizeof(cur->hmac)) == 1)
        cur->period = period;
    for (size_t i = 0; i < EK_TLS_TICKET_KEYS && !found; i++) {
        const struct ticket_key *k = &r->keys[i];
        found = k->period >= 0 &&
                (name == NULL ? k->period == period
                              : memcmp(k->name, name, sizeof(k->name)) == 0);
        if (found)
            *out = *k;
    }
    pthread_mutex_unlock(&r->lock);
    return found;
}

/* OpenSSL's ticket callback (both TLS 1.2 and 1.3 tickets): seals a new
 * ticket with the current key (enc), or opens one with the key it names.
 * Returns 1, 2 (opened with an older key: issue a fresh ticket), 0 (no
 * such key: a full handshake) or -1 (failure). */
static int on_ticket_key(SSL *ssl, unsigned char name[16], unsigned char *iv,
                         EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    const struct generation *g = SSL_get_ex_data(ssl, gen_slot);
    if (g == NULL)
        return -1;
    int64_t period = ek_now_ms() / g->rotate_ms;
    struct ticket_key key;
    if (!ring_key(g->ring, period, enc ? NULL : name, &key))
        return enc ? -1 : 0;
    if (enc) {
        memcpy(name, key.name, sizeof(key.name));
        if (RAND_bytes(iv, EVP_CIPHER_get_iv_length(EVP_aes_256_cbc())) != 1)
            key.period = -1;
    }
    OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(
                               OSSL_MAC_PARAM_KEY, key.hmac, sizeof(key.hmac)),
                           OSSL_PARAM_construct_utf8_string(
                               OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    int ok =
        key.period >= 0 && EVP_MAC_CTX_set_params(hctx, params) == 1 &&
        (enc ? EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, key.aes, iv)
             : EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, key.aes,
                                  iv)) == 1;
    bool older = key.period != period;
    OPENSSL_cleanse(&key, sizeof(key));
    if (!ok)
        return -1;
    return !enc && older ? 2 : 1;
}

/* Sessions: tickets sealed by the ring, for (EK_TLS_TICKET_KEYS - 1)
 * periods; or, under --tls-client-ca, none at all. A resumed session
 * skips the client certificate, and it would outlive the certificate's
 * expiry, or a reload that trusts other CAs, by as long as the session
 * lives; re-verifying at resumption would need the client's chain, which
 * a ticket does not keep. So every mTLS connection shows a certificate
 * that verifies now, for a full handshake's CPU (about 1 ms). */
static int set_sessions(SSL_CTX *ctx, const struct ek_tls_server_options *o,
                        const struct generation *g)
{
    static const unsigned char sid[] = "echokit";
    if (SSL_CTX_set_session_id_context(ctx, sid, sizeof(sid) - 1) != 1)
        return -ENOMEM;
    if (o->client_ca != NULL) {
        SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
        return SSL_CTX_set_num_tickets(ctx, 0) == 1 ? 0 : -ENOMEM;
    }
    SSL_CTX_sess_set_cache_size(ctx, EK_TLS_SESSION_CACHE);
    SSL_CTX_set_timeout(ctx,
                        (long)(g->rotate_ms / 1000) * (EK_TLS_TICKET_KEYS - 1));
    return SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket_key) == 1
               ? 0
               : -ENOMEM;
}

const char *ek_tls_ciphers_check(const char *list)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return "out of memory";
    int ok = SSL_CTX_set_cipher_list(ctx, list);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return ok == 1 ? NULL
                   : "no TLS 1.2 cipher suite matches (`openssl ciphers -v "
                     "LIST` shows what a list selects)";
}

/* What every context of the server has, whichever certificate it holds. */
static int server_ctx_setup(SSL_CTX *ctx, const struct ek_tls_server_options *o,
                            struct generation *g)
{
    SSL_CTX_set_min_proto_version(ctx, version_of(o->min_version));
    /* Renegotiation is refused (and the connection closed,
     * transport_tls.c); a close without close_notify ends the stream as
     * a half-close does rather than as an error: clients of an echo server
     * (nc, socat) often just shut down TCP. */
    uint64_t options = SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF;
    if (o->ktls)
        options |= SSL_OP_ENABLE_KTLS;
    SSL_CTX_set_options(ctx, options);
    /* Partial writes: a write returns once a record went out, like
     * send(2). The buffer may move between a write that waited and its
     * retry (from the loop's buffer to the queue). Released buffers: an
     * idle connection holds no 2 x 17 KiB of record buffers. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                              SSL_MODE_RELEASE_BUFFERS);
    /* Read ahead: one read(2) takes what the socket holds, not a record
     * header and then its body. */
    SSL_CTX_set_read_ahead(ctx, 1);
    if (SSL_CTX_set1_groups_list(ctx, EK_TLS_GROUPS) != 1)
        return -ENOMEM;
    /* Checked with the options (ek_tls_ciphers_check). */
    if (SSL_CTX_set_cipher_list(ctx, o->ciphers != NULL ? o->ciphers
                                                        : EK_TLS_CIPHERS) != 1)
        return load_failed("no cipher suite in", "--tls-ciphers");
    /* The client's certificate chain (mTLS), the one handshake message of
     * the client's after the ClientHello that can be large: bounded like
     * the ClientHello (OpenSSL's default is 100 KiB). */
    SSL_CTX_set_max_cert_list(ctx, EK_TLS_HELLO_MAX);
    int err = set_sessions(ctx, o, g);
    if (err < 0)
        return err;
    SSL_CTX_set_tlsext_servername_callback(ctx, on_servername);
    SSL_CTX_set_tlsext_servername_arg(ctx, g);
    if (o->alpn != NULL)
        SSL_CTX_set_alpn_select_cb(ctx, on_alpn, g);
    if (o->client_ca != NULL) {
        err = use_file(ctx, PEM_CA, "--tls-client-ca", o->client_ca, NULL);
        if (err < 0)
            return err;
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->client_ca);
        if (names == NULL)
            return load_failed("no CA names in --tls-client-ca", o->client_ca);
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(
            ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return 0;
}

/* --tls-ticket-rotate, in ms. */
static int64_t rotate_ms(const struct ek_tls_server_options *o)
{
    return (int64_t)(o->ticket_rotate_s > 0 ? o->ticket_rotate_s
                                            : EK_TLS_TICKET_ROTATE_S) *
           1000;
}

/* Loads every certificate into a new generation, whose tickets t's ring
 * seals. */
static int gen_load(const struct ek_tls_server *t, struct generation **out)
{
    const struct ek_tls_server_options *o = &t->opt;
    struct generation *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return -ENOMEM;
    atomic_init(&g->refs, 1);
    g->ring = t->ring;
    g->rotate_ms = rotate_ms(o);
    if (o->alpn != NULL)
        alpn_wire(o->alpn, &g->alpn);
    int err = 0;
    ERR_clear_error();
    for (size_t i = 0; err == 0 && i < o->ncerts; i++) {
        SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
        if (ctx == NULL) {
            err = -ENOMEM;
            break;
        }
        g->ctx[g->n++] = ctx;
        err = server_ctx_setup(ctx, o, g);
        if (err == 0)
            err = use_pair(ctx, o->certs[i], o->keys[i]);
        if (err == 0)
            g->leaf[i] = SSL_CTX_get0_certificate(ctx);
    }
    if (err < 0) {
        gen_unref(g);
        return err;
    }
    *out = g;
    return 0;
}

int ek_tls_server_new(const struct ek_tls_server_options *o,
                      struct ek_tls_server **out)
{
    pthread_once(&gen_slot_once, gen_slot_init);
    if (gen_slot < 0)
        return -ENOMEM;
    struct ek_tls_server *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    t->opt = *o;
    int err = pthread_mutex_init(&t->lock, NULL);
    if (err != 0) {
        free(t);
        return -err;
    }
    t->ring = ring_new();
    err = t->ring == NULL ? -ENOMEM : gen_load(t, &t->cur);
    /* The first key now, before the process model forks: its children
     * find OpenSSL's private random generator made, instead of each
     * making (and holding) its own for the first ticket. */
    struct ticket_key first;
    if (err == 0 && o->client_ca == NULL &&
        ring_key(t->ring, ek_now_ms() / rotate_ms(o), NULL, &first))
        OPENSSL_cleanse(&first, sizeof(first));
    if (err < 0) {
        ring_free(t->ring);
        pthread_mutex_destroy(&t->lock);
        free(t);
        return err;
    }
    *out = t;
    return 0;
}

int ek_tls_server_reload(struct ek_tls_server *t)
{
    struct generation *g;
    int err = gen_load(t, &g); /* tickets stay valid: the ring is t's */
    if (err < 0) {
        ek_log(EK_LOG_ERROR,
               "SIGHUP: certificates not reloaded (%s); the "
               "ones loaded before stay",
               err == -ENOMEM ? "out of memory" : "see above");
        return err;
    }
    pthread_mutex_lock(&t->lock);
    struct generation *old = t->cur;
    t->cur = g;
    pthread_mutex_unlock(&t->lock);
    gen_unref(old);
    ek_log(EK_LOG_INFO,
           "SIGHUP: %zu certificate%s reloaded; open connections keep "
           "theirs",
           g->n, g->n == 1 ? "" : "s");
    return 0;
}

void ek_tls_server_free(struct ek_tls_server *t)
{
    if (t == NULL)
        return;
    gen_unref(t->cur);
    ring_free(t->ring);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

SSL *ek_tls_server_session(struct ek_tls_server *t)
{
    pthread_mutex_lock(&t->lock);
    struct generation *g = t->cur;
    atomic_fetch_add(&g->refs, 1);
    pthread_mutex_unlock(&t->lock);
    SSL *ssl = SSL_new(g->ctx[0]);
    if (ssl == NULL || !SSL_set_ex_data(ssl, gen_slot, g)) {
        SSL_free(ssl);
        gen_unref(g);
        return NULL;
    }
    return ssl;
}

bool ek_tls_server_ktls(const struct ek_tls_server *t)
{
    return t->opt.ktls;
}

/* ---- the clients ------------------------------------------------------- */

struct ek_tls_client {
    struct ek_tls_client_options opt;
    SSL_CTX *ctx;
    pthread_mutex_t lock; /* guards last (bench's threads) */
    SSL_SESSION *last;    /* --tls-resume: the newest session received */
};

static int client_slot = -1;
static pthread_once_t client_slot_once = PTHREAD_ONCE_INIT;

static void client_slot_init(void)
{
    client_slot = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* A session (TLS 1.3: a ticket, which comes after the handshake) to
 * offer next time. Returns 1: we keep the reference. */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    struct ek_tls_client *t =
        SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), client_slot);
    pthread_mutex_lock(&t->lock);
    SSL_SESSION *old = t->last;
    t->last = sess;
    pthread_mutex_unlock(&t->lock);
    SSL_SESSION_free(old);
    return 1;
}

int ek_tls_client_new(const struct ek_tls_client_options *o,
                      struct ek_tls_client **out)
{
    pthread_once(&client_slot_once, client_slot_init);
    struct ek_tls_client *t = calloc(1, sizeof(*t));
    if (t == NULL || client_slot < 0 ||
        pthread_mutex_init(&t->lock, NULL) != 0) {
        free(t);
        return -ENOMEM;
    }
    t->opt = *o;
    ERR_clear_error();
    int err = 0;
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (t->ctx == NULL || !SSL_CTX_set_ex_data(t->ctx, client_slot, t))
        err = -ENOMEM;
    if (err == 0) {
        SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
        SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                     SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        SSL_CTX_set_read_ahead(t->ctx, 1);
        /* Without close_notify an attacker on the path (or a crashed
         * proxy) can end the stream anywhere with a FIN: an error unless
         * asked otherwise (the server, which echoes whatever came, lets
         * clients end with a FIN: server_ctx_setup). */
        if (o->allow_truncation)
            SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
        if (SSL_CTX_set1_groups_list(t->ctx, EK_TLS_GROUPS) != 1)
            err = -ENOMEM;
    }
    if (err == 0 && !o->insecure) {
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
        if (o->ca != NULL)
            err = use_file(t->ctx, PEM_CA, "--tls-ca", o->ca, NULL);
        else if (!SSL_CTX_set_default_verify_paths(t->ctx))
            err = load_failed("cannot read", "the system's CA store");
    }
    if (err == 0 && o->cert != NULL)
        err = use_pair(t->ctx, o->cert, o->key);
    if (err == 0 && o->alpn != NULL) {
        struct alpn a;
        alpn_wire(o->alpn, &a);
        if (SSL_CTX_set_alpn_protos(t->ctx, a.wire, a.len) != 0)
            err = -ENOMEM;
    }
    if (err == 0 && o->resume) {
        SSL_CTX_set_session_cache_mode(
            t->ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(t->ctx, on_new_session);
    }
    if (err < 0) {
        ek_tls_client_free(t);
        return err;
    }
    *out = t;
    return 0;
}

void ek_tls_client_free(struct ek_tls_client *t)
{
    if (t == NULL)
        return;
    SSL_SESSION_free(t->last);
    SSL_CTX_free(t->ctx);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

static bool is_ip_address(const char *host)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, host, addr) == 1 ||
           inet_pton(AF_INET6, host, addr) == 1;
}

SSL *ek_tls_client_session(struct ek_tls_client *t, const char *host)
{
    SSL *ssl = SSL_new(t->ctx);
    if (ssl == NULL)
        return NULL;
    const char *name = t->opt.sni != NULL ? t->opt.sni : host;
    bool ok = true;
    /* SNI is a host name, never an address (RFC 6066). */
    if (name != NULL && name[0] != '\0' && !is_ip_address(name))
        ok = SSL_set_tlsext_host_name(ssl, name) == 1;
    if (ok && !t->opt.insecure && name != NULL && name[0] != '\0') {
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        ok = is_ip_address(name) ? X509_VERIFY_PARAM_set1_ip_asc(vp, name) == 1
                                 : SSL_set1_host(ssl, name) == 1;
    }
    if (ok && t->opt.resume) {
        pthread_mutex_lock(&t->lock);
        if (t->last != NULL)
            ok = SSL_set_session(ssl, t->last) == 1;
        pthread_mutex_unlock(&t->lock);
    }
    if (!ok) {
        SSL_free(ssl);
        return NULL;
    }
    return ssl;
}
