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
 * the new generation takes over the ticket keys.
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
 * counted from the accept, or from the end of the PROXY header. */
#define EK_TLS_HANDSHAKE_MS 10000

/* The most certificates --tls-cert takes (one per SNI name set). */
#define EK_TLS_MAX_CERTS 16

struct ek_conn;
struct ek_stats;
struct ssl_st;

/* serve's TLS settings. The strings must outlive the server (argv). */
struct ek_tls_server_options {
    const char *certs[EK_TLS_MAX_CERTS]; /* PEM: the certificate, then its
                                            chain */
    const char *keys[EK_TLS_MAX_CERTS];  /* PEM: keys[i] goes with certs[i] */
    size_t ncerts;
    const char *client_ca; /* --tls-client-ca: ask for and verify a client
                              certificate; NULL: none asked */
    const char *alpn;      /* --tls-alpn "a,b": what we accept, in order of
                              preference; NULL: no ALPN */
    int min_version;       /* 12 or 13 (--tls-min-version) */
    bool ktls;             /* --ktls: ask OpenSSL for kernel TLS */
};

struct ek_tls_server;

/* The longest --tls-alpn list in ALPN's wire form (each name preceded by
 * its length). */
#define EK_TLS_ALPN_WIRE_MAX 256

/* Checks o (ALPN syntax); returns NULL, or why not (static text). In
 * ek_cli.c: the options are parsed, then refused with the reason, in a
 * build without TLS too. */
const char *ek_tls_alpn_check(const char *alpn);

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

/* The completion engine's TLS (ek_transport_tls_mem): it gives OpenSSL
 * the bytes it received (-ENOMEM when they cannot be kept), says when the
 * stream has ended, and takes the records OpenSSL made (handshake, echo,
 * alerts: *data, the returned length) to send them, then tells it they
 * are taken. */
int ek_tls_mem_input(struct ek_conn *c, const void *data, size_t n);
void ek_tls_mem_eof(struct ek_conn *c);
size_t ek_tls_mem_output(const struct ek_conn *c, const char **data);
void ek_tls_mem_output_taken(struct ek_conn *c);

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
