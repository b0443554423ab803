#include "ek_net.h"
#include "ek_sockopt.h"
#include "ek_platform.h"
#include "ek_util.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static int new_socket(int family)
{
    return ek_socket(family, SOCK_STREAM, O_NONBLOCK | O_CLOEXEC);
}

/* A unix socket file answers connect() only if a server is behind it.
 * connect() to a regular file fails with ECONNREFUSED too: the caller
 * checks first that the path is a socket. */
static bool unix_path_is_stale(const struct ek_sockaddr *sa)
{
    int fd = ek_socket(AF_UNIX, SOCK_STREAM, O_CLOEXEC);
    if (fd < 0)
        return false;
    int rc = connect(fd, (const struct sockaddr *)&sa->ss, sa->len);
    bool stale = rc < 0 && errno == ECONNREFUSED;
    close(fd);
    return stale;
}

static int bind_unix(int fd, const struct ek_sockaddr *sa)
{
    const struct sockaddr_un *un = (const struct sockaddr_un *)&sa->ss;
    if (bind(fd, (const struct sockaddr *)&sa->ss, sa->len) == 0)
        return 0;
    if (errno != EADDRINUSE || un->sun_path[0] == '\0')
        return -errno;
    struct stat st, again;
    if (lstat(un->sun_path, &st) < 0)
        return -EADDRINUSE; /* in use, by what cannot be told */
    /* Only a socket file is ever removed: taking anything else for a
     * stale socket would delete whatever the path names. */
    if (!S_ISSOCK(st.st_mode))
        return -ENOTSOCK;
    if (!unix_path_is_stale(sa))
        return -EADDRINUSE;
    /* Still the socket file just probed? Something renamed onto the path
     * in between is not ours to remove. (A directory others can write
     * leaves a narrower race all the same: keep sockets in one only they
     * and the server's user can.) */
    if (lstat(un->sun_path, &again) == 0 &&
        (again.st_dev != st.st_dev || again.st_ino != st.st_ino ||
         !S_ISSOCK(again.st_mode)))
        return -EADDRINUSE;
    if (unlink(un->sun_path) < 0 && errno != ENOENT)
        return -errno;
    return bind(fd, (const struct sockaddr *)&sa->ss, sa->len) == 0 ? 0
                                                                    : -errno;
}

int ek_net_listen(const struct ek_sockaddr *sa, int backlog, bool reuseport)
{
    int family = sa->ss.ss_family;
    int fd = new_socket(family);
    int err = 0;
    if (fd < 0)
        return fd;

    if (family == AF_INET || family == AF_INET6)
        err = ek_sockopt_set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (err == 0 && family == AF_INET6)
        err = ek_sockopt_set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
    if (err == 0 && reuseport && family != AF_UNIX)
        err = ek_set_reuseport(fd);
    if (err == 0) {
        if (family == AF_UNIX)
            err = bind_unix(fd, sa);
        else if (bind(fd, (const struct sockaddr *)&sa->ss, sa->len) < 0)
            err = -errno;
    }
    if (err == 0 && listen(fd, backlog) < 0)
        err = -errno;
    if (err < 0) {
        close(fd);
        return err;
    }
    return fd;
}

int ek_net_bind_udp(const struct ek_sockaddr *sa, bool reuseport)
{
    int family = sa->ss.ss_family;
    if (family != AF_INET && family != AF_INET6)
        return -EAFNOSUPPORT;
    int fd = ek_socket(family, SOCK_DGRAM, O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return fd;
    int err = ek_sockopt_set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
    if (err == 0 && family == AF_INET6)
        err = ek_sockopt_set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1);
    if (err == 0 && reuseport)
        err = ek_set_reuseport(fd);
    /* The address each datagram was sent to, so that the echo leaves from
     * it: a socket bound to every address must not answer from another. */
    if (err == 0)
        err = ek_dst_addr_enable(fd, family);
    if (err == 0 && bind(fd, (const struct sockaddr *)&sa->ss, sa->len) < 0)
        err = -errno;
    if (err < 0) {
        close(fd);
        return err;
    }
    return fd;
}

