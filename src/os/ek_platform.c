/* macOS declares IPV6_RECVPKTINFO and IPV6_PKTINFO (RFC 3542) only when
 * asked to. */
#ifdef __APPLE__
#define __APPLE_USE_RFC_3542 1
#endif

#include "ek_platform.h"
#include "ek_util.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef EK_HAVE_SYS_CLOSE_RANGE
#include <sys/syscall.h>
#endif

#ifdef EK_HAVE_EPOLL
#include <sys/epoll.h>
#endif
#ifdef EK_HAVE_TIMERSLACK
#include <sys/prctl.h>
#endif
#ifdef EK_HAVE_TIMERFD
#include <sys/timerfd.h>
#endif
#ifdef EK_HAVE_TIMESTAMPING
#include <linux/errqueue.h>
#include <linux/net_tstamp.h>
#endif

/* ---- descriptors -------------------------------------------------------- */

/* A socket that must not raise SIGPIPE, where send has no MSG_NOSIGNAL. */
static int no_sigpipe(int fd)
{
#if !defined(MSG_NOSIGNAL) && defined(SO_NOSIGPIPE)
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof(one)) < 0)
        return -errno;
#else
    (void)fd;
#endif
    return 0;
}

#if !defined(EK_HAVE_SOCK_FLAGS) || !defined(EK_HAVE_ACCEPT4) ||               \
    !defined(EK_HAVE_PIPE2)
/* The fallback: flags set on a descriptor made without them. O_NONBLOCK
 * ends up exactly as asked, since BSD's accept inherits it. */
static int set_fd_flags(int fd, int flags)
{
    if ((flags & O_CLOEXEC) && fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return -errno;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    int want = (flags & O_NONBLOCK) ? fl | O_NONBLOCK : fl & ~O_NONBLOCK;
    if (want != fl && fcntl(fd, F_SETFL, want) < 0)
        return -errno;
    return 0;
}
#endif

/* Closes fd and returns err (< 0), or returns fd. */
static int fd_or_close(int fd, int err)
{
    if (err == 0)
        return fd;
    close(fd);
    return err;
}

/* SOCK_CLOEXEC and SOCK_NONBLOCK for flags, where socket() takes them. */
static int sock_flags(int flags)
{
#ifdef EK_HAVE_SOCK_FLAGS
    return ((flags & O_CLOEXEC) ? SOCK_CLOEXEC : 0) |
           ((flags & O_NONBLOCK) ? SOCK_NONBLOCK : 0);
#else
    (void)flags;
    return 0;
#endif
}

/* What socket() and socketpair() could not do themselves. */
static int finish_socket(int fd, int flags)
{
#ifndef EK_HAVE_SOCK_FLAGS
    int err = set_fd_flags(fd, flags);
    if (err < 0)
        return err;
#else
    (void)flags;
#endif
    return no_sigpipe(fd);
}

int ek_socket(int family, int type, int flags)
{
    int fd = socket(family, type | sock_flags(flags), 0);
    if (fd < 0)
        return -errno;
    return fd_or_close(fd, finish_socket(fd, flags));
}

int ek_socketpair(int family, int type, int flags, int sv[2])
{
    if (socketpair(family, type | sock_flags(flags), 0, sv) < 0)
        return -errno;
    int err = finish_socket(sv[0], flags);
    if (err == 0)
        err = finish_socket(sv[1], flags);
    if (err < 0) {
        close(sv[0]);
        close(sv[1]);
        sv[0] = sv[1] = -1;
    }
    return err;
}

int ek_accept(int listen_fd, int flags)
{
    int fd;
#ifdef EK_HAVE_ACCEPT4
    do
        fd = accept4(listen_fd, NULL, NULL, sock_flags(flags));
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -errno;
    return fd_or_close(fd, no_sigpipe(fd));
#else
    do
        fd = accept(listen_fd, NULL, NULL);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -errno;
    int err = set_fd_flags(fd, flags);
    if (err == 0)
        err = no_sigpipe(fd);
    return fd_or_close(fd, err);
#endif
}

int ek_peer_uid(int fd, uid_t *uid)
{
#if defined(__linux__) && defined(SO_PEERCRED) /* OpenBSD's differs */
    struct ucred cred;
    socklen_t len = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
        return -errno;
    *uid = cred.uid;
    return 0;
#elif defined(__APPLE__) || defined(__FreeBSD__) || defined(__OpenBSD__) ||    \
    defined(__NetBSD__)
    gid_t gid;
    return getpeereid(fd, uid, &gid) < 0 ? -errno : 0;
#else
    (void)fd;
    (void)uid;
    return -ENOSYS;
#endif
}

/* Closes lo..hi (inclusive) in one call: close_range(2), through the
 * raw system call where libc has no wrapper (glibc before 2.34). Returns
 * false where the kernel or a seccomp profile refuses it. */
static bool close_range_call(unsigned lo, unsigned hi)
{
#if defined(EK_HAVE_CLOSE_RANGE)
    return close_range(lo, hi, 0) == 0;
#elif defined(EK_HAVE_SYS_CLOSE_RANGE)
    return syscall(SYS_close_range, lo, hi, 0) == 0;
#else
    (void)lo;
    (void)hi;
    return false;
#endif
}

static bool kept(int fd, const int *keep, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (keep[i] == fd)
            return true;
    return false;
}

/* Without close_range: the descriptors the process has, from its fd
 * directory (one close per open descriptor, whatever the limit); false
 * where there is none to read. */
static bool close_listed(const int *keep, size_t n)
{
#if defined(__linux__)
    DIR *d = opendir("/proc/self/fd");
#elif defined(__APPLE__)
    DIR *d = opendir("/dev/fd"); /* the process's own, as on Linux */
#else
    /* The BSDs' /dev/fd lists what fdescfs(5) shows, or fixed nodes 0-2
     * (0-63) without it, not necessarily the descriptors that are open. */
    DIR *d = NULL;
#endif
    if (d == NULL)
        return false;
    int self = dirfd(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);
        if (*end == '\0' && end != e->d_name && fd > 2 && fd != self &&
            fd <= INT_MAX && !kept((int)fd, keep, n))
            (void)close((int)fd); /* Linux lists the directory afresh */
    }
    closedir(d);
    return true;
}

