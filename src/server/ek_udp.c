#include "ek_udp.h"
#include "ek_log.h"
#include "ek_net.h"
#include "ek_platform.h"
#include "ek_server.h"
#include "ek_signal.h"
#include "ek_util.h"
#include "ek_listen.h"
#include "ek_acl.h"

#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- what is ours: addresses of the local interfaces ------------------ */

#define EK_UDP_LOCALS 64

struct addr_key {
    int family; /* AF_INET or AF_INET6 */
    uint8_t a[16];
};

static struct addr_key locals[EK_UDP_LOCALS], broadcasts[EK_UDP_LOCALS];
static size_t nlocals, nbroadcasts;
static pthread_once_t locals_once = PTHREAD_ONCE_INIT;
static pthread_once_t source_key_once = PTHREAD_ONCE_INIT;

/* The address of sa as a key; IPv4-mapped IPv6 becomes IPv4. False for
 * other families. */
static bool key_of(const struct sockaddr *sa, struct addr_key *k)
{
    memset(k, 0, sizeof(*k));
    if (sa->sa_family == AF_INET) {
        k->family = AF_INET;
        memcpy(k->a, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a6 =
            &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a6)) {
            k->family = AF_INET;
            memcpy(k->a, a6->s6_addr + 12, 4);
        } else {
            k->family = AF_INET6;
            memcpy(k->a, a6->s6_addr, 16);
        }
        return true;
    }
    return false;
}

static bool key_eq(const struct addr_key *x, const struct addr_key *y)
{
    return x->family == y->family && memcmp(x->a, y->a, 16) == 0;
}

static void load_locals(void)
{
    struct ifaddrs *ifs;
    if (getifaddrs(&ifs) < 0) {
        ek_log(EK_LOG_WARN,
               "getifaddrs: %s; UDP checks only the bound "
               "address for datagrams claiming to be ours",
               strerror(errno));
        return;
    }
    for (struct ifaddrs *i = ifs; i != NULL; i = i->ifa_next) {
        if (i->ifa_addr != NULL && nlocals < EK_UDP_LOCALS &&
            key_of(i->ifa_addr, &locals[nlocals]))
            nlocals++;
        if (i->ifa_addr != NULL && i->ifa_addr->sa_family == AF_INET &&
            (i->ifa_flags & IFF_BROADCAST) && i->ifa_broadaddr != NULL &&
            nbroadcasts < EK_UDP_LOCALS &&
            key_of(i->ifa_broadaddr, &broadcasts[nbroadcasts]))
            nbroadcasts++;
    }
    freeifaddrs(ifs);
}

static bool in_list(const struct addr_key *k, const struct addr_key *list,
                    size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (key_eq(k, &list[i]))
            return true;
    return false;
}

