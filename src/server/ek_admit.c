#include "ek_admit.h"
#include "ek_conn.h"
#include "ek_acl.h"
#include "ek_net.h"
#include "ek_platform.h"
#include "ek_proxy.h"
#include "ek_server.h"
#include "ek_util.h"
#include "ek_stats.h"

#include <errno.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

bool ek_admit_error_persists(int err)
{
    switch (err) {
    case -ECONNABORTED: /* the client left before we got to it */
    case -EPROTO:
    case -EPERM: /* a firewall said no */
    case -EINTR:
    case -EAGAIN:
        return false;
    default:
        return true;
    }
}

/* Whether a unix socket's peer may send a PROXY header: on a socket file,
 * yes (the file's permissions chose who can connect); on an abstract
 * socket (Linux; no file, no permissions: any local user can connect)
 * only a peer running as this server's user or root. */
static bool unix_proxy_trusted(int fd)
{
    struct ek_sockaddr local = {.len = sizeof(local.ss)};
    const struct sockaddr_un *un = (const struct sockaddr_un *)&local.ss;
    if (getsockname(fd, (struct sockaddr *)&local.ss, &local.len) < 0)
        return false;
    if (local.len > offsetof(struct sockaddr_un, sun_path) &&
        un->sun_path[0] != '\0')
        return true;
    uid_t uid;
    return ek_peer_uid(fd, &uid) == 0 && (uid == geteuid() || uid == 0);
}

/* Whether the peer at peer may send a PROXY header (--proxy-from). */
static bool proxy_trusted(const struct ek_server *srv, int fd,
                          const struct ek_sockaddr *peer)
{
    if (peer->ss.ss_family == AF_UNIX)
        return unix_proxy_trusted(fd);
    return ek_acl_permits(srv->cfg->proxy_from,
                          (const struct sockaddr *)&peer->ss);
}

/* --allow/--deny: refuses (closing fd) a peer the rules keep out. With
 * --proxy-protocol the peer is the proxy, which must be one --proxy-from
 * trusts (proxy_trusted); the rules wait for the header. */
static bool acl_refuses(struct ek_server *srv, struct ek_acceptor *acc, int fd)
{
    struct ek_sockaddr peer = {.len = sizeof(peer.ss)};
    bool proxied = srv->cfg->proxy_protocol;
    if (!proxied && !ek_acl_active(srv->cfg->acl))
        return false;
    if (getpeername(fd, (struct sockaddr *)&peer.ss, &peer.len) < 0) {
        /* ENOTCONN: reset before we looked; it is gone either way. */
        close(fd);
        ek_stat_add(&srv->stats->accept_errors, 1);
        return true;
    }
    if (proxied ? proxy_trusted(srv, fd, &peer)
                : ek_acl_permits(srv->cfg->acl, (struct sockaddr *)&peer.ss))
        return false;
    char name[EK_ADDRSTR_MAX];
    ek_addr_format((struct sockaddr *)&peer.ss, peer.len, name, sizeof(name));
    ek_stat_add(proxied ? &srv->stats->refused_proxy_untrusted
                        : &srv->stats->refused_acl,
                1);
    ek_log_limited(
        &acc->acl_log, EK_LOG_WARN, "refused a connection from %s%s", name,
        proxied ? ": not a trusted proxy (--proxy-from)" : " (--allow/--deny)");
    close(fd);
    return true;
}

bool ek_admit_conn(struct ek_server *srv, struct ek_acceptor *acc, int fd)
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

void ek_admit_refuse(struct ek_server *srv, struct ek_acceptor *acc, int fd,
                     const char *why)
{
    ek_stat_add(&srv->stats->refused_fd, 1);
    ek_log_limited(&acc->refused_log, EK_LOG_WARN, "refused a connection: %s",
                   why);
    close(fd);
}

void ek_admit_conn_done(struct ek_server *srv, int err)
{
    atomic_fetch_sub_explicit(&srv->stats->active, 1, memory_order_relaxed);
    if (err < 0)
        ek_stat_add(&srv->stats->conn_errors, 1);
    if (ek_log_enabled(EK_LOG_DEBUG))
        ek_log(EK_LOG_DEBUG, "connection closed%s%s", err < 0 ? ": " : "",
               err < 0 ? strerror(-err) : "");
}

bool ek_admit_accept_failed(struct ek_server *srv, struct ek_acceptor *acc,
                            int err)
{
    ek_stat_add(&srv->stats->accept_errors, 1);
    if (!ek_admit_error_persists(err))
        return false;
    switch (err) {
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

/* The limiter for callers without an acceptor (the blocking models' many
 * threads): one per process, under a lock. */
static struct ek_ratelimit shared_proxy_log, shared_acl_log;
static pthread_mutex_t shared_log_lock = PTHREAD_MUTEX_INITIALIZER;

void ek_admit_proxy_failed(struct ek_server *srv, struct ek_acceptor *acc,
                           int fd, const char *why)
{
    char name[EK_ADDRSTR_MAX];
    ek_stat_add(&srv->stats->refused_proxy, 1);
    if (!ek_log_enabled(EK_LOG_WARN))
        return;
    ek_net_peer_name(fd, name, sizeof(name));
    if (acc == NULL)
        pthread_mutex_lock(&shared_log_lock);
    ek_log_limited(acc ? &acc->proxy_log : &shared_proxy_log, EK_LOG_WARN,
                   "refused a connection from %s: %s (--proxy-protocol)", name,
                   why);
    if (acc == NULL)
        pthread_mutex_unlock(&shared_log_lock);
}

bool ek_admit_proxy(struct ek_server *srv, struct ek_acceptor *acc, int fd,
                    const struct ek_proxy_result *r)
{
    char client[EK_ADDRSTR_MAX] = "", via[EK_ADDRSTR_MAX];
    struct ek_sockaddr peer = {.len = sizeof(peer.ss)};
    const struct sockaddr *who = (const struct sockaddr *)&r->src;

    /* No IP address to judge (LOCAL, UNKNOWN, a unix source): the rules
     * judge the proxy itself. */
    bool no_ip = r->local ||
                 (r->src.ss_family != AF_INET && r->src.ss_family != AF_INET6);
    if (no_ip) {
        if (getpeername(fd, (struct sockaddr *)&peer.ss, &peer.len) < 0)
            return false; /* gone already */
        who = (const struct sockaddr *)&peer.ss;
    }
    bool ok = ek_acl_permits(srv->cfg->acl, who);
    if (ok && !ek_log_enabled(EK_LOG_DEBUG))
        return true;
    ek_net_peer_name(fd, via, sizeof(via));
    if (r->local)
        snprintf(client, sizeof(client), "%s", via);
    else
        ek_addr_format((const struct sockaddr *)&r->src, r->addr_len, client,
                       sizeof(client));
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

const struct ek_proxy_verdicts ek_admit_proxy_verdicts = {
    .admit = ek_admit_proxy,
    .failed = ek_admit_proxy_failed,
};
