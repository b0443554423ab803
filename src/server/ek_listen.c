#include "ek_listen.h"
#include "ek_log.h"
#include "ek_net.h"
#include "ek_platform.h"
#include "ek_sd.h"
#include "ek_server.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* How many times a port-0 group is retried when the port the kernel gave
 * the first address is taken on another (e.g. free on 127.0.0.1, taken on
 * ::1). */
#define EK_PORT_RETRIES 16

static void set_port(struct ek_sockaddr *sa, uint16_t port)
{
    if (sa->ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&sa->ss)->sin_port = htons(port);
    else if (sa->ss.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&sa->ss)->sin6_port = htons(port);
}

static uint16_t get_port(const struct ek_sockaddr *sa)
{
    if (sa->ss.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&sa->ss)->sin_port);
    if (sa->ss.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&sa->ss)->sin6_port);
    return 0;
}

/* What a stream listener's connections speak. */
static const struct ek_transport *transport_for(bool tls)
{
#ifdef EK_HAVE_TLS
    if (tls)
        return &ek_transport_tls;
#else
    (void)tls; /* cmd_serve refuses tls: in a build without TLS */
#endif
    return &ek_transport_socket;
}

static int add_listener(struct ek_server *srv, int fd, bool udp, bool tls)
{
    struct ek_listener *l = &srv->listeners[srv->nlisteners];
    int err = ek_net_local_addr(fd, &l->addr);
    if (err < 0)
        return err;
    l->fd = fd;
    l->inherited = false;
    l->udp = udp;
    l->tp = udp ? NULL : transport_for(tls);
    char name[EK_ADDRSTR_MAX];
    ek_addr_format((struct sockaddr *)&l->addr.ss, l->addr.len, name,
                   sizeof(name));
    snprintf(l->name, sizeof(l->name), "%s%s",
             udp   ? "udp:"
             : tls ? "tls:"
                   : "",
             name);
    srv->nlisteners++;
    return 0;
}

/* Drops the listeners added since `mark` (a failed port-0 group). */
static void drop_listeners_since(struct ek_server *srv, size_t mark)
{
    while (srv->nlisteners > mark) {
        srv->nlisteners--;
        close(srv->listeners[srv->nlisteners].fd);
    }
}

/* One attempt at binding every address of a spec. With port 0 and several
 * addresses, all of them get the port the kernel chose for the first, so
 * "localhost:0" is one port on 127.0.0.1 and ::1 as users expect.
 * Addresses of a family the host lacks (no IPv6) are skipped when some
 * other address of the spec binds. Returns 0, or -errno with *failed set to
 * the address that failed. */
static int bind_group(struct ek_server *srv, const char *text,
                      const struct ek_addr_spec *spec,
                      struct ek_sockaddr *addrs, size_t n, size_t *failed)
{
    bool udp = spec->udp;
    size_t mark = srv->nlisteners, bound = 0;
    uint16_t port = get_port(&addrs[0]);
    int first_err = 0;

    for (size_t i = 0; i < n; i++) {
        set_port(&addrs[i], port);
        bool many = srv->cfg->threads > 1;
        int fd = udp ? ek_net_bind_udp(&addrs[i], many)
                     : ek_net_listen(&addrs[i], EK_LISTEN_BACKLOG, many);
        int err = fd < 0 ? fd : add_listener(srv, fd, udp, spec->tls);
        if (err < 0 && fd >= 0)
            close(fd);
        if (err == -EADDRNOTAVAIL || err == -EAFNOSUPPORT) {
            char name[EK_ADDRSTR_MAX];
            ek_addr_format((struct sockaddr *)&addrs[i].ss, addrs[i].len, name,
                           sizeof(name));
            ek_log(EK_LOG_WARN, "%s: skipping %s: %s", text, name,
                   strerror(-err));
            if (first_err == 0)
                first_err = err;
            *failed = i;
            continue;
        }
        if (err < 0) {
            drop_listeners_since(srv, mark);
            *failed = i;
            return err;
        }
        if (port == 0)
            port = get_port(&srv->listeners[srv->nlisteners - 1].addr);
        bound++;
    }
    return bound > 0 ? 0 : first_err;
}

/* Why a TCP port may be in use, when bind says so: a server answering at
 * the address, or else (ECONNREFUSED) something no connect can see: a
 * connection that took the port as its source port, or its TIME_WAIT (60
 * s; Linux's ephemeral range, 32768-60999, includes 50000), or a listener
 * on another address of the port (for a wildcard bind). A guess, worded
 * as one. */
static const char *in_use_reason(const struct ek_sockaddr *sa)
{
    int family = sa->ss.ss_family;
    if (family != AF_INET && family != AF_INET6)
        return "";
    int fd = ek_net_connect(sa, NULL, 1000);
    if (fd >= 0) {
        close(fd);
        return " (a server answers there)";
    }
    if (fd != -ECONNREFUSED)
        return "";
    return " (no server answers there: a connection may use the port as "
           "its source port, or its TIME_WAIT may, for up to 60 s, or a "
           "listener may hold it on another address; wait, choose another "
           "port, or keep it out of the ephemeral range with sysctl "
           "net.ipv4.ip_local_reserved_ports)";
}