static uint16_t port_of(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    if (sa->sa_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    return 0;
}

/* Unspecified, broadcast or multicast: nobody a datagram may answer. */
static bool not_a_sender(const struct addr_key *k)
{
    static const uint8_t zero[16];
    if (k->family == AF_INET) {
        uint32_t a = (uint32_t)k->a[0] << 24 | (uint32_t)k->a[1] << 16 |
                     (uint32_t)k->a[2] << 8 | k->a[3];
        return a == 0 || a == 0xffffffffu || (a >> 28) == 0xe ||
               in_list(k, broadcasts, nbroadcasts);
    }
    return memcmp(k->a, zero, 16) == 0 || k->a[0] == 0xff;
}

/* ---- rate limits ------------------------------------------------------ */

struct ek_udp_bucket {
    double tokens;
    int64_t last_ns; /* 0: never used */
};

/* What a bucket of `rate` tokens a second holds at most: a second's
 * worth, and at least one token, so that a rate below one a second (a
 * --udp-rate-total split over more loops than it has tokens) still
 * answers, at that rate. */
static double bucket_size(double rate)
{
    return rate > 1.0 ? rate : 1.0;
}

/* Token bucket: `rate` tokens per second, at most bucket_size(rate). */
static bool take_token(double *tokens, int64_t *last_ns, double rate,
                       int64_t now)
{
    if (now > *last_ns) /* time only moves on; unsigned: no overflow */
        *tokens += (double)((uint64_t)now - (uint64_t)*last_ns) * rate / 1e9;
    if (*tokens > bucket_size(rate))
        *tokens = bucket_size(rate);
    if (now > *last_ns)
        *last_ns = now;
    if (*tokens < 1.0)
        return false;
    *tokens -= 1.0;
    return true;
}

/* The per-process key of the sources' hash: random, so that a peer
 * cannot choose addresses that share a slot. */
static uint64_t source_key[2];

static void load_source_key(void)
{
    int err = ek_random_bytes(source_key, sizeof(source_key));
    if (err < 0) { /* weaker, but not constant */
        ek_log(EK_LOG_WARN,
               "random bytes: %s; the UDP rate table's hash key comes from "
               "the clock",
               strerror(-err));
        source_key[0] = (uint64_t)ek_now_ns() ^ (uint64_t)getpid() << 32;
        source_key[1] = (uint64_t)time(NULL) * 0x9e3779b97f4a7c15ULL;
    }
}

/* A source's bucket is its slot's, whoever used the slot before: a source
 * new to a slot gets the tokens the slot has left, never a full bucket
 * (only an unused slot starts full), so that alternating with an address
 * that shares its slot cannot refill a source's bucket. Sources that share
 * a slot share its rate: 1 pair in 4096, and not one a peer can choose
 * (the hash is keyed). */
static bool source_allowed(struct ek_udp *u, const struct addr_key *k,
                           double rate, int64_t now)
{
    uint64_t h = ek_siphash(k, sizeof(*k), source_key);
    struct ek_udp_bucket *b = &u->buckets[h & u->source_mask];
    if (b->last_ns == 0) {
        b->tokens = bucket_size(rate);
        b->last_ns = now;
    }
    return take_token(&b->tokens, &b->last_ns, rate, now);
}

/* ---- the echo --------------------------------------------------------- */

int ek_udp_init(struct ek_udp *u, struct ek_server *srv,
                struct ek_counters *counters, unsigned share)
{
    memset(u, 0, sizeof(*u));
    pthread_once(&locals_once, load_locals);
    pthread_once(&source_key_once, load_source_key);
    u->source_mask = EK_UDP_SOURCES - 1;
    u->srv = srv;
    u->counters = counters;
    u->share = share ? share : 1;
    u->bufs = malloc((size_t)EK_UDP_BATCH * EK_UDP_BUF);
    if (u->bufs == NULL)
        return -ENOMEM;
    if (srv->cfg->udp.rate > 0) {
        u->buckets = calloc(EK_UDP_SOURCES, sizeof(*u->buckets));
        if (u->buckets == NULL)
            return -ENOMEM;
    }
    u->total_ns = ek_now_ns();
    u->total_tokens = bucket_size((double)srv->cfg->udp.total_rate / u->share);
    return 0;
}

int ek_udp_local_addrs(const int *fds, size_t n, struct ek_sockaddr **out)
{
    struct ek_sockaddr *a = calloc(n ? n : 1, sizeof(*a));
    if (a == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int err = ek_net_local_addr(fds[i], &a[i]);
        if (err < 0) {
            free(a);
            return err;
        }
    }
    *out = a;
    return 0;
}

void ek_udp_free(struct ek_udp *u)
{
    free(u->bufs);
    free(u->buckets);
    u->bufs = NULL;
    u->buckets = NULL;
}

static void drop(struct ek_udp *u, enum ek_udp_drop why)
{
    ek_stat_add(&u->srv->stats->udp_drops[why], 1);
}

bool ek_udp_may_answer(struct ek_udp *u, const struct sockaddr *from,
                       const struct ek_sockaddr *local, int msg_flags,
                       int64_t now)
{
    const struct ek_udp_limits *lim = &u->srv->cfg->udp;
    struct addr_key k, ours;
    if (msg_flags & MSG_TRUNC) {
        drop(u, EK_UDP_DROP_TRUNCATED);
        return false;
    }
    if (!key_of(from, &k) || not_a_sender(&k)) {
        drop(u, EK_UDP_DROP_BROADCAST);
        return false;
    }
    uint16_t port = port_of(from);
    if (port < 1024 && !lim->low_ports) {
        drop(u, EK_UDP_DROP_LOW_PORT);
        return false;
    }
    if (port == port_of((const struct sockaddr *)&local->ss) &&
        ((key_of((const struct sockaddr *)&local->ss, &ours) &&
          key_eq(&k, &ours)) ||
         in_list(&k, locals, nlocals))) {
        drop(u, EK_UDP_DROP_SELF);
        return false;
    }
    if (!ek_acl_permits(u->srv->cfg->acl, from)) {
        drop(u, EK_UDP_DROP_ACL);
        return false;
    }
    /* The source's own limit first: a source over it must not use up the
     * budget of all the others. */
    if (lim->rate > 0 && !source_allowed(u, &k, (double)lim->rate, now)) {
        drop(u, EK_UDP_DROP_RATE);
        return false;
    }
    if (lim->total_rate > 0 &&
        !take_token(&u->total_tokens, &u->total_ns,
                    (double)lim->total_rate / u->share, now)) {
        drop(u, EK_UDP_DROP_RATE_TOTAL);
        return false;
    }
    return true;
}

#define EK_UDP_CMSG 64 /* room for one pktinfo, either family */

/* Sends the n prepared answers; a datagram the socket refuses is dropped
 * (counted) and the rest still go. */
static void send_batch(struct ek_udp *u, int fd, ek_mmsghdr *out, unsigned n)
{
    unsigned done = 0;
    while (done < n) {
        int k = ek_sendmmsg(fd, out + done, n - done, MSG_DONTWAIT);
        if (k > 0) {
            for (unsigned i = done; i < done + (unsigned)k; i++) {
                ek_count(&u->counters->dgrams_out, 1);
                ek_count(&u->counters->bytes_out, out[i].msg_len);
            }
            done += (unsigned)k;
            continue;
        }
        if (k == -EAGAIN || k == -EWOULDBLOCK || k == -ENOBUFS) {
            for (; done < n; done++) /* the socket is full: UDP drops */
                drop(u, EK_UDP_DROP_SEND);
            return;
        }
        drop(u, EK_UDP_DROP_SEND); /* this one failed (EPERM, ...) */
        done++;
    }
}

int ek_udp_service(struct ek_udp *u, int fd, const struct ek_sockaddr *local)
{
    ek_mmsghdr in[EK_UDP_BATCH], out[EK_UDP_BATCH];
    struct iovec iov[EK_UDP_BATCH], oiov[EK_UDP_BATCH];
    struct sockaddr_storage from[EK_UDP_BATCH];
    char cin[EK_UDP_BATCH][EK_UDP_CMSG], cout[EK_UDP_BATCH][EK_UDP_CMSG];

    for (unsigned i = 0; i < EK_UDP_BATCH; i++) {
        iov[i] = (struct iovec){u->bufs + (size_t)i * EK_UDP_BUF, EK_UDP_BUF};
        in[i] = (ek_mmsghdr){.msg_hdr = {.msg_name = &from[i],
                                         .msg_namelen = sizeof(from[i]),
                                         .msg_iov = &iov[i],
                                         .msg_iovlen = 1,
                                         .msg_control = cin[i],
                                         .msg_controllen = sizeof(cin[i])}};
    }
    int n = ek_recvmmsg(fd, in, EK_UDP_BATCH, MSG_DONTWAIT);
    if (n < 0)
        return n == -EAGAIN || n == -EWOULDBLOCK ? 0 : n;

    int64_t now = ek_now_ns();
    unsigned nout = 0;
    for (int i = 0; i < n; i++) {
        struct msghdr *m = &in[i].msg_hdr;
        ek_count(&u->counters->dgrams_in, 1);
        ek_count(&u->counters->bytes_in, in[i].msg_len);
        if (!ek_udp_may_answer(u, (struct sockaddr *)&from[i], local,
                               m->msg_flags, now))
            continue;
        /* Exactly what came, to whom it came from, and from the address
         * it was sent to. */
        oiov[nout] = (struct iovec){iov[i].iov_base, in[i].msg_len};
        size_t clen = ek_dst_addr_reply(m, cout[nout], sizeof(cout[nout]));
        out[nout] =
            (ek_mmsghdr){.msg_hdr = {.msg_name = &from[i],
                                     .msg_namelen = m->msg_namelen,
                                     .msg_iov = &oiov[nout],
                                     .msg_iovlen = 1,
                                     .msg_control = clen ? cout[nout] : NULL,
                                     .msg_controllen = clen}};
        nout++;
    }
    if (nout > 0)
        send_batch(u, fd, out, nout);
    return n;
}

/* ---- a thread for the models without a loop ---------------------------- */

struct ek_udp_thread {
    struct ek_server *srv;
    struct ek_udp udp;
    int stop[2];
    pthread_t tid;
};

static void *udp_main(void *arg)
{
    struct ek_udp_thread *t = arg;
    struct ek_server *srv = t->srv;
    struct pollfd p[1 + 64];
    const struct ek_listener *which[64];
    size_t n = 0;

    p[n++] = (struct pollfd){.fd = t->stop[0], .events = POLLIN};
    for (size_t i = 0; i < srv->nlisteners && n < 65; i++)
        if (srv->listeners[i].udp) {
            which[n - 1] = &srv->listeners[i];
            p[n++] =
                (struct pollfd){.fd = srv->listeners[i].fd, .events = POLLIN};
        }
    for (;;) {
        int rc = poll(p, n, -1);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0 || p[0].revents)
            break;
        for (size_t i = 1; i < n; i++) {
            int err = p[i].revents ? ek_udp_service(&t->udp, p[i].fd,
                                                    &which[i - 1]->addr)
                                   : 0;
            if (err < 0)
                ek_log(EK_LOG_ERROR, "udp %s: %s", which[i - 1]->name,
                       strerror(-err));
        }
    }
    return NULL;
}