void ek_close_all_but(const int *keep, size_t n)
{
    unsigned lo = 3;
    for (;;) {
        int next = -1; /* the lowest kept descriptor from lo up */
        for (size_t i = 0; i < n; i++)
            if (keep[i] >= (int)lo && (next < 0 || keep[i] < next))
                next = keep[i];
        unsigned hi = next < 0 ? ~0U : (unsigned)next - 1;
        if (lo <= hi && !close_range_call(lo, hi))
            break; /* no close_range: the fallbacks below */
        if (next < 0)
            return;
        lo = (unsigned)next + 1;
    }
    if (close_listed(keep, n))
        return;
    /* Last resort: every number up to the descriptor limit. */
    long max = sysconf(_SC_OPEN_MAX);
    int limit = max > 0 && max < INT_MAX ? (int)max : 1024;
    for (int fd = 3; fd < limit; fd++)
        if (!kept(fd, keep, n))
            (void)close(fd);
}

int ek_pipe(int fds[2], int flags)
{
#ifdef EK_HAVE_PIPE2
    return pipe2(fds, flags) < 0 ? -errno : 0;
#else
    if (pipe(fds) < 0)
        return -errno;
    int err = set_fd_flags(fds[0], flags);
    if (err == 0)
        err = set_fd_flags(fds[1], flags);
    if (err < 0) {
        close(fds[0]);
        close(fds[1]);
        fds[0] = fds[1] = -1;
    }
    return err;
#endif
}

/* ---- zero-copy echo ----------------------------------------------------- */

