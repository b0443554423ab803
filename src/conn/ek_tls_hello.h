/*
 * ek_tls_hello: the gate in front of OpenSSL on a tls: listener. It reads
 * the start of what a client sends, the record headers and the handshake
 * header of its first message (the ClientHello), and says whether OpenSSL
 * may have it, before OpenSSL buffers any of it.
 *
 * Why: OpenSSL takes a ClientHello of up to 128 KiB and keeps every byte
 * of it, and of a record it has only started, until the handshake
 * deadline: thousands of clients that claim a large ClientHello, send
 * some of it and stall pinned 165 KiB each (issue 20). Real ClientHellos
 * take well under 2 KiB, and one record at most. So:
 *   - the records that carry the ClientHello, their headers included, must
 *     fit in EK_TLS_HELLO_MAX bytes: a longer claim is refused as soon as
 *     its handshake header is read (9 bytes into the stream), a record
 *     that would pass the bound as soon as its header is read;
 *   - OpenSSL gets the ClientHello only once all of it, and the whole of
 *     the record that ends it, has come: a client that stalls halfway
 *     holds what the caller kept of it (at most EK_TLS_HELLO_MAX) and no
 *     OpenSSL buffer;
 *   - a handshake record of length 0 is refused (RFC 8446 5.1 and RFC 5246
 *     6.2.1 forbid them; a gate that skipped them could be kept reading
 *     headers for ever);
 *   - anything that does not start with a handshake record (plain text,
 *     HTTP, an SSLv2-style hello, whose 15-bit length bounds it) is
 *     OpenSSL's to refuse, with its own alert: it is passed on at once.
 * A TLS 1.3 server that wants another key share answers with a
 * HelloRetryRequest, and the client sends a second ClientHello, which
 * OpenSSL takes as large as the first: the gate judges it the same way
 * (ek_tls_hello_retry), after the one change_cipher_spec record a client
 * may send before it (RFC 8446 D.4, middlebox compatibility). What comes
 * after a ClientHello is not looked at here: transport_tls.c bounds the
 * rest of the client's handshake by its bytes.
 *
 * The parser is fed the stream's bytes in any pieces, as they arrive, and
 * keeps 28 bytes of state; it copies nothing. transport_tls.c keeps the
 * bytes (from the socket, or from the io_uring engine's receives) while
 * it says "more".
 */
#ifndef EK_TLS_HELLO_H
#define EK_TLS_HELLO_H

#include <stddef.h>
#include <stdint.h>

/* The most bytes the records carrying a ClientHello may take, their
 * headers included: one full record. A ClientHello in one record may
 * claim up to EK_TLS_HELLO_MAX - 9 bytes. */
#define EK_TLS_HELLO_MAX 16384

/* The most bytes of the client's that OpenSSL reads before the handshake
 * ends besides its ClientHellos (transport_tls.c refuses more, and
 * counts it as too_large): its last flight, change_cipher_spec and
 * Finished, and TLS 1.2's key exchange, take under 300 bytes. Under mTLS
 * (the server asks for a certificate) also the client's certificate chain,
 * which OpenSSL bounds at EK_TLS_HELLO_MAX (SSL_CTX_set_max_cert_list),
 * and its signature: EK_TLS_FLIGHT_MTLS_MAX, which the ClientHellos count
 * against too (OpenSSL keeps every message until the client's
 * CertificateVerify). A bound on whatever the gate does not judge: a
 * partial record, a message it does not know. */
#define EK_TLS_FLIGHT_MAX 4096
#define EK_TLS_FLIGHT_MTLS_MAX (EK_TLS_HELLO_MAX + 4096)

/* The most plaintext one TLS record carries (RFC 8446 5.1). */
#define EK_TLS_RECORD_MAX 16384

enum ek_tls_hello_verdict {
    EK_HELLO_MORE,       /* fine so far: feed more */
    EK_HELLO_PASS,       /* OpenSSL may have it all now */
    EK_HELLO_TOO_LARGE,  /* the ClientHello or a record passes the bounds */
    EK_HELLO_EMPTY,      /* a handshake record of length 0 */
    EK_HELLO_UNEXPECTED, /* after a HelloRetryRequest, a record that is
                            neither the one change_cipher_spec nor the
                            second ClientHello's */
};

/* The zero value is a gate that has seen nothing. */
struct ek_tls_hello {
    uint32_t seen;    /* bytes of the stream judged */
    uint32_t rec_end; /* where the current record ends; 0: in a header */
    uint32_t claim;   /* the handshake header's length, once hs_got is 4 */
    uint32_t left;    /* of those, bytes still to come */
    uint8_t hdr[5];   /* the record header being read */
    uint8_t hdr_got;
    uint8_t hs_got;  /* bytes of the handshake header seen (4: all) */
    uint8_t verdict; /* enum ek_tls_hello_verdict */
    uint8_t ccs;     /* 1: the change_cipher_spec record before a second
                        ClientHello may come */
    uint8_t retry;   /* judging the second ClientHello */
    uint8_t skip;    /* in the body of a record skipped: that
                        change_cipher_spec, early data */
};

/* Judges the next n bytes of the stream. Returns the verdict; once it is
 * not EK_HELLO_MORE it stays, and further bytes are not looked at. */
enum ek_tls_hello_verdict ek_tls_hello_feed(struct ek_tls_hello *h,
                                            const void *data, size_t n);

/* Makes h a gate for the ClientHello a client sends again after the
 * server's HelloRetryRequest, fed from the first byte after the first
 * ClientHello's records: judged as the first, after at most one
 * change_cipher_spec record of one byte and the early data records (type
 * 23) a client sent before it saw the HelloRetryRequest, which OpenSSL
 * skips, all of which the bound counts too. Any other record is
 * EK_HELLO_UNEXPECTED: OpenSSL would drop a second
 * change_cipher_spec or a warning alert and go on waiting, so that the
 * ClientHello behind them would reach it unjudged. */
void ek_tls_hello_retry(struct ek_tls_hello *h);

/* The random of a ServerHello that is a HelloRetryRequest (RFC 8446
 * 4.1.3: SHA-256 of "HelloRetryRequest"). */
extern const unsigned char ek_tls_hrr_random[32];

/* The length the ClientHello's handshake header claims, once read; 0
 * before (for log lines). */
uint32_t ek_tls_hello_claim(const struct ek_tls_hello *h);

#endif
