#include "ek_cli.h"
#include "ek_config.h"
#include "ek_backend.h"
#include "ek_conn.h"
#include "ek_log.h"
#include "ek_net.h"
#include "ek_platform.h"
#include "ek_sockopt.h"
#include "ek_util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>

const char *ek_tls_alpn_check(const char *alpn)
{
    size_t total = 0;
    for (const char *p = alpn;; p++) {
        size_t n = strcspn(p, ",");
        if (n == 0)
            return "an empty protocol name (expected NAME[,NAME...])";
        if (n > 255)
            return "a protocol name longer than 255 bytes";
        total += n + 1;
        if (total > EK_TLS_ALPN_WIRE_MAX)
            return "the list is longer than 256 bytes";
        p += n;
        if (*p == '\0')
            return NULL;
    }
}

void ek_print_tls_support(void)
{
#ifdef EK_HAVE_TLS
    printf("TLS: built with %s\n", EK_TLS_SOURCE);
#else
    printf("TLS: not in this build: %s\n", EK_TLS_WHY_NOT);
#endif
}

void ek_print_version(void)
{
    printf("echokit %s\n", EK_VERSION);
#ifdef EK_MUSL_STATIC
    printf("build: static, musl libc\n");
#endif
#ifdef EK_HAVE_URING
    printf("uring model: built with %s\n", EK_URING_SOURCE);
#else
    printf("uring model: %s\n", ek_platform_no_uring());
#endif
    ek_print_tls_support();
}

int ek_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "echokit: %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'echokit %s --help'.\n", cmd);
    return EX_USAGE;
}

int ek_option_error(const char *cmd, int c, char **argv)
{
    const char *opt = argv[optind - 1];
    if (c == ':')
        return ek_usage_error(cmd, "option '%s' needs a value", opt);
    return ek_usage_error(cmd, "unknown option '%s'", opt);
}

/* Keeps the addresses of the source pool's family, if o has one. */
static void keep_source_family(const struct ek_sockopts *o,
                               struct ek_sockaddr *addrs, size_t *n)
{
    size_t kept = 0;
    for (size_t i = 0; i < *n; i++)
        if (o->source.family == 0 || addrs[i].ss.ss_family == o->source.family)
            addrs[kept++] = addrs[i];
    /* None of that family: the check says so with the first address's. */
    if (kept > 0)
        *n = kept;
}

int ek_client_connect(const char *cmd, const char *text,
                      const struct ek_sockopts *o, int64_t timeout_ms, int *fd,
                      char *peer, size_t peer_size)
{
    struct ek_addr_spec spec;
    const char *why;
    if (ek_addr_parse(text, &spec, &why) < 0)
        return ek_usage_error(cmd, "invalid address '%s': %s", text, why);
    if (spec.kind == EK_ADDR_INET && spec.port == 0)
        return ek_usage_error(cmd, "invalid address '%s': port 0", text);

    struct ek_sockaddr *addrs;
    size_t n;
    int rc = ek_addr_resolve(&spec, false, &addrs, &n);
    if (rc != 0) {
        ek_warnx("%s: cannot resolve '%s': %s", cmd, text, gai_strerror(rc));
        return rc == EAI_MEMORY ? EX_OSERR : EX_NOHOST;
    }
    keep_source_family(o, addrs, &n);
    int status =
        n > 0 ? ek_client_sockopts_check(cmd, o, addrs[0].ss.ss_family, true)
              : 0;
    if (status != 0) {
        free(addrs);
        return status;
    }
    int err = -EADDRNOTAVAIL;
    char name[EK_ADDRSTR_MAX] = "";
    int64_t deadline = ek_now_ms() + timeout_ms;
    for (size_t i = 0; i < n; i++) {
        ek_addr_format((struct sockaddr *)&addrs[i].ss, addrs[i].len, name,
                       sizeof(name));
        int left = ek_timeout_until(deadline);
        err = left > 0 ? ek_net_connect(&addrs[i], o, left) : -ETIMEDOUT;
        if (err >= 0)
            break;
    }
    free(addrs);
    if (err >= 0) {
        *fd = err;
        if (peer != NULL)
            snprintf(peer, peer_size, "%s", name);
        return 0;
    }
    ek_warnx("%s: cannot connect to %s: %s", cmd, n == 1 ? name : text,
             err == -ETIMEDOUT ? "timed out" : strerror(-err));
    return err == -ETIMEDOUT ? EX_TEMPFAIL : EX_UNAVAILABLE;
}

