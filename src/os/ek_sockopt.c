#include "ek_sockopt.h"
#include "ek_acl.h"
#include "ek_platform.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

int ek_sockopt_set_int(int fd, int level, int name, int value)
{
    return setsockopt(fd, level, name, &value, sizeof(value)) < 0 ? -errno : 0;
}

/* The options only Linux has, unless the build leaves Linux's extensions
 * out (then they are refused, ek_cli.c says so). */
#if !defined(EK_PORTABLE_BUILD) && defined(__linux__)
#define EK_LINUX_SOCKOPTS 1
#endif

bool ek_sockopts_any(const struct ek_sockopts *o)
{
    return o->source.family != 0 || o->dev[0] != '\0' || o->tos >= 0 ||
           o->mark >= 0 || o->cc[0] != '\0' || o->mss > 0;
}

static unsigned addr_len(int family)
{
    return family == AF_INET ? 4 : 16;
}

/* a += v, as big-endian numbers of len bytes (wrapping). */
static void addr_add(uint8_t *a, unsigned len, uint64_t v)
{
    unsigned carry = 0;
    for (unsigned i = len; i-- > 0;) {
        unsigned sum = a[i] + (unsigned)(v & 0xff) + carry;
        a[i] = (uint8_t)sum;
        carry = sum >> 8;
        v >>= 8;
    }
}

/* last - first + 1 of two big-endian addresses, or 0 when last < first
 * or the difference does not fit in 64 bits. */
static uint64_t addr_span(const uint8_t *first, const uint8_t *last,
                          unsigned len)
{
    uint8_t diff[16] = {0};
    unsigned borrow = 0;
    for (unsigned i = len; i-- > 0;) {
        int d = (int)last[i] - (int)first[i] - (int)borrow;
        borrow = d < 0;
        diff[i] = (uint8_t)(d + (borrow ? 256 : 0));
    }
    if (borrow)
        return 0;
    uint64_t v = 0;
    for (unsigned i = 0; i < len; i++) {
        if (i + 8 < len && diff[i] != 0)
            return 0;
        v = v << 8 | diff[i];
    }
    return v == UINT64_MAX ? 0 : v + 1;
}

static int parse_range(const char *text, const char *dash,
                       struct ek_source_pool *out, const char **why)
{
    char first[INET6_ADDRSTRLEN + 1], last[INET6_ADDRSTRLEN + 1];
    size_t n1 = (size_t)(dash - text), n2 = strlen(dash + 1);
    if (n1 == 0 || n1 >= sizeof(first) || n2 == 0 || n2 >= sizeof(last)) {
        *why = "expected FIRST-LAST, two addresses";
        return -EINVAL;
    }
    memcpy(first, text, n1);
    first[n1] = '\0';
    memcpy(last, dash + 1, n2 + 1);
    uint8_t end[16];
    if (inet_pton(AF_INET, first, out->base) == 1 &&
        inet_pton(AF_INET, last, end) == 1) {
        out->family = AF_INET;
    } else if (inet_pton(AF_INET6, first, out->base) == 1 &&
               inet_pton(AF_INET6, last, end) == 1) {
        out->family = AF_INET6;
    } else {
        *why = "FIRST-LAST must be two IPv4 or two IPv6 addresses";
        return -EINVAL;
    }
    out->count = addr_span(out->base, end, addr_len(out->family));
    if (out->count == 0) {
        *why = "LAST comes before FIRST (or the range is past 2^64 "
               "addresses)";
        return -EINVAL;
    }
    return 0;
}

int ek_source_parse(const char *text, struct ek_source_pool *out,
                    const char **why)
{
    memset(out, 0, sizeof(*out));
    /* An IPv6 address has no '-', so one means a range. */
    const char *dash = strchr(text, '-');
    if (dash != NULL)
        return parse_range(text, dash, out, why);
    struct ek_cidr cidr;
    if (ek_cidr_parse(text, &cidr, why) < 0)
        return -EINVAL;
    out->family = cidr.family;
    memcpy(out->base, cidr.addr, sizeof(out->base));
    unsigned bits = (cidr.family == AF_INET ? 32u : 128u) - cidr.prefix;
    /* Past 2^63 addresses the round robin never comes back anyway. */
    out->count = bits >= 63 ? (uint64_t)1 << 63 : (uint64_t)1 << bits;
    if (cidr.family == AF_INET && bits >= 2) {
        addr_add(out->base, 4, 1); /* not the network address */
        out->count -= 2;           /* nor the broadcast */
    } else if (cidr.family == AF_INET6 && bits >= 2) {
        addr_add(out->base, 16, 1); /* not the subnet-router anycast */
        out->count -= 1;
    }
    return 0;
}