ssize_t ek_splice(int fd_in, int fd_out, size_t len)
{
#ifdef EK_HAVE_SPLICE
    ssize_t n;
    do
        n = splice(fd_in, NULL, fd_out, NULL, len,
                   SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
#else
    (void)fd_in;
    (void)fd_out;
    (void)len;
    return -ENOSYS;
#endif
}

/* ---- datagrams ---------------------------------------------------------- */

#ifndef EK_HAVE_MMSG
/* recvmmsg and sendmmsg without a timeout are this loop in the kernel:
 * each datagram its own msghdr, the lengths (and msg_flags) updated, the
 * batch ended by the first error (EAGAIN: nothing more). */
static int each_msg(int fd, ek_mmsghdr *v, unsigned n, int flags, bool send)
{
    unsigned i;
    for (i = 0; i < n; i++) {
        ssize_t k;
        do
            k = send ? sendmsg(fd, &v[i].msg_hdr, flags)
                     : recvmsg(fd, &v[i].msg_hdr, flags);
        while (k < 0 && errno == EINTR);
        if (k < 0)
            break;
        v[i].msg_len = (unsigned)k;
    }
    return i == 0 && n > 0 ? -errno : (int)i;
}
#endif

int ek_recvmmsg(int fd, ek_mmsghdr *v, unsigned n, int flags)
{
#ifdef EK_HAVE_MMSG
    int k;
    do
        k = recvmmsg(fd, v, n, flags, NULL);
    while (k < 0 && errno == EINTR);
    return k < 0 ? -errno : k;
#else
    return each_msg(fd, v, n, flags, false);
#endif
}

int ek_sendmmsg(int fd, ek_mmsghdr *v, unsigned n, int flags)
{
#ifdef EK_HAVE_MMSG
    int k;
    do
        k = sendmmsg(fd, v, n, flags);
    while (k < 0 && errno == EINTR);
    return k < 0 ? -errno : k;
#else
    return each_msg(fd, v, n, flags, true);
#endif
}

int ek_dst_addr_enable(int fd, int family)
{
    int one = 1;
    int rc;
    if (family == AF_INET) {
#ifdef IP_PKTINFO
        rc = setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
#else
        return 0; /* cannot tell: see ek_platform.h */
#endif
    } else if (family == AF_INET6) {
        rc = setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one));
    } else {
        return -EAFNOSUPPORT;
    }
    return rc < 0 ? -errno : 0;
}

size_t ek_dst_addr_reply(const struct msghdr *in, void *out, size_t size)
{
    /* Zeroed: CMSG_SPACE pads the data, and the padding goes to the
     * kernel too (valgrind caught it uninitialised). */
    memset(out, 0, size);
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)in); c != NULL;
         c = CMSG_NXTHDR((struct msghdr *)in, c)) {
#ifdef IP_PKTINFO
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO &&
            size >= CMSG_SPACE(sizeof(struct in_pktinfo))) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            pi.ipi_spec_dst = pi.ipi_addr;
            pi.ipi_ifindex = 0;
            struct cmsghdr *o = out;
            o->cmsg_level = IPPROTO_IP;
            o->cmsg_type = IP_PKTINFO;
            o->cmsg_len = CMSG_LEN(sizeof(pi));
            memcpy(CMSG_DATA(o), &pi, sizeof(pi));
            return CMSG_SPACE(sizeof(pi));
        }
#endif
        if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO &&
            size >= CMSG_SPACE(sizeof(struct in6_pktinfo))) {
            struct cmsghdr *o = out;
            o->cmsg_level = IPPROTO_IPV6;
            o->cmsg_type = IPV6_PKTINFO;
            o->cmsg_len = CMSG_LEN(sizeof(struct in6_pktinfo));
            memcpy(CMSG_DATA(o), CMSG_DATA(c), sizeof(struct in6_pktinfo));
            return CMSG_SPACE(sizeof(struct in6_pktinfo));
        }
    }
    return 0;
}