bool ek_addr_text_is_udp(const char *text)
{
    return strncmp(text, "udp:", 4) == 0;
}

int ek_client_connect_udp(const char *cmd, const char *text,
                          const struct ek_sockopts *o, int *fd, char *peer,
                          size_t peer_size)
{
    struct ek_addr_spec spec;
    const char *why;
    if (ek_addr_parse(text, &spec, &why) < 0)
        return ek_usage_error(cmd, "invalid address '%s': %s", text, why);
    if (spec.kind != EK_ADDR_INET)
        return ek_usage_error(cmd,
                              "invalid address '%s': UDP needs "
                              "HOST:PORT",
                              text);
    if (spec.port == 0)
        return ek_usage_error(cmd, "invalid address '%s': port 0", text);
    struct ek_sockaddr *addrs;
    size_t n;
    int rc = ek_addr_resolve(&spec, false, &addrs, &n);
    if (rc != 0 || n == 0) {
        ek_warnx("%s: cannot resolve '%s': %s", cmd, text,
                 rc != 0 ? gai_strerror(rc) : "no address");
        if (rc == 0)
            free(addrs);
        return rc == EAI_MEMORY ? EX_OSERR : EX_NOHOST;
    }
    keep_source_family(o, addrs, &n);
    int status = ek_client_sockopts_check(cmd, o, addrs[0].ss.ss_family, false);
    if (status != 0) {
        free(addrs);
        return status;
    }
    char name[EK_ADDRSTR_MAX];
    ek_addr_format((struct sockaddr *)&addrs[0].ss, addrs[0].len, name,
                   sizeof(name));
    int s =
        ek_socket(addrs[0].ss.ss_family, SOCK_DGRAM, O_NONBLOCK | O_CLOEXEC);
    int err = s < 0 ? s : 0;
    const char *which;
    if (err == 0)
        err = ek_sockopts_apply(o, s, addrs[0].ss.ss_family, false, 0, &which);
    if (err == 0 &&
        connect(s, (struct sockaddr *)&addrs[0].ss, addrs[0].len) < 0)
        err = -errno;
    free(addrs);
    if (err < 0) {
        if (s >= 0)
            close(s);
        ek_warnx("%s: cannot reach %s: %s", cmd, name, strerror(-err));
        return EX_UNAVAILABLE;
    }
    *fd = s;
    if (peer != NULL)
        snprintf(peer, peer_size, "%s", name);
    return 0;
}

int ek_client_option(const char *cmd, struct ek_client_tls *t,
                     struct ek_sockopts *o, int c, const char *arg)
{
    int rc = ek_client_tls_option(cmd, t, c, arg);
    return rc >= 0 ? rc : ek_client_sock_option(cmd, o, c, arg);
}

int ek_client_tls_option(const char *cmd, struct ek_client_tls *t, int c,
                         const char *arg)
{
    const char *why;
    if (c < EK_OPT_TLS || c > EK_OPT_TLS_RESUME)
        return -1;
    t->asked |= c != EK_OPT_TLS;
    switch (c) {
    case EK_OPT_TLS:
        t->on = true;
        return 0;
    case EK_OPT_TLS_CA:
        t->opt.ca = arg;
        return 0;
    case EK_OPT_INSECURE:
        t->opt.insecure = true;
        return 0;
    case EK_OPT_SNI:
        if (arg[0] == '\0')
            return ek_usage_error(cmd, "invalid --sni '': empty");
        t->opt.sni = arg;
        return 0;
    case EK_OPT_TLS_CERT:
        t->opt.cert = arg;
        return 0;
    case EK_OPT_TLS_KEY:
        t->opt.key = arg;
        return 0;
    case EK_OPT_TLS_ALPN:
        if ((why = ek_tls_alpn_check(arg)) != NULL)
            return ek_usage_error(cmd, "invalid --tls-alpn '%s': %s", arg, why);
        t->opt.alpn = arg;
        return 0;
    case EK_OPT_ALLOW_TRUNCATION:
        t->opt.allow_truncation = true;
        return 0;
    case EK_OPT_TLS_RESUME:
        t->opt.resume = true;
        return 0;
    default:
        return -1;
    }
}

