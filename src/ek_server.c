#include "ek_server.h"
#include "ek_metrics.h"
#include "ek_model.h"
#include "ek_net.h"
#include "ek_sd.h"
#include "ek_signal.h"
#include "ek_util.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sysexits.h>
#include <unistd.h>

/* How long accepting pauses after EMFILE/ENFILE when no connection closes
 * in the meantime (nginx waits 500 ms too). */
#define EK_ACCEPT_PAUSE_MS 500

/* How many times a port-0 group is retried when the port the kernel gave
 * the first address is taken on another (e.g. free on 127.0.0.1, taken on
 * ::1). */
#define EK_PORT_RETRIES 16

static int exit_code_for(int err)
{
    return err == -EACCES || err == -EPERM ? EX_NOPERM : EX_OSERR;
}

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

static int add_listener(struct ek_server *srv, int fd, bool udp)
{
    struct ek_listener *l = &srv->listeners[srv->nlisteners];
    int err = ek_net_local_addr(fd, &l->addr);
    if (err < 0)
        return err;
    l->fd = fd;
    l->inherited = false;
    l->udp = udp;
    char name[EK_ADDRSTR_MAX];
    ek_addr_format((struct sockaddr *)&l->addr.ss, l->addr.len, name,
                   sizeof(name));
    snprintf(l->name, sizeof(l->name), "%s%s", udp ? "udp:" : "", name);
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
static int bind_group(struct ek_server *srv, const char *text, bool udp,
                      struct ek_sockaddr *addrs, size_t n, size_t *failed)
{
    size_t mark = srv->nlisteners, bound = 0;
    uint16_t port = get_port(&addrs[0]);
    int first_err = 0;

    for (size_t i = 0; i < n; i++) {
        set_port(&addrs[i], port);
        bool many = srv->cfg->threads > 1;
        int fd = udp ? ek_net_bind_udp(&addrs[i], many)
                     : ek_net_listen(&addrs[i], SOMAXCONN, many);
        int err = fd < 0 ? fd : add_listener(srv, fd, udp);
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

static int bind_spec(struct ek_server *srv, const struct ek_addr_spec *spec,
                     const char *text)
{
    struct ek_sockaddr *addrs;
    size_t n, failed = 0;
    int rc = ek_addr_resolve(spec, true, &addrs, &n);
    if (rc != 0) {
        ek_warnx("cannot resolve '%s': %s", text, gai_strerror(rc));
        return rc == EAI_MEMORY ? EX_OSERR : EX_NOHOST;
    }
    if (n == 0) {
        free(addrs);
        ek_warnx("'%s' resolves to no address", text);
        return EX_NOHOST;
    }
    struct ek_listener *grown = realloc(
        srv->listeners, (srv->nlisteners + n) * sizeof(*srv->listeners));
    if (grown == NULL) {
        free(addrs);
        ek_warnx("out of memory");
        return EX_OSERR;
    }
    srv->listeners = grown;

    int err = 0;
    bool shared_port = spec->kind == EK_ADDR_INET && spec->port == 0 && n > 1;
    for (int attempt = 0; attempt < EK_PORT_RETRIES; attempt++) {
        for (size_t i = 0; i < n; i++)
            set_port(&addrs[i], spec->port);
        err = bind_group(srv, text, spec->udp, addrs, n, &failed);
        if (!(err == -EADDRINUSE && shared_port && failed > 0))
            break;
    }
    if (err < 0) {
        char name[EK_ADDRSTR_MAX];
        ek_addr_format((struct sockaddr *)&addrs[failed].ss, addrs[failed].len,
                       name, sizeof(name));
        ek_warnx("cannot listen on %s: %s", name, strerror(-err));
    }
    free(addrs);
    return err < 0 ? exit_code_for(err) : 0;
}

/* A datagram socket from systemd (ListenDatagram=): an IPv4 or IPv6 UDP
 * socket, told to report each datagram's destination. */
static bool usable_udp(int fd)
{
    struct ek_sockaddr local;
    int one = 1;
    if (ek_net_local_addr(fd, &local) < 0)
        return false;
    if (local.ss.ss_family == AF_INET)
        return setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) == 0;
    if (local.ss.ss_family == AF_INET6)
        return setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one,
                          sizeof(one)) == 0;
    return false;
}

/* Takes over a socket systemd passed: a listening stream socket (TCP or
 * unix) or a UDP socket. Returns 0 or a sysexits code after saying why. */
static int adopt_sd_fd(struct ek_server *srv, int fd)
{
    int type = 0, listening = 0;
    socklen_t len = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) {
        ek_warnx("socket activation: fd %d: %s", fd, strerror(errno));
        return EX_CONFIG;
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
        return EX_CONFIG;
    }
    struct ek_listener *grown = realloc(
        srv->listeners, (srv->nlisteners + 1) * sizeof(*srv->listeners));
    if (grown == NULL) {
        ek_warnx("out of memory");
        return EX_OSERR;
    }
    srv->listeners = grown;
    int err = ek_net_set_nonblock(fd, true);
    if (err == 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        err = -errno;
    if (err == 0)
        err = add_listener(srv, fd, udp);
    if (err < 0) {
        ek_warnx("socket activation: fd %d: %s", fd, strerror(-err));
        return EX_OSERR;
    }
    srv->listeners[srv->nlisteners - 1].inherited = true;
    return 0;
}

static struct ek_stats *stats_map(void)
{
    /* Shared so that the process model's children count here too. */
    void *p = mmap(NULL, sizeof(struct ek_stats), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

int ek_server_open(struct ek_server *srv, const struct ek_config *cfg)
{
    memset(srv, 0, sizeof(*srv));
    srv->cfg = cfg;
    srv->sig_fd = -1;
    srv->stats = stats_map();
    if (srv->stats == NULL) {
        ek_warnx("cannot map counters: %s", strerror(errno));
        return EX_OSERR;
    }

    for (unsigned i = 0; i < cfg->sd_fds; i++) {
        int rc = adopt_sd_fd(srv, EK_SD_LISTEN_FDS_START + (int)i);
        if (rc != 0) {
            ek_server_close(srv);
            return rc;
        }
    }
    for (size_t i = 0; i < cfg->nlisten; i++) {
        char text[EK_HOST_MAX + 16];
        const struct ek_addr_spec *spec = &cfg->listen[i];
        if (spec->kind == EK_ADDR_UNIX)
            snprintf(text, sizeof(text), "unix:%s", spec->path);
        else
            snprintf(text, sizeof(text), "%s%s:%u", spec->udp ? "udp:" : "",
                     spec->host[0] ? spec->host : "*", (unsigned)spec->port);
        int rc = bind_spec(srv, spec, text);
        if (rc != 0) {
            ek_server_close(srv);
            return rc;
        }
    }

    srv->sig_fd = ek_signal_open();
    if (srv->sig_fd < 0) {
        ek_warnx("cannot set up signals: %s", strerror(-srv->sig_fd));
        ek_server_close(srv);
        return EX_OSERR;
    }

    return 0;
}

void ek_server_announce(const struct ek_server *srv)
{
    for (size_t i = 0; i < srv->nlisteners; i++) {
        printf("listening on %s\n", srv->listeners[i].name);
        ek_log(EK_LOG_INFO, "listening on %s%s", srv->listeners[i].name,
               srv->listeners[i].inherited ? " (from systemd)" : "");
    }
    fflush(stdout);
}

/* The drain closes the stream listeners only: UDP has no connections to
 * drain, and its sockets are served (by loops or a thread that hold them)
 * until the exit, where ek_server_close closes them. */
static void close_listeners(struct ek_server *srv, bool udp_too)
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

void ek_server_close_listeners(struct ek_server *srv)
{
    close_listeners(srv, false);
}

void ek_server_close(struct ek_server *srv)
{
    close_listeners(srv, true);
    free(srv->listeners);
    srv->listeners = NULL;
    srv->nlisteners = 0;
    if (srv->sig_fd >= 0)
        ek_signal_close();
    srv->sig_fd = -1;
    if (srv->stats != NULL)
        munmap(srv->stats, sizeof(*srv->stats));
    srv->stats = NULL;
}

static const char *signal_name(int signo)
{
    return signo == SIGINT ? "SIGINT" : signo == SIGTERM ? "SIGTERM" : "signal";
}

unsigned ek_server_read_signals(struct ek_server *srv)
{
    struct ek_signal_news news;
    unsigned out = 0;

    ek_signal_read(srv->sig_fd, &news);
    if (news.dump_stats)
        ek_metrics_log(srv);
    if (news.child_exited)
        out |= EK_NEWS_CHILD;
    if (news.terms == srv->terms_handled)
        return out;

    uint64_t active = ek_stat_get(&srv->stats->active);
    if (srv->terms_handled == 0 && news.terms == 1) {
        srv->phase = EK_DRAINING;
        srv->drain_deadline_ms = ek_now_ms() + srv->cfg->drain_timeout_ms;
        ek_log(EK_LOG_INFO,
               "%s: no longer accepting; draining %llu connection%s for up "
               "to %.1f s (signal again to exit at once)",
               signal_name(news.last_term), (unsigned long long)active,
               active == 1 ? "" : "s",
               (double)srv->cfg->drain_timeout_ms / 1000.0);
        out |= EK_NEWS_DRAIN;
        ek_sd_notifyf("STOPPING=1\nSTATUS=draining %llu connection%s",
                      (unsigned long long)active, active == 1 ? "" : "s");
    } else {
        if (srv->phase == EK_RUNNING)
            out |= EK_NEWS_DRAIN; /* two at once: the listeners go too */
        srv->phase = EK_FORCED;
        srv->exit_signal = news.last_term;
        ek_log(EK_LOG_WARN, "%s again: exiting now, cutting %llu connection%s",
               signal_name(news.last_term), (unsigned long long)active,
               active == 1 ? "" : "s");
    }
    srv->terms_handled = news.terms;
    return out;
}

bool ek_server_should_stop(struct ek_server *srv)
{
    if (srv->phase == EK_DRAINING && ek_now_ms() >= srv->drain_deadline_ms) {
        uint64_t active = ek_stat_get(&srv->stats->active);
        if (active > 0)
            ek_log(EK_LOG_WARN,
                   "drain timeout: closing %llu connection%s still open",
                   (unsigned long long)active, active == 1 ? "" : "s");
        srv->phase = EK_STOPPING;
    }
    return srv->phase == EK_STOPPING || srv->phase == EK_FORCED;
}

/* --allow/--deny: refuses (closing fd) a peer the rules keep out. With
 * --proxy-protocol the peer is the proxy: the rules wait for the header. */
static bool acl_refuses(struct ek_server *srv, struct ek_acceptor *acc, int fd)
{
    struct ek_sockaddr peer = {.len = sizeof(peer.ss)};
    if (!ek_acl_active(srv->cfg->acl) || srv->cfg->proxy_protocol)
        return false;
    if (getpeername(fd, (struct sockaddr *)&peer.ss, &peer.len) < 0) {
        /* ENOTCONN: reset before we looked; it is gone either way. */
        close(fd);
        ek_stat_add(&srv->stats->accept_errors, 1);
        return true;
    }
    if (ek_acl_permits(srv->cfg->acl, (struct sockaddr *)&peer.ss))
        return false;
    char name[EK_ADDRSTR_MAX];
    ek_addr_format((struct sockaddr *)&peer.ss, peer.len, name, sizeof(name));
    ek_stat_add(&srv->stats->refused_acl, 1);
    ek_log_limited(&acc->acl_log, EK_LOG_WARN,
                   "refused a connection from %s (--allow/--deny)", name);
    close(fd);
    return true;
}

bool ek_server_admit(struct ek_server *srv, struct ek_acceptor *acc, int fd)
{
    if (acl_refuses(srv, acc, fd))
        return false;
    /* Count first, then check: exact even with several accepting threads. */
    uint64_t before =
        atomic_fetch_add_explicit(&srv->stats->active, 1, memory_order_relaxed);
    if (before >= srv->cfg->max_conns) {
        atomic_fetch_sub_explicit(&srv->stats->active, 1, memory_order_relaxed);
        ek_stat_add(&srv->stats->refused_limit, 1);
        ek_log_limited(&acc->refused_log, EK_LOG_WARN,
                       "refused a connection: limit of %llu connections "
                       "reached (--max-conns)",
                       (unsigned long long)srv->cfg->max_conns);
        close(fd);
        return false;
    }
    ek_stat_add(&srv->stats->accepted, 1);
    ek_net_tune(fd);
    if (ek_log_enabled(EK_LOG_DEBUG)) {
        struct ek_sockaddr peer = {.len = sizeof(peer.ss)};
        char name[EK_ADDRSTR_MAX] = "?";
        if (getpeername(fd, (struct sockaddr *)&peer.ss, &peer.len) == 0)
            ek_addr_format((struct sockaddr *)&peer.ss, peer.len, name,
                           sizeof(name));
        ek_log(EK_LOG_DEBUG, "connection from %s (fd %d)", name, fd);
    }
    return true;
}

void ek_server_refuse(struct ek_server *srv, struct ek_acceptor *acc, int fd,
                      const char *why)
{
    ek_stat_add(&srv->stats->refused_fd, 1);
    ek_log_limited(&acc->refused_log, EK_LOG_WARN, "refused a connection: %s",
                   why);
    close(fd);
}

void ek_server_conn_done(struct ek_server *srv, int err)
{
    atomic_fetch_sub_explicit(&srv->stats->active, 1, memory_order_relaxed);
    if (err < 0)
        ek_stat_add(&srv->stats->conn_errors, 1);
    if (ek_log_enabled(EK_LOG_DEBUG))
        ek_log(EK_LOG_DEBUG, "connection closed%s%s", err < 0 ? ": " : "",
               err < 0 ? strerror(-err) : "");
}

bool ek_server_accept_failed(struct ek_server *srv, struct ek_acceptor *acc,
                             int err)
{
    ek_stat_add(&srv->stats->accept_errors, 1);
    switch (err) {
    case -ECONNABORTED: /* the client left before we got to it */
    case -EPROTO:
    case -EPERM: /* a firewall said no */
    case -EINTR:
        return false;
    case -EMFILE:
    case -ENFILE:
    case -ENOBUFS:
    case -ENOMEM:
        acc->resume_ms = ek_now_ms() + EK_ACCEPT_PAUSE_MS;
        ek_log_limited(&acc->accept_log, EK_LOG_WARN,
                       "accept: %s; pausing accepts until a connection "
                       "closes (at most %d ms)",
                       strerror(-err), EK_ACCEPT_PAUSE_MS);
        return true;
    default:
        /* Unknown: pause too, so that a persistent error cannot spin. */
        acc->resume_ms = ek_now_ms() + EK_ACCEPT_PAUSE_MS;
        ek_log_limited(&acc->accept_log, EK_LOG_ERROR, "accept: %s",
                       strerror(-err));
        return true;
    }
}

bool ek_accept_paused(struct ek_acceptor *acc)
{
    if (acc->resume_ms != 0 && ek_now_ms() >= acc->resume_ms)
        acc->resume_ms = 0;
    return acc->resume_ms != 0;
}

void ek_accept_resume(struct ek_acceptor *acc)
{
    acc->resume_ms = 0;
}

int ek_accept_timeout(const struct ek_acceptor *acc)
{
    return acc->resume_ms != 0 ? ek_timeout_until(acc->resume_ms) : -1;
}

int ek_server_timeout(const struct ek_server *srv)
{
    int t = -1;
    if (srv->phase == EK_DRAINING)
        t = ek_timeout_until(srv->drain_deadline_ms);
    return ek_timeout_min(t, ek_accept_timeout(&srv->acceptor));
}

int ek_server_exit_status(const struct ek_server *srv)
{
    return srv->phase == EK_FORCED ? 128 + srv->exit_signal : 0;
}

static uint32_t to_ticks(int64_t ms)
{
    return ms <= 0 ? 0
                   : (uint32_t)((ms + EK_IDLE_TICK_MS - 1) / EK_IDLE_TICK_MS);
}

void ek_idle_init(struct ek_idle_clock *k, int64_t idle_ms, int64_t header_ms)
{
    memset(k, 0, sizeof(*k));
    if (idle_ms <= 0 && header_ms <= 0)
        return;
    k->epoch_ms = ek_now_ms();
    k->limit = to_ticks(idle_ms);
    k->header_limit = to_ticks(header_ms);
    int64_t shortest = idle_ms <= 0                            ? header_ms
                       : header_ms <= 0 || idle_ms < header_ms ? idle_ms
                                                               : header_ms;
    k->sweep_every_ms = shortest / 4;
    if (k->sweep_every_ms < EK_IDLE_TICK_MS)
        k->sweep_every_ms = EK_IDLE_TICK_MS;
    if (k->sweep_every_ms > 1000)
        k->sweep_every_ms = 1000;
    k->next_sweep_ms = k->epoch_ms + k->sweep_every_ms;
}

void ek_idle_tick(struct ek_idle_clock *k)
{
    if (k->epoch_ms != 0)
        k->now = (uint32_t)((ek_now_ms() - k->epoch_ms) / EK_IDLE_TICK_MS);
}

bool ek_idle_sweep_due(struct ek_idle_clock *k)
{
    if (k->epoch_ms == 0)
        return false;
    int64_t now = ek_now_ms();
    if (now < k->next_sweep_ms)
        return false;
    k->next_sweep_ms = now + k->sweep_every_ms;
    return true;
}

int ek_idle_timeout(const struct ek_idle_clock *k)
{
    return k->epoch_ms == 0 ? -1 : ek_timeout_until(k->next_sweep_ms);
}

void ek_server_idle_closed(struct ek_server *srv, int fd)
{
    ek_stat_add(&srv->stats->idle_closed, 1);
    ek_log(EK_LOG_DEBUG, "closing fd %d: idle for %.1f s (--idle-timeout)", fd,
           (double)srv->cfg->idle_timeout_ms / 1000.0);
}

bool ek_idle_sweep_closes(struct ek_server *srv, struct ek_acceptor *acc,
                          const struct ek_idle_clock *k, int fd, uint32_t stamp,
                          bool header_pending)
{
    /* While the header is read the stamp stays at the accept: only the
     * header's deadline applies (a header sent a byte at a time is not
     * idle). The event loops differed here; now they share this. */
    if (header_pending) {
        if (!ek_header_expired(k, stamp))
            return false;
        ek_server_proxy_failed(srv, acc, fd, "no PROXY header within 5 s");
        return true;
    }
    if (ek_idle_expired(k, stamp)) {
        ek_server_idle_closed(srv, fd);
        return true;
    }
    return false;
}

/* The limiter for callers without an acceptor (the blocking models' many
 * threads): one per process, under a lock. */
static struct ek_ratelimit shared_proxy_log, shared_acl_log;
static pthread_mutex_t shared_log_lock = PTHREAD_MUTEX_INITIALIZER;

static void peer_name(int fd, char *name, size_t size)
{
    struct ek_sockaddr peer = {.len = sizeof(peer.ss)};
    snprintf(name, size, "?");
    if (getpeername(fd, (struct sockaddr *)&peer.ss, &peer.len) == 0)
        ek_addr_format((struct sockaddr *)&peer.ss, peer.len, name, size);
}

void ek_server_proxy_failed(struct ek_server *srv, struct ek_acceptor *acc,
                            int fd, const char *why)
{
    char name[EK_ADDRSTR_MAX];
    ek_stat_add(&srv->stats->refused_proxy, 1);
    if (!ek_log_enabled(EK_LOG_WARN))
        return;
    peer_name(fd, name, sizeof(name));
    if (acc == NULL)
        pthread_mutex_lock(&shared_log_lock);
    ek_log_limited(acc ? &acc->proxy_log : &shared_proxy_log, EK_LOG_WARN,
                   "refused a connection from %s: %s (--proxy-protocol)", name,
                   why);
    if (acc == NULL)
        pthread_mutex_unlock(&shared_log_lock);
}

bool ek_server_proxy_admit(struct ek_server *srv, struct ek_acceptor *acc,
                           int fd, const struct ek_proxy_result *r)
{
    char client[EK_ADDRSTR_MAX] = "", via[EK_ADDRSTR_MAX];
    struct ek_sockaddr peer = {.len = sizeof(peer.ss)};
    const struct sockaddr *who = (const struct sockaddr *)&r->src;

    if (r->local) {
        if (getpeername(fd, (struct sockaddr *)&peer.ss, &peer.len) < 0)
            return false; /* gone already */
        who = (const struct sockaddr *)&peer.ss;
    }
    bool ok = ek_acl_permits(srv->cfg->acl, who);
    if (ok && !ek_log_enabled(EK_LOG_DEBUG))
        return true;
    peer_name(fd, via, sizeof(via));
    if (r->local)
        snprintf(client, sizeof(client), "%s", via);
    else
        ek_addr_format(who, r->addr_len, client, sizeof(client));
    if (ok) {
        ek_log(EK_LOG_DEBUG, "connection from %s via PROXY v%d from %s%s",
               client, r->version, via, r->local ? " (local)" : "");
        return true;
    }
    ek_stat_add(&srv->stats->refused_acl, 1);
    if (acc == NULL)
        pthread_mutex_lock(&shared_log_lock);
    ek_log_limited(acc ? &acc->acl_log : &shared_acl_log, EK_LOG_WARN,
                   "refused a connection from %s via PROXY from %s "
                   "(--allow/--deny)",
                   client, via);
    if (acc == NULL)
        pthread_mutex_unlock(&shared_log_lock);
    return false;
}