/* ---- listeners ---------------------------------------------------------- */

int ek_set_reuseport(int fd)
{
    int one = 1;
#ifdef SO_REUSEPORT_LB
    int name = SO_REUSEPORT_LB;
#else
    int name = SO_REUSEPORT;
#endif
    return setsockopt(fd, SOL_SOCKET, name, &one, sizeof(one)) < 0 ? -errno : 0;
}

/* ---- time --------------------------------------------------------------- */

int ek_sleep_until_ns(int64_t t)
{
#ifdef EK_HAVE_CLOCK_NANOSLEEP
    struct timespec ts = {t / 1000000000, t % 1000000000};
    int rc = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
    return -rc; /* it returns the error number itself */
#else
    int64_t left = t - ek_now_ns();
    if (left <= 0)
        return 0;
    struct timespec ts = {left / 1000000000, left % 1000000000};
    return nanosleep(&ts, NULL) < 0 ? -errno : 0;
#endif
}

void ek_timer_slack_min(void)
{
#ifdef EK_HAVE_TIMERSLACK
    (void)prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
#endif
}

void ek_rcvbuf_ask(int fd, int bytes)
{
#ifdef SO_RCVBUFFORCE
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) == 0)
        return;
#endif
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
}

int64_t ek_socket_drops(int fd)
{
#if defined(SO_MEMINFO) && !defined(EK_PORTABLE_BUILD)
    /* struct sock's meminfo: SK_MEMINFO_DROPS is the ninth of them
     * (linux/sock_diag.h), unchanged since it came (Linux 4.12). */
    uint32_t info[16] = {0};
    socklen_t len = sizeof(info);
    if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, info, &len) < 0)
        return -errno;
    return len >= 9 * sizeof(uint32_t) ? (int64_t)info[8] : -ENOTSUP;
#else
    (void)fd;
    return -ENOTSUP;
#endif
}

/* ---- kernel timestamps -------------------------------------------------- */

const char *ek_tstamp_missing(void)
{
#ifdef EK_HAVE_TIMESTAMPING
    return NULL;
#elif defined(__linux__) && defined(EK_PORTABLE_BUILD)
    return "not available in this build: configured with -DEK_LINUX_EXT=OFF "
           "(portable calls only)";
#else
    return "not available here: SO_TIMESTAMPING is Linux's";
#endif
}

#ifdef EK_HAVE_TIMESTAMPING

/* The stamp a SCM_TIMESTAMPING message carries: the hardware one when
 * there is one (ts[2]), else the software one (ts[0]); 0 if neither. */
static int64_t stamp_of(const struct cmsghdr *cm)
{
    struct timespec ts[3];
    memcpy(ts, CMSG_DATA(cm), sizeof(ts));
    bool hw = ts[2].tv_sec != 0 || ts[2].tv_nsec != 0;
    const struct timespec *t = hw ? &ts[2] : &ts[0];
    int64_t ns = (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
    if (ns == 0)
        return 0;
    return (ns & ~(int64_t)EK_TSTAMP_HW) | (hw ? EK_TSTAMP_HW : 0);
}

int ek_tstamp_enable(int fd)
{
    /* OPT_ID keys the send stamps; OPT_TSONLY leaves the packet itself
     * off the error queue (the key says which it was). */
    unsigned flags =
        SOF_TIMESTAMPING_TX_SOFTWARE | SOF_TIMESTAMPING_RX_SOFTWARE |
        SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_TX_HARDWARE |
        SOF_TIMESTAMPING_RX_HARDWARE | SOF_TIMESTAMPING_RAW_HARDWARE |
        SOF_TIMESTAMPING_OPT_ID | SOF_TIMESTAMPING_OPT_TSONLY;
    return setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPING, &flags, sizeof(flags)) <
                   0
               ? -errno
               : 0;
}

