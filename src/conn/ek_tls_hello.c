#include "ek_tls_hello.h"

#include <string.h>

#define TLS_CCS 20       /* the record type of change_cipher_spec */
#define TLS_HANDSHAKE 22 /* the record type of handshake messages */
#define TLS_APP_DATA 23  /* application data (0-RTT early data here) */

const unsigned char ek_tls_hrr_random[32] = {
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c,
    0x02, 0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb,
    0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c};

/* A record header is complete: judges it. */
static enum ek_tls_hello_verdict record(struct ek_tls_hello *h)
{
    uint32_t len = (uint32_t)h->hdr[3] << 8 | h->hdr[4];
    /* Before a second ClientHello: one change_cipher_spec of one byte,
     * skipped (OpenSSL checks its byte, and drops it). */
    if (h->ccs == 1 && h->hdr[0] == TLS_CCS && len == 1 && h->hs_got == 0) {
        h->ccs = 0;
        h->skip = 1;
        h->rec_end = h->seen + len;
        return EK_HELLO_MORE;
    }
    h->ccs = 0;
    /* The early data a client sent with its first ClientHello, before it
     * saw the HelloRetryRequest, which OpenSSL skips (RFC 8446 4.2.10):
     * skipped too, within the same bound. */
    if (h->retry && h->hdr[0] == TLS_APP_DATA && h->hs_got == 0) {
        if (h->seen + len > EK_TLS_HELLO_MAX)
            return EK_HELLO_TOO_LARGE;
        h->skip = 1;
        h->rec_end = h->seen + len;
        return EK_HELLO_MORE;
    }
    if (h->hdr[0] != TLS_HANDSHAKE && h->retry)
        return EK_HELLO_UNEXPECTED;
    if (h->hdr[0] != TLS_HANDSHAKE)
        return EK_HELLO_PASS; /* not ours to judge: OpenSSL refuses it */
    if (len == 0)
        return EK_HELLO_EMPTY;
    if (len > EK_TLS_RECORD_MAX || h->seen + len > EK_TLS_HELLO_MAX)
        return EK_HELLO_TOO_LARGE;
    h->rec_end = h->seen + len;
    return EK_HELLO_MORE;
}

enum ek_tls_hello_verdict ek_tls_hello_feed(struct ek_tls_hello *h,
                                            const void *data, size_t n)
{
    const uint8_t *p = data;
    while (n > 0 && h->verdict == EK_HELLO_MORE) {
        if (h->rec_end == 0) { /* a record header */
            size_t k = 5u - h->hdr_got;
            if (k > n)
                k = n;
            memcpy(h->hdr + h->hdr_got, p, k);
            h->hdr_got = (uint8_t)(h->hdr_got + k);
            h->seen += (uint32_t)k;
            p += k;
            n -= k;
            if (h->hdr_got == 5) {
                h->hdr_got = 0;
                h->verdict = (uint8_t)record(h);
            }
            continue;
        }
        if (h->skip) { /* a record OpenSSL drops: counted, not judged */
            size_t k = h->rec_end - h->seen;
            if (k > n)
                k = n;
            h->seen += (uint32_t)k;
            p += k;
            n -= k;
            if (h->seen == h->rec_end) {
                h->rec_end = 0;
                h->skip = 0;
            }
            continue;
        }
        /* The body of a handshake record: the handshake header, then the
         * ClientHello, then (in a malformed record) whatever follows it,
         * which OpenSSL refuses. */
        while (n > 0 && h->hs_got < 4 && h->seen < h->rec_end) {
            h->claim = h->claim << 8 | (h->hs_got > 0 ? *p : 0u);
            h->hs_got++;
            h->seen++;
            p++;
            n--;
            if (h->hs_got == 4) {
                h->left = h->claim;
                /* The body must end within the bound; the record headers
                 * still to come are checked as they come. */
                if (h->seen + h->claim > EK_TLS_HELLO_MAX)
                    h->verdict = EK_HELLO_TOO_LARGE;
            }
        }
        size_t k = h->rec_end - h->seen;
        if (k > n)
            k = n;
        h->left -= (uint32_t)(k < h->left ? k : h->left);
        h->seen += (uint32_t)k;
        p += k;
        n -= k;
        if (h->seen == h->rec_end) {
            h->rec_end = 0;
            if (h->hs_got == 4 && h->left == 0 && h->verdict == EK_HELLO_MORE)
                h->verdict = EK_HELLO_PASS;
        }
    }
    return (enum ek_tls_hello_verdict)h->verdict;
}

void ek_tls_hello_retry(struct ek_tls_hello *h)
{
    memset(h, 0, sizeof(*h));
    h->ccs = 1;
    h->retry = 1;
}

uint32_t ek_tls_hello_claim(const struct ek_tls_hello *h)
{
    return h->hs_got == 4 ? h->claim : 0;
}