int ek_net_accept(int listen_fd, bool nonblock)
{
    int fd = ek_accept(listen_fd, O_CLOEXEC | (nonblock ? O_NONBLOCK : 0));
    return fd == -EWOULDBLOCK ? -EAGAIN : fd;
}

void ek_net_tune(int fd)
{
    /* Best effort, and one syscall: on a unix socket it fails with
     * EOPNOTSUPP, which is cheaper than asking the family first. */
    (void)ek_sockopt_set_int(fd, IPPROTO_TCP, TCP_NODELAY, 1);
}

/* Waits for a non-blocking connect to finish; SO_ERROR tells how. */
static int finish_connect(int fd, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : ek_now_ms() + timeout_ms;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    for (;;) {
        int n = poll(&p, 1, ek_timeout_until(deadline));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -ETIMEDOUT;
        break;
    }
    return ek_net_connect_result(fd);
}

int ek_net_connect_start(const struct ek_sockaddr *sa,
                         const struct ek_sockopts *o, uint64_t index,
                         bool *done)
{
    int fd = new_socket(sa->ss.ss_family);
    if (fd < 0)
        return fd;
    const char *which;
    int refused = o != NULL ? ek_sockopts_apply(o, fd, sa->ss.ss_family, true,
                                                index, &which)
                            : 0;
    if (refused < 0) {
        close(fd);
        return refused;
    }
    /* SO_REUSEADDR on a client too: its port (ephemeral, so possibly one
     * a server will want, 50000 say) stays in TIME_WAIT for 60 s when it
     * closes first, and Linux refuses to bind a server to a port that a
     * socket without SO_REUSEADDR holds. */
    int family = sa->ss.ss_family;
    int err = family == AF_INET || family == AF_INET6
                  ? ek_sockopt_set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1)
                  : 0;
    if (err < 0) {
        close(fd);
        return err;
    }
    *done = true;
    if (connect(fd, (const struct sockaddr *)&sa->ss, sa->len) < 0) {
        /* EINTR on connect: the attempt goes on in the background
         * (connect(2)), so it is waited for like EINPROGRESS. A unix
         * socket whose backlog is full fails at once with EAGAIN. */
        if (errno != EINPROGRESS && errno != EINTR) {
            err = -errno;
            close(fd);
            return err;
        }
        *done = false;
    }
    return fd;
}

int ek_net_connect_result(int fd)
{
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        return -errno;
    if (soerr == 0)
        ek_net_tune(fd);
    return -soerr;
}

int ek_net_connect(const struct ek_sockaddr *sa, const struct ek_sockopts *o,
                   int timeout_ms)
{
    bool done;
    int fd = ek_net_connect_start(sa, o, 0, &done);
    if (fd < 0 || done) {
        if (fd >= 0)
            ek_net_tune(fd);
        return fd;
    }
    int err = finish_connect(fd, timeout_ms);
    if (err < 0) {
        close(fd);
        return err;
    }
    return fd;
}

int ek_net_local_addr(int fd, struct ek_sockaddr *out)
{
    out->len = sizeof(out->ss);
    if (getsockname(fd, (struct sockaddr *)&out->ss, &out->len) < 0)
        return -errno;
    return 0;
}

void ek_net_peer_name(int fd, char *name, size_t size)
{
    struct ek_sockaddr peer = {.len = sizeof(peer.ss)};
    snprintf(name, size, "?");
    if (getpeername(fd, (struct sockaddr *)&peer.ss, &peer.len) == 0)
        ek_addr_format((struct sockaddr *)&peer.ss, peer.len, name, size);
}

int ek_net_set_nonblock(int fd, bool on)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -errno;
    int want = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
    if (want != flags && fcntl(fd, F_SETFL, want) < 0)
        return -errno;
    return 0;
}