int ek_udp_thread_start(struct ek_server *srv, struct ek_udp_thread **out)
{
    *out = NULL;
    bool any = false;
    for (size_t i = 0; i < srv->nlisteners; i++)
        any |= srv->listeners[i].udp;
    if (!any)
        return 0;
    struct ek_udp_thread *t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    t->srv = srv;
    t->stop[0] = t->stop[1] = -1;
    int err = ek_udp_init(&t->udp, srv, &srv->stats->loop[0], 1);
    if (err == 0)
        err = ek_pipe(t->stop, O_CLOEXEC);
    if (err == 0) {
        sigset_t saved;
        ek_signal_block_all(&saved);
        err = -pthread_create(&t->tid, NULL, udp_main, t);
        ek_signal_restore(&saved);
    }
    if (err < 0) {
        for (int i = 0; i < 2; i++)
            if (t->stop[i] >= 0)
                close(t->stop[i]);
        ek_udp_free(&t->udp);
        free(t);
        return err;
    }
    *out = t;
    return 0;
}

void ek_udp_thread_stop(struct ek_udp_thread *t)
{
    if (t == NULL)
        return;
    char byte = 0;
    ssize_t w;
    do
        w = write(t->stop[1], &byte, 1);
    while (w < 0 && errno == EINTR);
    pthread_join(t->tid, NULL);
    close(t->stop[0]);
    close(t->stop[1]);
    ek_udp_free(&t->udp);
    free(t);
}