static int bind_spec(struct ek_server *srv, const struct ek_addr_spec *spec,
                     const char *text)
{
    struct ek_sockaddr *addrs;
    size_t n, failed = 0;
    int rc = ek_addr_resolve(spec, true, &addrs, &n);
    if (rc != 0) {
        ek_warnx("cannot resolve '%s': %s", text, gai_strerror(rc));
        return rc == EAI_MEMORY ? -ENOMEM : -ENXIO;
    }
    if (n == 0) {
        free(addrs);
        ek_warnx("'%s' resolves to no address", text);
        return -ENXIO;
    }
    struct ek_listener *grown = realloc(
        srv->listeners, (srv->nlisteners + n) * sizeof(*srv->listeners));
    if (grown == NULL) {
        free(addrs);
        ek_warnx("out of memory");
        return -ENOMEM;
    }
    srv->listeners = grown;

    int err = 0;
    bool shared_port = spec->kind == EK_ADDR_INET && spec->port == 0 && n > 1;
    for (int attempt = 0; attempt < EK_PORT_RETRIES; attempt++) {
        for (size_t i = 0; i < n; i++)
            set_port(&addrs[i], spec->port);
        err = bind_group(srv, text, spec, addrs, n, &failed);
        if (!(err == -EADDRINUSE && shared_port && failed > 0))
            break;
    }
    if (err < 0) {
        char name[EK_ADDRSTR_MAX];
        ek_addr_format((struct sockaddr *)&addrs[failed].ss, addrs[failed].len,
                       name, sizeof(name));
        ek_warnx("cannot listen on %s: %s%s", name,
                 err == -ENOTSOCK ? "the path exists and is not a socket "
                                    "(only a stale socket file is replaced)"
                                  : strerror(-err),
                 err == -EADDRINUSE && !spec->udp
                     ? in_use_reason(&addrs[failed])
                     : "");
    }
    free(addrs);
    return err;
}

/* A datagram socket from systemd (ListenDatagram=): an IPv4 or IPv6 UDP
 * socket, told to report each datagram's destination. */
static bool usable_udp(int fd)
{
    struct ek_sockaddr local;
    return ek_net_local_addr(fd, &local) == 0 &&
           ek_dst_addr_enable(fd, local.ss.ss_family) == 0;
}

/* Takes over a socket systemd passed: a listening stream socket (TCP or
 * unix) or a UDP socket. Returns 0, or -errno after saying why (-ENOTSOCK:
 * neither). */
static int adopt_sd_fd(struct ek_server *srv, int fd)
{
    int type = 0, listening = 0;
    socklen_t len = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
        ek_warnx("socket activation: fd %d: %s", fd, strerror(errno));
        return -ENOTSOCK;
    }
    len = sizeof(listening);
    bool udp = type == SOCK_DGRAM;
    if (udp ? !usable_udp(fd)
            : type != SOCK_STREAM ||
                  getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) <
                      0 ||
                  !listening) {
        ek_warnx("socket activation: fd %d is neither a listening stream "
                 "socket (ListenStream=) nor a UDP socket (ListenDatagram=)",
                 fd);
        return -ENOTSOCK;
    }
    struct ek_listener *grown = realloc(
        srv->listeners, (srv->nlisteners + 1) * sizeof(*srv->listeners));
    if (grown == NULL) {
        ek_warnx("out of memory");
        return -ENOMEM;
    }
    srv->listeners = grown;
    int err = ek_net_set_nonblock(fd, true);
    if (err == 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        err = -errno;
    if (err == 0)
        err = add_listener(srv, fd, udp, false);
    if (err < 0) {
        ek_warnx("socket activation: fd %d: %s", fd, strerror(-err));
        return err;
    }
    srv->listeners[srv->nlisteners - 1].inherited = true;
    return 0;
}

int ek_listeners_open(struct ek_server *srv)
{
    const struct ek_config *cfg = srv->cfg;
    for (unsigned i = 0; i < cfg->sd_fds; i++) {
        int err = adopt_sd_fd(srv, EK_SD_LISTEN_FDS_START + (int)i);
        if (err < 0)
            return err;
    }
    for (size_t i = 0; i < cfg->nlisten; i++) {
        char text[EK_HOST_MAX + 16];
        const struct ek_addr_spec *spec = &cfg->listen[i];
        if (spec->kind == EK_ADDR_UNIX)
            snprintf(text, sizeof(text), "unix:%s", spec->path);
        else
            snprintf(text, sizeof(text), "%s%s:%u",
                     spec->udp   ? "udp:"
                     : spec->tls ? "tls:"
                                 : "",
                     spec->host[0] ? spec->host : "*", (unsigned)spec->port);
        int err = bind_spec(srv, spec, text);
        if (err < 0)
            return err;
    }
    return 0;
}

void ek_listeners_announce(const struct ek_server *srv)
{
    for (size_t i = 0; i < srv->nlisteners; i++) {
        printf("listening on %s\n", srv->listeners[i].name);
        ek_log(EK_LOG_INFO, "listening on %s%s", srv->listeners[i].name,
               srv->listeners[i].inherited ? " (from systemd)" : "");
    }
    fflush(stdout);
}

void ek_listeners_close(struct ek_server *srv, bool udp_too)
{
    for (size_t i = 0; i < srv->nlisteners; i++) {
        struct ek_listener *l = &srv->listeners[i];
        if (l->fd < 0 || (l->udp && !udp_too))
            continue;
        close(l->fd);
        l->fd = -1;
        const struct sockaddr_un *un = (const struct sockaddr_un *)&l->addr.ss;
        if (un->sun_family == AF_UNIX && un->sun_path[0] != '\0' &&
            !l->inherited && /* systemd's socket file */
            unlink(un->sun_path) < 0 && errno != ENOENT)
            ek_log(EK_LOG_WARN, "cannot remove %s: %s", un->sun_path,
                   strerror(errno));
    }
}

void ek_listeners_free(struct ek_server *srv)
{
    ek_listeners_close(srv, true);
    free(srv->listeners);
    srv->listeners = NULL;
    srv->nlisteners = 0;
}
