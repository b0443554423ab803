#include "ek_proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>

static const uint8_t v2_sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                   0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};
static const char v1_sig[] = "PROXY ";

#define V2_FIXED 16

/* v1 ports: 0-65535 in decimal, no sign, no leading zero. */
static bool parse_port(const char *text, uint16_t *out)
{
    size_t n = strlen(text);
    unsigned long v = 0;
    if (n == 0 || n > 5 || (n > 1 && text[0] == '0'))
        return false;
    for (size_t i = 0; i < n; i++) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(text[i] - '0');
    }
    if (v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

static bool set_inet(struct sockaddr_storage *ss, int family, const char *addr,
                     const char *port)
{
    uint16_t p;
    memset(ss, 0, sizeof(*ss));
    if (!parse_port(port, &p))
        return false;
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)ss;
        in->sin_family = AF_INET;
        in->sin_port = htons(p);
        return inet_pton(AF_INET, addr, &in->sin_addr) == 1;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(p);
    return inet_pton(AF_INET6, addr, &in6->sin6_addr) == 1;
}

/* A complete v1 line in p->buf, "\r\n" included. */
static int parse_v1(struct ek_proxy_parser *p, struct ek_proxy_result *res,
                    const char **why)
{
    char line[EK_PROXY_V1_MAX + 1];
    char *field[6];
    size_t nfields = 0;

    if (p->len < 2 || p->buf[p->len - 2] != '\r') {
        *why = "PROXY v1 line does not end in CRLF";
        return EK_PROXY_BAD;
    }
    memcpy(line, p->buf, p->len - 2);
    line[p->len - 2] = '\0';
    memset(res, 0, sizeof(*res));
    res->version = 1;
    /* Fields are separated by exactly one space. */
    char *s = line + strlen(v1_sig);
    if (strncmp(s, "UNKNOWN", 7) == 0 && (s[7] == '\0' || s[7] == ' ')) {
        res->local = true; /* the rest of the line is to be ignored */
        return EK_PROXY_DONE;
    }
    for (char *tok = s; nfields < 6;) {
        field[nfields++] = tok;
        char *sp = strchr(tok, ' ');
        if (sp == NULL)
            break;
        *sp = '\0';
        tok = sp + 1;
    }
    if (nfields != 5) {
        *why = "PROXY v1 line needs protocol, two addresses and two ports";
        return EK_PROXY_BAD;
    }
    int family = strcmp(field[0], "TCP4") == 0   ? AF_INET
                 : strcmp(field[0], "TCP6") == 0 ? AF_INET6
                                                 : 0;
    if (family == 0) {
        *why = "PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN";
        return EK_PROXY_BAD;
    }
    if (!set_inet(&res->src, family, field[1], field[3]) ||
        !set_inet(&res->dst, family, field[2], field[4])) {
        *why = "PROXY v1 address or port is malformed";
        return EK_PROXY_BAD;
    }
    res->addr_len = family == AF_INET ? sizeof(struct sockaddr_in)
                                      : sizeof(struct sockaddr_in6);
    return EK_PROXY_DONE;
}

static int feed_v1(struct ek_proxy_parser *p, const uint8_t *data, size_t n,
                   size_t *used, struct ek_proxy_result *res, const char **why)
{
    const uint8_t *nl = memchr(data, '\n', n);
    size_t take = nl != NULL ? (size_t)(nl - data) + 1 : n;
    /* The signature first, so that a client that sends no header at all
     * is told so whatever the length of its first read. */
    for (size_t i = p->len; i < 6 && i - p->len < take; i++)
        if (data[i - p->len] != (uint8_t)v1_sig[i]) {
            *why = "no PROXY header";
            return EK_PROXY_BAD;
        }
    if (p->len + take > EK_PROXY_V1_MAX) {
        *why = "PROXY v1 line longer than 107 bytes";
        return EK_PROXY_BAD;
    }
    memcpy(p->buf + p->len, data, take);
    p->len = (uint16_t)(p->len + take);
    *used = take;
    if (nl == NULL)
        return EK_PROXY_MORE;
    return parse_v1(p, res, why);
}