int ek_client_tls_start(const char *cmd, struct ek_client_tls *t,
                        const char *server, struct ek_tls_client **out)
{
    *out = NULL;
    t->on |= strncmp(server, "tls:", 4) == 0;
    if (!t->on && t->asked)
        return ek_usage_error(cmd, "the --tls-* options, --sni and "
                                   "--insecure need --tls");
    if (!t->on)
        return 0;
    if ((t->opt.cert == NULL) != (t->opt.key == NULL))
        return ek_usage_error(cmd, "--tls-cert and --tls-key go together");
    if (t->opt.insecure && t->opt.ca != NULL)
        return ek_usage_error(cmd, "--insecure verifies nothing: --tls-ca "
                                   "would be ignored");
    /* The certificate must name what was asked for: a unix socket, or an
     * address without a host (:PORT), gives no name to check. */
    struct ek_addr_spec spec;
    const char *why;
    if (!t->opt.insecure && t->opt.sni == NULL &&
        ek_addr_parse(server, &spec, &why) == 0 &&
        (spec.kind != EK_ADDR_INET || spec.host[0] == '\0'))
        return ek_usage_error(cmd,
                              "--tls to %s: no host name to check the "
                              "server's certificate against: give --sni "
                              "NAME (or --insecure)",
                              server);
#ifdef EK_HAVE_TLS
    int err = ek_tls_client_new(&t->opt, out);
    if (err < 0)
        return err == -ENOMEM ? EX_OSERR : EX_CONFIG;
    return 0;
#else
    ek_warnx("%s: --tls: %s", cmd, EK_TLS_UNAVAILABLE);
    return EX_UNAVAILABLE;
#endif
}

const char *ek_client_host(const char *server, struct ek_addr_spec *spec)
{
    const char *why;
    if (ek_addr_parse(server, spec, &why) < 0 || spec->kind != EK_ADDR_INET)
        return NULL;
    return spec->host;
}

int ek_client_conn_open(const char *cmd, struct ek_tls_client *tc,
                        struct ek_conn *c, int fd, const char *server)
{
    memset(c, 0, sizeof(*c));
    c->tp = EK_TP_SOCKET;
    if (tc == NULL)
        return 0;
#ifdef EK_HAVE_TLS
    struct ek_addr_spec spec;
    if (ek_tls_client_attach(tc, c, fd, ek_client_host(server, &spec)) == 0)
        return 0;
#else
    (void)fd;
    (void)server;
#endif
    ek_warnx("%s: out of memory", cmd);
    return EX_OSERR;
}

int ek_client_session_open(const char *cmd, const char *server,
                           const struct ek_sockopts *o, bool udp,
                           struct ek_tls_client *tc, int64_t timeout_ms,
                           char *what, size_t what_size,
                           struct ek_client_session *s)
{
    memset(s, 0, sizeof(*s));
    s->fd = -1;
    s->udp = udp;
    if (what != NULL && what_size > 0)
        what[0] = '\0';
    int status = udp ? ek_client_connect_udp(cmd, server, o, &s->fd, s->peer,
                                             sizeof(s->peer))
                     : ek_client_connect(cmd, server, o, timeout_ms, &s->fd,
                                         s->peer, sizeof(s->peer));
    if (status != 0 || udp)
        return status;
    status = ek_client_conn_open(cmd, tc, &s->conn, s->fd, server);
    if (status == 0)
        status = ek_client_handshake(cmd, &s->conn, s->fd, s->peer, timeout_ms,
                                     what, what_size);
    if (status != 0)
        ek_client_session_close(s);
    return status;
}