ssize_t ek_tstamp_recv(int fd, void *buf, size_t len, int flags, int64_t *rx)
{
    union {
        char buf[CMSG_SPACE(3 * sizeof(struct timespec))];
        struct cmsghdr align;
    } control;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr msg = {.msg_iov = &iov,
                         .msg_iovlen = 1,
                         .msg_control = control.buf,
                         .msg_controllen = sizeof(control.buf)};
    ssize_t n;
    do
        n = recvmsg(fd, &msg, MSG_DONTWAIT | flags);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    *rx = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm != NULL;
         cm = CMSG_NXTHDR(&msg, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPING)
            *rx = stamp_of(cm);
    return n;
}

int ek_tstamp_next_tx(int fd, uint32_t *key, int64_t *tx)
{
    union {
        char buf[CMSG_SPACE(3 * sizeof(struct timespec)) +
                 CMSG_SPACE(sizeof(struct sock_extended_err) +
                            sizeof(struct sockaddr_in6))];
        struct cmsghdr align;
    } control;
    for (;;) {
        struct msghdr msg = {.msg_control = control.buf,
                             .msg_controllen = sizeof(control.buf)};
        ssize_t n;
        do
            n = recvmsg(fd, &msg, MSG_ERRQUEUE | MSG_DONTWAIT);
        while (n < 0 && errno == EINTR);
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
        int64_t stamp = 0;
        const struct sock_extended_err *ee = NULL;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm != NULL;
             cm = CMSG_NXTHDR(&msg, cm)) {
            if (cm->cmsg_level == SOL_SOCKET &&
                cm->cmsg_type == SCM_TIMESTAMPING)
                stamp = stamp_of(cm);
            else if ((cm->cmsg_level == SOL_IP &&
                      cm->cmsg_type == IP_RECVERR) ||
                     (cm->cmsg_level == SOL_IPV6 &&
                      cm->cmsg_type == IPV6_RECVERR))
                ee = (const struct sock_extended_err *)(const void *)CMSG_DATA(
                    cm);
        }
        /* Only the send stamps asked for; anything else queued there (an
         * ICMP error, say) is not ours to report: the next. */
        if (ee != NULL && ee->ee_errno == ENOMSG &&
            ee->ee_origin == SO_EE_ORIGIN_TIMESTAMPING &&
            ee->ee_info == SCM_TSTAMP_SND && stamp != 0) {
            *key = ee->ee_data;
            *tx = stamp;
            return 1;
        }
    }
}

#else

int ek_tstamp_enable(int fd)
{
    (void)fd;
    return -ENOTSUP;
}

ssize_t ek_tstamp_recv(int fd, void *buf, size_t len, int flags, int64_t *rx)
{
    (void)fd;
    (void)buf;
    (void)len;
    (void)flags;
    *rx = 0;
    return -ENOTSUP;
}

int ek_tstamp_next_tx(int fd, uint32_t *key, int64_t *tx)
{
    (void)fd;
    (void)key;
    (void)tx;
    return -ENOTSUP;
}

#endif

int ek_ticker_open(int64_t first_ns, int64_t period_ns)
{
#ifdef EK_HAVE_TIMERFD
    int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct itimerspec its = {
        .it_interval = {period_ns / 1000000000, period_ns % 1000000000},
        .it_value = {first_ns / 1000000000, first_ns % 1000000000}};
    if (timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
#else
    (void)first_ns;
    (void)period_ns;
    return -ENOSYS;
#endif
}

int64_t ek_ticker_read(int fd)
{
    uint64_t n;
    ssize_t k;
    do
        k = read(fd, &n, sizeof(n));
    while (k < 0 && errno == EINTR);
    if (k < 0)
        return errno == EAGAIN ? 0 : -errno;
    return k == (ssize_t)sizeof(n) ? (int64_t)n : -EIO;
}

int ek_random_bytes(void *buf, size_t n)
{
    uint8_t *p = buf;
#ifdef EK_HAVE_GETENTROPY
    for (size_t k = 0; k < n; k += 256) /* its most at a time */
        if (getentropy(p + k, n - k < 256 ? n - k : 256) < 0)
            return -errno;
    return 0;
#else
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int err = r < 0 ? -errno : -EIO;
            close(fd);
            return err;
        }
        got += (size_t)r;
    }
    close(fd);
    return 0;