/* The fixed part is complete: checks it and learns the total length. */
static int check_v2_fixed(struct ek_proxy_parser *p, const char **why)
{
    uint8_t ver_cmd = p->buf[12], fam = p->buf[13];
    unsigned len = (unsigned)p->buf[14] << 8 | p->buf[15];
    unsigned cmd = ver_cmd & 0x0f, af = fam >> 4, proto = fam & 0x0f;
    static const unsigned need[] = {0, 12, 36, 216}; /* by af */

    if (ver_cmd >> 4 != 2) {
        *why = "PROXY v2 version is not 2";
        return EK_PROXY_BAD;
    }
    if (cmd > 1) {
        *why = "PROXY v2 command is neither LOCAL nor PROXY";
        return EK_PROXY_BAD;
    }
    if (af > 3 || proto > 2) {
        *why = "PROXY v2 address family or protocol is unknown";
        return EK_PROXY_BAD;
    }
    if (cmd == 1 && proto == 2) {
        *why = "PROXY v2 header announces a datagram on a stream";
        return EK_PROXY_BAD;
    }
    if (cmd == 1 && len < need[af]) {
        *why = "PROXY v2 length too short for its addresses";
        return EK_PROXY_BAD;
    }
    if (V2_FIXED + len > EK_PROXY_V2_MAX) {
        *why = "PROXY v2 header longer than 4096 bytes";
        return EK_PROXY_BAD;
    }
    p->total = V2_FIXED + len;
    return EK_PROXY_MORE;
}

static void parse_v2(const struct ek_proxy_parser *p,
                     struct ek_proxy_result *res)
{
    const uint8_t *a = p->buf + V2_FIXED;
    unsigned cmd = p->buf[12] & 0x0f, af = p->buf[13] >> 4;
    memset(res, 0, sizeof(*res));
    res->version = 2;
    res->local = cmd == 0 || af == 0;
    if (res->local)
        return;
    if (af == 1) {
        struct sockaddr_in *s = (struct sockaddr_in *)&res->src;
        struct sockaddr_in *d = (struct sockaddr_in *)&res->dst;
        s->sin_family = d->sin_family = AF_INET;
        memcpy(&s->sin_addr, a, 4);
        memcpy(&d->sin_addr, a + 4, 4);
        memcpy(&s->sin_port, a + 8, 2);
        memcpy(&d->sin_port, a + 10, 2);
        res->addr_len = sizeof(struct sockaddr_in);
    } else if (af == 2) {
        struct sockaddr_in6 *s = (struct sockaddr_in6 *)&res->src;
        struct sockaddr_in6 *d = (struct sockaddr_in6 *)&res->dst;
        s->sin6_family = d->sin6_family = AF_INET6;
        memcpy(&s->sin6_addr, a, 16);
        memcpy(&d->sin6_addr, a + 16, 16);
        memcpy(&s->sin6_port, a + 32, 2);
        memcpy(&d->sin6_port, a + 34, 2);
        res->addr_len = sizeof(struct sockaddr_in6);
    } else {
        struct sockaddr_un *s = (struct sockaddr_un *)&res->src;
        struct sockaddr_un *d = (struct sockaddr_un *)&res->dst;
        s->sun_family = d->sun_family = AF_UNIX;
        memcpy(s->sun_path, a, 107); /* the last byte stays NUL */
        memcpy(d->sun_path, a + 108, 107);
        res->addr_len = sizeof(struct sockaddr_un);
    }
}

static int feed_v2(struct ek_proxy_parser *p, const uint8_t *data, size_t n,
                   size_t *used, struct ek_proxy_result *res, const char **why)
{
    size_t off = 0;
    while (off < n) {
        size_t goal = p->total ? p->total : V2_FIXED;
        size_t take = goal - p->seen;
        if (take > n - off)
            take = n - off;
        if (p->seen < EK_PROXY_KEEP) {
            size_t keep = EK_PROXY_KEEP - p->seen;
            memcpy(p->buf + p->seen, data + off, take < keep ? take : keep);
            p->len = (uint16_t)(p->seen + (take < keep ? take : keep));
        }
        p->seen += (uint32_t)take;
        off += take;
        size_t sig = p->len < 12 ? p->len : 12;
        if (memcmp(p->buf, v2_sig, sig) != 0) {
            *used = off;
            *why = "no PROXY header";
            return EK_PROXY_BAD;
        }
        if (p->total == 0 && p->seen == V2_FIXED &&
            check_v2_fixed(p, why) == EK_PROXY_BAD) {
            *used = off;
            return EK_PROXY_BAD;
        }
        if (p->total != 0 && p->seen == p->total) {
            *used = off;
            parse_v2(p, res);
            return EK_PROXY_DONE;
        }
    }
    *used = off;
    return EK_PROXY_MORE;
}

int ek_proxy_feed(struct ek_proxy_parser *p, const void *data, size_t n,
                  size_t *used, struct ek_proxy_result *res, const char **why)
{
    const uint8_t *d = data;
    *used = 0;
    if (n == 0)
        return EK_PROXY_MORE;
    uint8_t first = p->len > 0 ? p->buf[0] : d[0];
    if (first == (uint8_t)v1_sig[0])
        return feed_v1(p, d, n, used, res, why);
    if (first == v2_sig[0])
        return feed_v2(p, d, n, used, res, why);
    *why = "no PROXY header";
    return EK_PROXY_BAD;
}