void ek_client_session_close(struct ek_client_session *s)
{
    if (!s->udp)
        ek_conn_release(&s->conn);
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
}

const char *ek_client_tls_error(const struct ek_conn *c)
{
#ifdef EK_HAVE_TLS
    if (ek_conn_tp(c) == &ek_transport_tls) {
        const char *why = ek_tls_error(c);
        return why != NULL ? why : "protocol error";
    }
#else
    (void)c;
#endif
    return NULL;
}

bool ek_client_tls_truncated(const struct ek_conn *c)
{
#ifdef EK_HAVE_TLS
    return ek_conn_tp(c) == &ek_transport_tls && ek_tls_truncated(c);
#else
    (void)c;
    return false;
#endif
}

void ek_client_tls_free(struct ek_tls_client *tc)
{
#ifdef EK_HAVE_TLS
    ek_tls_client_free(tc);
#else
    (void)tc;
#endif
}

int ek_client_handshake(const char *cmd, struct ek_conn *c, int fd,
                        const char *peer, int64_t timeout_ms, char *what,
                        size_t what_size)
{
    if (what != NULL && what_size > 0)
        what[0] = '\0';
#ifdef EK_HAVE_TLS
    if (ek_conn_tp(c) != &ek_transport_tls)
        return 0;
    int64_t deadline = ek_now_ms() + timeout_ms;
    for (;;) {
        unsigned wait = 0;
        int rc = ek_tls_handshake(c, fd, &wait);
        if (rc == 0)
            break;
        if (rc != -EAGAIN) {
            const char *why = ek_tls_error(c);
            ek_warnx("%s: %s: TLS: %s", cmd, peer,
                     rc != -EPROTO ? strerror(-rc)
                     : why != NULL ? why
                                   : "protocol error");
            return rc == -EPROTO ? EK_EXIT_TLS : EX_UNAVAILABLE;
        }
        struct pollfd p = {.fd = fd,
                           .events =
                               (short)((wait & EK_EV_READ ? POLLIN : 0) |
                                       (wait & EK_EV_WRITE ? POLLOUT : 0))};
        int left = ek_timeout_until(deadline);
        if (left == 0 || (poll(&p, 1, left) == 0 && ek_now_ms() >= deadline)) {
            ek_warnx("%s: %s: TLS: no handshake within %.1f s", cmd, peer,
                     (double)timeout_ms / 1000.0);
            return EX_TEMPFAIL;
        }
    }
    if (what != NULL)
        ek_tls_describe(c, what, what_size);
#else
    (void)cmd;
    (void)c;
    (void)fd;
    (void)peer;
    (void)timeout_ms;
#endif
    return 0;
}

void ek_client_tls_usage(int column, bool with_resume)
{
    static const char *const lines[][2] = {
        {"--tls", "speak TLS (also: a tls:HOST:PORT address)"},
        {"--tls-ca FILE", "trust the CAs in FILE (default: the system's)"},
        {"--insecure", "do not verify the server's certificate"},
        {"--sni NAME", "the name to ask for and to verify (default: the"},
        {"", "address's host name)"},
        {"--tls-cert FILE", "our certificate, for mutual TLS"},
        {"--tls-key FILE", "the private key of --tls-cert"},
        {"--tls-alpn LIST", "protocols to offer by ALPN (e.g. echo,h2)"},
        {"--allow-truncation", "take the server's FIN without close_notify"},
        {"", "as the end of the stream (default: an error)"},
        {"--tls-resume", "resume the last session in each new connection"},
    };
    size_t n = sizeof(lines) / sizeof(lines[0]) - (with_resume ? 0 : 1);
    int width = column - 8; /* and two spaces, however long the option */
    for (size_t i = 0; i < n; i++)
        printf("      %-*s  %s\n", width, lines[i][0], lines[i][1]);
}