#endif
}

int ek_poll_ns(struct pollfd *fds, nfds_t n, int64_t timeout_ns)
{
#ifdef EK_HAVE_PPOLL
    struct timespec ts = {timeout_ns / 1000000000, timeout_ns % 1000000000};
    return ppoll(fds, n, timeout_ns < 0 ? NULL : &ts, NULL);
#else
    int64_t ms = timeout_ns < 0 ? -1 : (timeout_ns + 999999) / 1000000;
    return poll(fds, n, ms > INT_MAX ? INT_MAX : (int)ms);
#endif
}

/* ---- readiness for the bench client ------------------------------------- */

#ifdef EK_HAVE_EPOLL

/* Events taken from the kernel per wait; more wait for the next one. */
#define EK_POLLER_BATCH 256

struct ek_poller {
    int epfd;
    struct epoll_event out[EK_POLLER_BATCH];
};

int ek_poller_open(struct ek_poller **out, uint32_t capacity)
{
    (void)capacity;
    struct ek_poller *p = malloc(sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p->epfd < 0) {
        int err = -errno;
        free(p);
        return err;
    }
    *out = p;
    return 0;
}

void ek_poller_close(struct ek_poller *p)
{
    if (p == NULL)
        return;
    close(p->epfd);
    free(p);
}

static int epoll_change(struct ek_poller *p, int op, int fd, uint32_t slot,
                        unsigned events)
{
    struct epoll_event ev = {.events = ((events & POLLIN) ? EPOLLIN : 0u) |
                                       ((events & POLLOUT) ? EPOLLOUT : 0u),
                             .data.u32 = slot};
    return epoll_ctl(p->epfd, op, fd, &ev) < 0 ? -errno : 0;
}

int ek_poller_add(struct ek_poller *p, int fd, uint32_t slot, unsigned events)
{
    return epoll_change(p, EPOLL_CTL_ADD, fd, slot, events);
}

int ek_poller_modify(struct ek_poller *p, int fd, uint32_t slot,
                     unsigned events)
{
    return epoll_change(p, EPOLL_CTL_MOD, fd, slot, events);
}

int ek_poller_remove(struct ek_poller *p, int fd, uint32_t slot)
{
    return epoll_change(p, EPOLL_CTL_DEL, fd, slot, 0);
}

/* epoll_pwait2 where the kernel has it (Linux 5.11): an open-loop schedule
 * at 100k messages/s needs better than epoll_wait's milliseconds. */
static int epoll_wait_ns(struct ek_poller *p, int max, int64_t timeout_ns)
{
#ifdef EK_HAVE_EPOLL_PWAIT2
    struct timespec ts = {timeout_ns / 1000000000, timeout_ns % 1000000000};
    int n =
        epoll_pwait2(p->epfd, p->out, max, timeout_ns < 0 ? NULL : &ts, NULL);
    if (n >= 0 || errno != ENOSYS)
        return n;
#endif
    int64_t ms = timeout_ns < 0 ? -1 : (timeout_ns + 999999) / 1000000;
    return epoll_wait(p->epfd, p->out, max, ms > INT_MAX ? INT_MAX : (int)ms);
}

int ek_poller_wait(struct ek_poller *p, struct ek_poller_event *ev, int max,
                   int64_t timeout_ns)
{
    if (max > EK_POLLER_BATCH)
        max = EK_POLLER_BATCH;
    int n = epoll_wait_ns(p, max, timeout_ns);
    if (n < 0)
        return -errno;
    for (int i = 0; i < n; i++) {
        uint32_t e = p->out[i].events;
        ev[i].slot = p->out[i].data.u32;
        ev[i].events = ((e & EPOLLIN) ? (unsigned)POLLIN : 0u) |
                       ((e & EPOLLOUT) ? (unsigned)POLLOUT : 0u) |
                       ((e & EPOLLERR) ? (unsigned)POLLERR : 0u) |
                       ((e & EPOLLHUP) ? (unsigned)POLLHUP : 0u);
    }
    return n;
}

