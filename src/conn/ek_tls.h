/*
 * ek_tls: TLS through OpenSSL 3, for `serve` (tls: listeners) and the
 * clients (--tls). This file holds the contexts: the certificates, what is
 * offered and what is asked of the peer; transport_tls.c moves the bytes
 * of one connection (ek_transport.h).
 *
 * The server's contexts are one "generation" per load of the certificate
 * files: SIGHUP loads a new one, which new connections get; a connection
 * keeps the generation it started with (reference counted) until it ends,
 * so a reload drops nothing. Session tickets stay valid across a reload:
 * their keys are the server's, in a ring that rotates on the clock
 * (--tls-ticket-rotate).
 *
 * A build without OpenSSL has none of this: EK_TLS_UNAVAILABLE says why
 * (EK_TLS_WHY_NOT: not found, configured OFF, or a static musl build),
 * and every TLS option is refused with it (exit 69), never ignored.
 */
#ifndef EK_TLS_H
#define EK_TLS_H

#include "ek_config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifndef EK_HAVE_TLS
#ifdef EK_TLS_OFF_REASON
#define EK_TLS_WHY_NOT EK_TLS_OFF_REASON
#else
#define EK_TLS_WHY_NOT                                                         \
    "OpenSSL 3 was not found when it was configured (Debian: libssl-dev)"
#endif
#define EK_TLS_UNAVAILABLE "this build has no TLS: " EK_TLS_WHY_NOT
#endif

/* How long a TLS handshake may take by default (--tls-handshake-timeout),
 * counted from the accept, or from the end of the PROXY header. Real
 * clients on slow links take a few seconds at worst (three round trips of
 * 1 s on a congested mobile link, a lost segment's 1 s and then 2 s of
 * retransmission timeout, a certificate chain at 100 kbit/s); nginx
 * waits 60 s and Node.js 120 s. With the ClientHello bounded and the
 * handshakes capped (below), a stalled handshake's cost is bounded
 * whatever the deadline, so it stays where every such client makes it. */
#define EK_TLS_HANDSHAKE_MS 10000

/* How many TLS connections may be in their handshake at once by default
 * (--max-handshakes): each costs up to 48 KiB while it lasts (README,
 * "Memory bound"), 47 MiB for a thousand; a full handshake costs about a
 * millisecond of a core (some 1200 a second, README "TLS and the
 * connection rate"), so a thousand at once is more than a server does in
 * the time a real client takes to finish one. */
#define EK_TLS_MAX_HANDSHAKES 1000

/* Session ticket keys (--tls-ticket-rotate): a new one every this many
 * seconds encrypts the tickets issued; the EK_TLS_TICKET_KEYS - 1 before
 * it still decrypt, so a ticket resumes for (EK_TLS_TICKET_KEYS - 1)
 * periods at least, which is its lifetime (and OpenSSL's default of two
 * hours with the default period), and its key is gone one period later:
 * a key that leaks opens at most three hours of TLS 1.2 sessions. */
#define EK_TLS_TICKET_ROTATE_S 3600
#define EK_TLS_TICKET_ROTATE_MAX 604800 /* seconds: a week */
#define EK_TLS_TICKET_KEYS 3

/* TLS 1.2's cipher suites by default (--tls-ciphers): ephemeral elliptic
 * curve key exchange (forward secrecy) and AEAD ciphers only; OpenSSL's
 * own default also offers static RSA key exchange and CBC with SHA-1 to
 * a client that asks for them. TLS 1.3's suites are all of that kind. */
#define EK_TLS_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20"

/* The most certificates --tls-cert takes (one per SNI name set). */
#define EK_TLS_MAX_CERTS 16

struct ek_conn;
struct ek_conn_env;
struct ek_stats;
struct ssl_st;

/* serve's TLS settings. The strings must outlive the server (argv). */
struct ek_tls_server_options {
    const char *certs[EK_TLS_MAX_CERTS]; /* PEM: the certificate, then its
                                            chain */
    const char *keys[EK_TLS_MAX_CERTS];  /* PEM: keys[i] goes with certs[i] */
    size_t ncerts;
    const char *client_ca;    /* --tls-client-ca: ask for and verify a client
                                 certificate; NULL: none asked */
    const char *alpn;         /* --tls-alpn "a,b": what we accept, in order of
                                 preference; NULL: no ALPN */
    int min_version;          /* 12 or 13 (--tls-min-version) */
    bool ktls;                /* --ktls: ask OpenSSL for kernel TLS */
    const char *ciphers;      /* --tls-ciphers; NULL: EK_TLS_CIPHERS */
    unsigned ticket_rotate_s; /* --tls-ticket-rotate; 0: the default */
};

struct ek_tls_server;

/* The longest --tls-alpn list in ALPN's wire form (each name preceded by
 * its length). */
#define EK_TLS_ALPN_WIRE_MAX 256

/* Checks o (ALPN syntax); returns NULL, or why not (static text). In
 * ek_cli.c: the options are parsed, then refused with the reason, in a
 * build without TLS too. */
const char *ek_tls_alpn_check(const char *alpn);

/* Whether OpenSSL takes list as a TLS 1.2 cipher list (--tls-ciphers):
 * NULL, or why not (static text). */
const char *ek_tls_ciphers_check(const char *list);

