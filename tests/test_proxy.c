/* Unit test of the PROXY protocol parser: v1 and v2, whole and in every
 * split, the bytes after the header left alone, malformed headers refused. */
#include "check.h"
#include "ek_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

/* Feeds text in pieces of `step` bytes (0: all at once). Returns the
 * status and sets *used to the header's length as consumed. */
static int feed_all(const void *text, size_t n, size_t step, size_t *used,
                    struct ek_proxy_result *res, const char **why)
{
    struct ek_proxy_parser p;
    memset(&p, 0, sizeof(p));
    const unsigned char *d = text;
    size_t off = 0;
    for (;;) {
        size_t piece = step == 0 || n - off < step ? n - off : step;
        size_t u = 0;
        int rc = ek_proxy_feed(&p, d + off, piece, &u, res, why);
        CHECK(u <= piece);
        off += u;
        if (rc != EK_PROXY_MORE || off == n) {
            *used = off;
            return rc;
        }
        CHECK_INT(u, ==, piece); /* MORE takes everything it was given */
    }
}

static void expect_done(const void *hdr, size_t hlen, const char *src,
                        unsigned sport, bool local)
{
    static unsigned char buf[EK_PROXY_V2_MAX + 16];
    CHECK(hlen + 5 <= sizeof(buf));
    memcpy(buf, hdr, hlen);
    memcpy(buf + hlen, "hello", 5); /* the client's data, right behind */
    for (size_t step = 0; step <= hlen + 5; step++) {
        size_t used;
        const char *why = "";
        struct ek_proxy_result res;
        int rc = feed_all(buf, hlen + 5, step, &used, &res, &why);
        if (rc != EK_PROXY_DONE) {
            fprintf(stderr, "step %zu: rc %d (%s)\n", step, rc, why);
            exit(1);
        }
        CHECK_INT(used, ==, hlen); /* never a byte of the data */
        CHECK_INT(res.local, ==, local);
        if (local)
            continue;
        char text[128];
        unsigned port;
        if (res.src.ss_family == AF_INET) {
            struct sockaddr_in *in = (struct sockaddr_in *)&res.src;
            inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
            port = ntohs(in->sin_port);
        } else if (res.src.ss_family == AF_INET6) {
            struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&res.src;
            inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
            port = ntohs(in6->sin6_port);
        } else {
            struct sockaddr_un *un = (struct sockaddr_un *)&res.src;
            snprintf(text, sizeof(text), "%s", un->sun_path);
            port = 0;
        }
        CHECK_STR(text, src);
        CHECK_INT(port, ==, sport);
    }
}

static void expect_bad(const void *hdr, size_t hlen, const char *why_has)
{
    for (size_t step = 0; step <= hlen; step++) {
        size_t used;
        const char *why = "";
        struct ek_proxy_result res;
        int rc = feed_all(hdr, hlen, step, &used, &res, &why);
        if (rc != EK_PROXY_BAD) {
            fprintf(stderr, "accepted (rc %d, step %zu): %.*s\n", rc, step,
                    (int)hlen, (const char *)hdr);
            exit(1);
        }
        CHECK_CONTAINS(why, why_has);
    }
}

#define V1(s) s, sizeof(s) - 1

static void test_v1(void)
{
    expect_done(V1("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n"),
                "192.168.0.1", 56324, false);
    expect_done(V1("PROXY TCP6 2001:db8::1 ::1 0 7\r\n"), "2001:db8::1", 0,
                false);
    expect_done(V1("PROXY UNKNOWN\r\n"), NULL, 0, true);
    expect_done(V1("PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"), NULL, 0, true);

    expect_bad(V1("GET / HTTP/1.0\r\n"), "no PROXY header");
    expect_bad(V1("PROXZ TCP4\r\n"), "no PROXY header");
    expect_bad(V1("PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n"), "needs protocol");
    expect_bad(V1("PROXY TCP4 1.2.3.4 5.6.7.8 80 81 82\r\n"), "needs protocol");
    expect_bad(V1("PROXY TCP5 1.2.3.4 5.6.7.8 80 81\r\n"), "not TCP4");
    expect_bad(V1("PROXY TCP4 1.2.3.4 5.6.7.8 65536 81\r\n"), "malformed");
    expect_bad(V1("PROXY TCP4 1.2.3.4 5.6.7.8 080 81\r\n"), "malformed");
    expect_bad(V1("PROXY TCP4 1.2.3.4 5.6.7.8 -1 81\r\n"), "malformed");
    expect_bad(V1("PROXY TCP4 ::1 5.6.7.8 80 81\r\n"), "malformed");
    expect_bad(V1("PROXY TCP6 1.2.3.4 ::1 80 81\r\n"), "malformed");
    expect_bad(V1("PROXY TCP4 1.2.3.4  5.6.7.8 80 81\r\n"), "needs protocol");
    expect_bad(V1("PROXY TCP4 1.2.3.4 5.6.7.8 80 81\n"), "CRLF");
    char longline[200];
    memset(longline, 'x', sizeof(longline));
    memcpy(longline, "PROXY UNKNOWN ", 14);
    expect_bad(longline, sizeof(longline), "longer than 107");
    /* 107 bytes exactly is fine. */
    char max[EK_PROXY_V1_MAX + 5];
    memset(max, 'y', sizeof(max));
    memcpy(max, "PROXY UNKNOWN ", 14);
    memcpy(max + EK_PROXY_V1_MAX - 2, "\r\n", 2);
    expect_done(max, EK_PROXY_V1_MAX, NULL, 0, true);
}

