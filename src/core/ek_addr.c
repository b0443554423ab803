#include "ek_addr.h"
#include "ek_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_unix(const char *path, struct ek_addr_spec *out,
                      const char **why)
{
    size_t len = strlen(path);
    if (len == 0 || (path[0] == '@' && len == 1)) {
        *why = "empty unix socket path";
        return -EINVAL;
    }
    if (len >= sizeof(out->path)) {
        *why = "unix socket path too long (at most 107 bytes)";
        return -EINVAL;
    }
    out->kind = EK_ADDR_UNIX;
    memcpy(out->path, path, len + 1);
    return 0;
}

static int parse_port(const char *s, uint16_t *port, const char **why)
{
    uint64_t v;
    const char *reason;
    if (*s == '\0') {
        *why = "missing port (expected HOST:PORT)";
        return -EINVAL;
    }
    if (ek_parse_uint(s, 0, 65535, &v, &reason) < 0) {
        *why = "port must be a number from 0 to 65535";
        return -EINVAL;
    }
    *port = (uint16_t)v;
    return 0;
}

/* "[v6]:port". The address is checked here, scope ("%eth0") included, so
 * typos are reported as syntax errors rather than as resolver failures. */
static int parse_bracketed(const char *text, struct ek_addr_spec *out,
                           const char **why)
{
    const char *close = strchr(text, ']');
    if (close == NULL) {
        *why = "missing ']' after IPv6 address";
        return -EINVAL;
    }
    size_t hlen = (size_t)(close - text - 1);
    if (hlen == 0 || hlen >= sizeof(out->host)) {
        *why = "bad IPv6 address";
        return -EINVAL;
    }
    memcpy(out->host, text + 1, hlen);
    out->host[hlen] = '\0';

    char bare[EK_HOST_MAX];
    struct in6_addr a6;
    memcpy(bare, out->host, hlen + 1);
    char *scope = strchr(bare, '%');
    if (scope != NULL)
        *scope = '\0';
    if (inet_pton(AF_INET6, bare, &a6) != 1) {
        *why = "bad IPv6 address";
        return -EINVAL;
    }
    if (close[1] != ':') {
        *why = "missing port after ']' (expected [ADDR]:PORT)";
        return -EINVAL;
    }
    out->kind = EK_ADDR_INET;
    return parse_port(close + 2, &out->port, why);
}

int ek_addr_parse(const char *text, struct ek_addr_spec *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    if (strncmp(text, "unix:", 5) == 0)
        return parse_unix(text + 5, out, why);
    if (strncmp(text, "udp:", 4) == 0 || strncmp(text, "tcp:", 4) == 0 ||
        strncmp(text, "tls:", 4) == 0) {
        if (strncmp(text + 4, "unix:", 5) == 0 ||
            strncmp(text + 4, "udp:", 4) == 0 ||
            strncmp(text + 4, "tcp:", 4) == 0 ||
            strncmp(text + 4, "tls:", 4) == 0) {
            *why = "udp:, tcp: and tls: go before HOST:PORT only";
            return -EINVAL;
        }
        int rc = ek_addr_parse(text + 4, out, why);
        out->udp = text[1] == 'd';
        out->tls = text[1] == 'l';
        return rc;
    }
    if (text[0] == '[')
        return parse_bracketed(text, out, why);

    const char *colon = strrchr(text, ':');
    if (colon == NULL) {
        *why = "missing port (expected HOST:PORT, [IPV6]:PORT or unix:PATH)";
        return -EINVAL;
    }
    size_t hlen = (size_t)(colon - text);
    if (memchr(text, ':', hlen) != NULL) {
        *why = "IPv6 addresses go in brackets, as in [::1]:50000";
        return -EINVAL;
    }
    if (hlen >= sizeof(out->host)) {
        *why = "host name too long";
        return -EINVAL;
    }
    if (!(hlen == 1 && text[0] == '*')) {
        memcpy(out->host, text, hlen);
        out->host[hlen] = '\0';
    }
    out->kind = EK_ADDR_INET;
    return parse_port(colon + 1, &out->port, why);
}