/* A thread that used TLS is about to end: OpenSSL's state for it goes
 * now (OPENSSL_thread_stop), not in the thread's destructors after its
 * last act, where the process's exit (OpenSSL's atexit clean-up) may
 * already be freeing what they touch. A no-op without TLS. */
#ifdef EK_HAVE_TLS
void ek_tls_thread_end(void);
#else
static inline void ek_tls_thread_end(void)
{
}
#endif

/* Loads the certificates and keys. Returns 0 with *out set, or -EINVAL
 * after printing why (the file and OpenSSL's reason), -ENOMEM. */
int ek_tls_server_new(const struct ek_tls_server_options *o,
                      struct ek_tls_server **out);

/* SIGHUP: loads the files again. New connections get the new
 * certificates, open ones go on with theirs. If loading fails the old
 * ones stay, and why is logged. Returns 0 or -errno. */
int ek_tls_server_reload(struct ek_tls_server *t);

/* Frees t; connections still open keep their generation alive. */
void ek_tls_server_free(struct ek_tls_server *t);

/* A new server session of the current generation (transport_tls.c); NULL
 * when out of memory. */
struct ssl_st *ek_tls_server_session(struct ek_tls_server *t);

/* Whether t asks for kernel TLS (-v logs whether the kernel took it). */
bool ek_tls_server_ktls(const struct ek_tls_server *t);

/* The clients' TLS settings (send, ping, bench). */
struct ek_tls_client_options {
    const char *ca;   /* --tls-ca: trust these; NULL: the system's store */
    bool insecure;    /* --insecure: verify nothing */
    const char *sni;  /* --sni: the name to send and to verify; NULL: the
                         address's host name (none for an IP address) */
    const char *cert; /* --tls-cert/--tls-key: our certificate (mTLS) */
    const char *key;
    const char *alpn;      /* --tls-alpn "a,b": what we offer */
    bool resume;           /* --tls-resume: offer the last session again */
    bool allow_truncation; /* --allow-truncation: the server's FIN without
                              its close_notify ends the stream; otherwise
                              that is an error (the stream may be cut) */
};

struct ek_tls_client;

/* Returns 0 with *out set, or -EINVAL after printing why. */
int ek_tls_client_new(const struct ek_tls_client_options *o,
                      struct ek_tls_client **out);
void ek_tls_client_free(struct ek_tls_client *t);

/* A new client session for host (transport_tls.c); NULL when out of
 * memory. */
struct ssl_st *ek_tls_client_session(struct ek_tls_client *t, const char *host);

/* Makes c (opened over any transport, with nothing sent yet) the client
 * side of TLS on the connected socket fd: the handshake starts with the
 * first read or write. host is the host part of the address connected to,
 * verified (and sent as SNI) unless --sni or --insecure says otherwise.
 * Returns 0 or -ENOMEM. */
int ek_tls_client_attach(struct ek_tls_client *t, struct ek_conn *c, int fd,
                         const char *host);

/* One step of c's handshake, for a client that wants it done before any
 * data (send, ping, bench): 0 once done, -EAGAIN with *wait the readiness
 * (EK_EV_*) to wait for, or -errno (-EPROTO: ek_tls_error says why; the
 * peer's close before the end of the handshake is one). */
int ek_tls_handshake(struct ek_conn *c, int fd, unsigned *wait);

/* The completion engine's TLS (ek_transport_tls_mem). For one pass over
 * what a receive brought, ek_tls_mem_lend lends OpenSSL those n bytes
 * (none: it just goes on, after the end of the stream) and binds c's
 * queue, which every record OpenSSL makes (handshake, echo, alerts) joins,
 * gathered in env->buf (env->buf_size bytes, the engine's, shared by its
 * connections) and appended with env's accounting (ek_conn_queue); then
 * the transport's read, writev and finish run over them; ek_tls_mem_done
 * ends the loan: the records gathered join the queue, and it returns how
 * many lent bytes OpenSSL did not read (none, unless the stream ended or
 * failed first), or -ENOMEM. Nothing is kept per connection but the start
 * of a ClientHello that has not all come (ek_tls_hello.h).
 * ek_tls_mem_eof says the stream has ended. */
void ek_tls_mem_lend(struct ek_conn *c, const struct ek_conn_env *env,
                     const void *data, size_t n);
ssize_t ek_tls_mem_done(struct ek_conn *c);
void ek_tls_mem_eof(struct ek_conn *c);

/* What c's TLS negotiated, for a log line: "TLSv1.3
 * TLS_AES_256_GCM_SHA384, resumed, ALPN echo". */
void ek_tls_describe(const struct ek_conn *c, char *buf, size_t size);

/* Why c's TLS failed, after a read or write returned -EPROTO
 * ("certificate verify failed: self-signed certificate"...), or NULL. */
const char *ek_tls_error(const struct ek_conn *c);

/* Whether that failure was the peer's FIN without its close_notify after
 * the handshake: the stream may have been cut short (a client without
 * --allow-truncation). */
bool ek_tls_truncated(const struct ek_conn *c);

/* Whether c's session was resumed. */
bool ek_tls_resumed(const struct ek_conn *c);

/* Whether c's handshake is done. */
bool ek_tls_established(const struct ek_conn *c);

#endif