/* A v2 header: command, family byte, address bytes, then tlv_len TLV
 * bytes. Returns its length. */
static size_t v2(unsigned char *out, unsigned cmd, unsigned fam,
                 const void *addr, size_t alen, size_t tlv_len)
{
    static const unsigned char sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                          0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
    size_t len = alen + tlv_len;
    memcpy(out, sig, 12);
    out[12] = (unsigned char)(0x20 | cmd);
    out[13] = (unsigned char)fam;
    out[14] = (unsigned char)(len >> 8);
    out[15] = (unsigned char)len;
    if (alen > 0)
        memcpy(out + 16, addr, alen);
    memset(out + 16 + alen, 0xee, tlv_len);
    return 16 + len;
}

/* Builds a v2 header into h, then expect_done on it. */
static void done_v2(unsigned char *h, unsigned cmd, unsigned fam,
                    const void *addr, size_t alen, size_t tlv_len,
                    const char *src, unsigned sport, bool local)
{
    size_t n = v2(h, cmd, fam, addr, alen, tlv_len);
    expect_done(h, n, src, sport, local);
}

static void test_v2(void)
{
    unsigned char h[5000];
    unsigned char a4[12] = {10, 1, 2, 3, 127, 0, 0, 1, 0x1f, 0x90, 0, 7};
    done_v2(h, 1, 0x11, a4, 12, 0, "10.1.2.3", 8080, false);
    done_v2(h, 1, 0x11, a4, 12, 300, "10.1.2.3", 8080, false);
    unsigned char a6[36] = {0x20, 0x01, 0x0d, 0xb8};
    a6[15] = 5;
    a6[31] = 1;
    a6[32] = 0x30;
    a6[33] = 0x39;
    done_v2(h, 1, 0x21, a6, 36, 0, "2001:db8::5", 12345, false);
    unsigned char au[216] = {0};
    memcpy(au, "/run/client.sock", 16);
    done_v2(h, 1, 0x31, au, 216, 0, "/run/client.sock", 0, false);
    /* LOCAL (health checks), and UNSPEC: no address. */
    done_v2(h, 0, 0x00, NULL, 0, 0, NULL, 0, true);
    done_v2(h, 0, 0x11, a4, 12, 0, NULL, 0, true);
    done_v2(h, 1, 0x00, NULL, 0, 8, NULL, 0, true);

    size_t n = v2(h, 1, 0x11, a4, 12, 0);
    h[12] = 0x11; /* version 1 in a v2 header */
    expect_bad(h, n, "version is not 2");
    n = v2(h, 2, 0x11, a4, 12, 0);
    expect_bad(h, n, "neither LOCAL nor PROXY");
    n = v2(h, 1, 0x12, a4, 12, 0);
    expect_bad(h, n, "datagram");
    n = v2(h, 1, 0x21, a4, 12, 0);
    expect_bad(h, n, "too short");
    n = v2(h, 1, 0x41, a4, 12, 0);
    expect_bad(h, n, "unknown");
    (void)v2(h, 1, 0x11, a4, 12, 4096 - 16 - 12 + 1);
    expect_bad(h, 16, "longer than 4096");
    n = v2(h, 1, 0x11, a4, 12, 0);
    h[7] = 'X'; /* a damaged signature */
    expect_bad(h, n, "no PROXY header");
    /* The longest accepted header. */
    done_v2(h, 1, 0x11, a4, 12, 4096 - 16 - 12, "10.1.2.3", 8080, false);
}

int main(void)
{
    test_v1();
    test_v2();
    puts("PASS: proxy");
    return 0;
}