static void resolve_unix(const struct ek_addr_spec *spec,
                         struct ek_sockaddr *sa)
{
    struct sockaddr_un *un = (struct sockaddr_un *)&sa->ss;
    size_t plen = strlen(spec->path);

    memset(sa, 0, sizeof(*sa));
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, spec->path, plen);
    if (spec->path[0] == '@') {
        /* Abstract namespace: a leading NUL, and the length counts exactly
         * the name's bytes (no terminator), as unix(7) describes. */
        un->sun_path[0] = '\0';
        sa->len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
    } else {
        sa->len =
            (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);
    }
}

static bool seen_before(const struct ek_sockaddr *list, size_t n,
                        const struct addrinfo *ai)
{
    for (size_t i = 0; i < n; i++)
        if (list[i].len == ai->ai_addrlen &&
            memcmp(&list[i].ss, ai->ai_addr, ai->ai_addrlen) == 0)
            return true;
    return false;
}

int ek_addr_resolve(const struct ek_addr_spec *spec, bool passive,
                    struct ek_sockaddr **out, size_t *n)
{
    if (spec->kind == EK_ADDR_UNIX) {
        *out = malloc(sizeof(**out));
        if (*out == NULL)
            return EAI_MEMORY;
        resolve_unix(spec, *out);
        *n = 1;
        return 0;
    }

    /* No AI_ADDRCONFIG: it hides ::1 on hosts whose only IPv6 address is
     * the loopback one, and "localhost" must mean both families there. */
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0),
    };
    char service[8];
    struct addrinfo *res;
    snprintf(service, sizeof(service), "%u", (unsigned)spec->port);
    int rc = getaddrinfo(spec->host[0] != '\0' ? spec->host : NULL, service,
                         &hints, &res);
    if (rc != 0)
        return rc;

    size_t count = 0, cap = 1; /* at least 1: calloc(0) may return NULL */
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next)
        cap++;
    struct ek_sockaddr *list = calloc(cap, sizeof(*list));
    if (list == NULL) {
        freeaddrinfo(res);
        return EAI_MEMORY;
    }
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(list[0].ss) || seen_before(list, count, ai))
            continue;
        memcpy(&list[count].ss, ai->ai_addr, ai->ai_addrlen);
        list[count].len = ai->ai_addrlen;
        count++;
    }
    freeaddrinfo(res);
    *out = list;
    *n = count;
    return 0;
}

static void format_unix(const struct sockaddr_un *un, socklen_t len, char *buf,
                        size_t size)
{
    size_t off = offsetof(struct sockaddr_un, sun_path);
    if (len <= off) {
        snprintf(buf, size, "unix:(unnamed)");
        return;
    }
    size_t plen = len - off;
    if (un->sun_path[0] == '\0') /* abstract: exactly plen bytes after NUL */
        snprintf(buf, size, "unix:@%.*s", (int)(plen - 1), un->sun_path + 1);
    else
        snprintf(buf, size, "unix:%.*s", (int)strnlen(un->sun_path, plen),
                 un->sun_path);
}

void ek_addr_format(const struct sockaddr *sa, socklen_t len, char *buf,
                    size_t size)
{
    char host[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        snprintf(buf, size, "%s:%u", host, (unsigned)ntohs(in->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        char scope[16] = "";
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        if (in6->sin6_scope_id != 0)
            snprintf(scope, sizeof(scope), "%%%u", in6->sin6_scope_id);
        snprintf(buf, size, "[%s%s]:%u", host, scope,
                 (unsigned)ntohs(in6->sin6_port));
    } else if (sa->sa_family == AF_UNIX) {
        format_unix((const struct sockaddr_un *)sa, len, buf, size);
    } else {
        snprintf(buf, size, "(family %d)", sa->sa_family);
    }
}