void ek_source_addr(const struct ek_source_pool *p, uint64_t i,
                    struct ek_sockaddr *out)
{
    memset(out, 0, sizeof(*out));
    if (p->family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)&out->ss;
        in->sin_family = AF_INET;
        memcpy(&in->sin_addr, p->base, 4);
        addr_add((uint8_t *)&in->sin_addr, 4, i % p->count);
        out->len = sizeof(*in);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->ss;
        in6->sin6_family = AF_INET6;
        memcpy(&in6->sin6_addr, p->base, 16);
        addr_add((uint8_t *)&in6->sin6_addr, 16, i % p->count);
        out->len = sizeof(*in6);
    }
}

int ek_dscp_parse(const char *text, int *dscp, const char **why)
{
    /* RFC 2474 class selectors, RFC 2597 assured forwarding, RFC 3246
     * expedited forwarding, RFC 5865 voice admit, RFC 8622 lower effort. */
    static const struct {
        const char *name;
        int value;
    } names[] = {{"ef", 46}, {"va", 44}, {"le", 1}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcasecmp(text, names[i].name) == 0) {
            *dscp = names[i].value;
            return 0;
        }
    const char *p = text;
    int value = -1;
    if (strncasecmp(p, "cs", 2) == 0 && p[2] >= '0' && p[2] <= '7' &&
        p[3] == '\0') {
        value = (p[2] - '0') << 3;
    } else if (strncasecmp(p, "af", 2) == 0 && p[2] >= '1' && p[2] <= '4' &&
               p[3] >= '1' && p[3] <= '3' && p[4] == '\0') {
        value = (p[2] - '0') << 3 | (p[3] - '0') << 1;
    } else if (isdigit((unsigned char)*p)) {
        value = 0;
        for (; isdigit((unsigned char)*p) && value <= 63; p++)
            value = value * 10 + (*p - '0');
        if (*p != '\0' || value > 63)
            value = -1;
    }
    if (value < 0) {
        *why = "expected 0..63 or a name: cs0..cs7, af11..af43, ef, va, le";
        return -EINVAL;
    }
    *dscp = value;
    return 0;
}

#ifdef EK_LINUX_SOCKOPTS
/* A string option (an interface's or a congestion control's name). */
static int set_name(int fd, int level, int name, const char *v,
                    const char *option, const char **which)
{
    if (setsockopt(fd, level, name, v, (socklen_t)strlen(v)) == 0)
        return 0;
    *which = option;
    return -errno;
}
#endif

static int set_int(int fd, int level, int name, int value, const char *option,
                   const char **which)
{
    int err = ek_sockopt_set_int(fd, level, name, value);
    if (err < 0)
        *which = option;
    return err;
}

static int bind_source(const struct ek_sockopts *o, int fd, bool stream,
                       uint64_t index, const char **which)
{
#if defined(EK_LINUX_SOCKOPTS) && defined(IP_BIND_ADDRESS_NO_PORT)
    /* Without it, bind(port 0) takes a port for good before the connect
     * knows the destination: 28k connections per source address in all,
     * instead of per destination. */
    if (stream) {
        int err = set_int(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1,
                          "--source", which);
        if (err < 0)
            return err;
    }
#else
    (void)stream;
#endif
    struct ek_sockaddr sa;
    ek_source_addr(&o->source, index, &sa);
    if (bind(fd, (const struct sockaddr *)&sa.ss, sa.len) == 0)
        return 0;
    *which = "--source";
    return -errno;
}

int ek_sockopts_apply(const struct ek_sockopts *o, int fd, int family,
                      bool stream, uint64_t index, const char **which)
{
    int err = 0;
#ifdef EK_LINUX_SOCKOPTS
    if (o->dev[0] != '\0')
        err = set_name(fd, SOL_SOCKET, SO_BINDTODEVICE, o->dev, "--bind-dev",
                       which);
    if (err == 0 && o->mark >= 0)
        err = set_int(fd, SOL_SOCKET, SO_MARK, (int)(uint32_t)o->mark, "--mark",
                      which);
    if (err == 0 && stream && o->cc[0] != '\0')
        err = set_name(fd, IPPROTO_TCP, TCP_CONGESTION, o->cc, "--cc", which);
#else
    if (o->dev[0] != '\0' || o->mark >= 0 || o->cc[0] != '\0') {
        *which = o->dev[0] != '\0' ? "--bind-dev"
                 : o->mark >= 0    ? "--mark"
                                   : "--cc";
        return -EOPNOTSUPP;
    }
#endif
    if (err == 0 && o->tos >= 0)
        err =
            family == AF_INET6
                ? set_int(fd, IPPROTO_IPV6, IPV6_TCLASS, o->tos, "--tos", which)
                : set_int(fd, IPPROTO_IP, IP_TOS, o->tos, "--tos", which);
    if (err == 0 && stream && o->mss > 0)
        err = set_int(fd, IPPROTO_TCP, TCP_MAXSEG, o->mss, "--mss", which);
    if (err == 0 && o->source.family != 0)
        err = bind_source(o, fd, stream, index, which);
    return err;
}