#else /* poll(2) */

/* Slot i's descriptor is fds[i] (-1 when none: poll skips it). */
struct ek_poller {
    struct pollfd *fds;
    uint32_t n;
    uint32_t next; /* where the next wait starts reporting: fairness when
                      more are ready than one wait returns */
};

int ek_poller_open(struct ek_poller **out, uint32_t capacity)
{
    struct ek_poller *p = malloc(sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->fds = malloc((capacity ? capacity : 1) * sizeof(*p->fds));
    if (p->fds == NULL) {
        free(p);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < capacity; i++)
        p->fds[i] = (struct pollfd){.fd = -1};
    p->n = capacity;
    p->next = 0;
    *out = p;
    return 0;
}

void ek_poller_close(struct ek_poller *p)
{
    if (p == NULL)
        return;
    free(p->fds);
    free(p);
}

int ek_poller_add(struct ek_poller *p, int fd, uint32_t slot, unsigned events)
{
    if (slot >= p->n)
        return -EINVAL;
    p->fds[slot] = (struct pollfd){
        .fd = fd, .events = (short)(events & (unsigned)(POLLIN | POLLOUT))};
    return 0;
}

int ek_poller_modify(struct ek_poller *p, int fd, uint32_t slot,
                     unsigned events)
{
    if (slot >= p->n || p->fds[slot].fd != fd)
        return -ENOENT;
    p->fds[slot].events = (short)(events & (unsigned)(POLLIN | POLLOUT));
    return 0;
}

int ek_poller_remove(struct ek_poller *p, int fd, uint32_t slot)
{
    if (slot >= p->n || p->fds[slot].fd != fd)
        return -ENOENT;
    p->fds[slot].fd = -1;
    return 0;
}

int ek_poller_wait(struct ek_poller *p, struct ek_poller_event *ev, int max,
                   int64_t timeout_ns)
{
    int64_t ms = timeout_ns < 0 ? -1 : (timeout_ns + 999999) / 1000000;
    int ready = poll(p->fds, p->n, ms > INT_MAX ? INT_MAX : (int)ms);
    if (ready < 0)
        return -errno;
    int got = 0;
    for (uint32_t k = 0; k < p->n && got < ready && got < max; k++) {
        uint32_t i = (p->next + k) % p->n;
        if (p->fds[i].fd < 0 || p->fds[i].revents == 0)
            continue;
        ev[got].slot = i;
        ev[got].events = (unsigned)p->fds[i].revents;
        got++;
        if (got == max)
            p->next = (i + 1) % p->n;
    }
    return got;
}

#endif

/* ---- what this build leaves out ----------------------------------------- */

const char *ek_platform_no_epoll(void)
{
#if defined(__linux__) && defined(EK_PORTABLE_BUILD)
    return "not available in this build: configured with -DEK_LINUX_EXT=OFF "
           "(portable calls only)";
#elif defined(__linux__)
    return "not available in this build: the C library has no epoll_create1";
#else
    return "not available on this platform: epoll is Linux only";
#endif
}

const char *ek_platform_no_uring(void)
{
#if defined(__linux__) && defined(EK_PORTABLE_BUILD)
    return "not available in this build: configured with -DEK_LINUX_EXT=OFF "
           "(portable calls only)";
#elif defined(__linux__) && defined(EK_URING_OFF_REASON)
    return "not available in this build: " EK_URING_OFF_REASON;
#elif defined(__linux__)
    return "not available in this build: built without liburing (install "
           "liburing-dev and rebuild)";
#else
    return "not available on this platform: io_uring is Linux only";
#endif
}
