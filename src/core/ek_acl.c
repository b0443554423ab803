#include "ek_acl.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

int ek_cidr_parse(const char *text, struct ek_cidr *out, const char **why)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(text, '/');
    size_t hlen = slash ? (size_t)(slash - text) : strlen(text);

    memset(out, 0, sizeof(*out));
    if (hlen == 0 || hlen >= sizeof(host)) {
        *why = "expected ADDRESS or ADDRESS/PREFIX";
        return -EINVAL;
    }
    memcpy(host, text, hlen);
    host[hlen] = '\0';
    unsigned max;
    if (inet_pton(AF_INET, host, out->addr) == 1) {
        out->family = AF_INET;
        max = 32;
    } else if (inet_pton(AF_INET6, host, out->addr) == 1) {
        out->family = AF_INET6;
        max = 128;
    } else {
        *why = "not an IPv4 or IPv6 address (names are not resolved here)";
        return -EINVAL;
    }
    out->prefix = max;
    if (slash != NULL) {
        const char *p = slash + 1;
        unsigned long v = 0;
        if (*p == '\0') {
            *why = "missing prefix length after '/'";
            return -EINVAL;
        }
        for (; *p; p++) {
            if (*p < '0' || *p > '9' || v > max) {
                *why = "prefix length is not a number in range";
                return -EINVAL;
            }
            v = v * 10 + (unsigned long)(*p - '0');
        }
        if (v > max) {
            *why = "prefix length is not a number in range";
            return -EINVAL;
        }
        out->prefix = (unsigned)v;
    }
    /* Host bits set under the prefix ("10.1.2.3/8") are almost always a
     * typo for a narrower rule: refuse rather than guess. */
    for (unsigned bit = out->prefix; bit < max; bit++)
        if (out->addr[bit / 8] & (0x80u >> (bit % 8))) {
            *why = "address has bits set beyond the prefix length";
            return -EINVAL;
        }
    return 0;
}

int ek_acl_add(struct ek_acl *acl, bool allow, const struct ek_cidr *rule)
{
    struct ek_cidr **list = allow ? &acl->allow : &acl->deny;
    size_t *n = allow ? &acl->nallow : &acl->ndeny;
    struct ek_cidr *grown = realloc(*list, (*n + 1) * sizeof(*grown));
    if (grown == NULL)
        return -ENOMEM;
    grown[(*n)++] = *rule;
    *list = grown;
    return 0;
}

static bool cidr_match(const struct ek_cidr *r, int family, const uint8_t *addr)
{
    if (r->family != family)
        return false;
    unsigned full = r->prefix / 8, rest = r->prefix % 8;
    if (memcmp(r->addr, addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xffu << (8 - rest));
    return (r->addr[full] & mask) == (addr[full] & mask);
}

static bool any_match(const struct ek_cidr *rules, size_t n, int family,
                      const uint8_t *addr)
{
    for (size_t i = 0; i < n; i++)
        if (cidr_match(&rules[i], family, addr))
            return true;
    return false;
}

bool ek_acl_permits(const struct ek_acl *acl, const struct sockaddr *sa)
{
    int family = sa->sa_family;
    const uint8_t *addr;

    if (!ek_acl_active(acl))
        return true;
    if (family == AF_INET) {
        addr = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
    } else if (family == AF_INET6) {
        const struct in6_addr *a6 =
            &((const struct sockaddr_in6 *)sa)->sin6_addr;
        addr = a6->s6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            family = AF_INET;
            addr += 12;
        }
    } else {
        return true; /* unix sockets: see ek_acl.h */
    }
    if (any_match(acl->deny, acl->ndeny, family, addr))
        return false;
    return acl->nallow == 0 || any_match(acl->allow, acl->nallow, family, addr);
}

void ek_acl_free(struct ek_acl *acl)
{
    free(acl->allow);
    free(acl->deny);
    memset(acl, 0, sizeof(*acl));
}
