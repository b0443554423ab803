/*
 * ek_platform: the one place where echokit calls what POSIX.1-2008 lacks,
 * each call with a portable fallback chosen at build time.
 *
 * The build looks for each call and defines EK_HAVE_<CALL> in ek_config.h;
 * with -DEK_LINUX_EXT=OFF it defines none, so that Linux runs the fallbacks
 * that BSD and macOS run (`make test-portable`). Every function returns
 * -errno on failure and retries EINTR itself, unless it says otherwise.
 * Descriptor flags are O_CLOEXEC and O_NONBLOCK, as for pipe2(2).
 *
 * What src/ uses beyond POSIX.1-2008, and where each stands:
 *
 *   accept4, SOCK_NONBLOCK | SOCK_CLOEXEC at socket() and socketpair(),
 *   pipe2: Linux and the BSDs (POSIX.1-2024), not macOS. ek_accept,
 *     ek_socket, ek_socketpair, ek_pipe; fallback: the plain call, then
 *     fcntl. Not atomic: a fork and exec in another thread in between
 *     would inherit the descriptor; echokit never execs.
 *   recvmmsg, sendmmsg: Linux, FreeBSD, NetBSD. ek_recvmmsg, ek_sendmmsg;
 *     fallback: recvmsg/sendmsg in a loop, with the same results.
 *   splice: Linux. ek_splice, EK_HAVE_SPLICE; fallback: -ENOSYS, and the
 *     caller copies with read and write.
 *   epoll, epoll_pwait2 in the bench client: Linux. struct ek_poller;
 *     fallback: poll(2), waits rounded up to the millisecond.
 *   prctl(PR_SET_TIMERSLACK): Linux. ek_timer_slack_min; fallback: none.
 *   SO_TIMESTAMPING (the kernel's own send and arrival times of a packet,
 *     bench --timestamps): Linux. ek_tstamp_*; fallback: -ENOTSUP, and
 *     bench refuses the option with the reason.
 *   timerfd (bench's open-loop schedule, a periodic timer armed once):
 *     Linux. ek_ticker_*; fallback: -ENOSYS, and bench waits with a
 *     timeout to each message's time instead.
 *   SO_RCVBUFFORCE, SO_MEMINFO (a receive buffer past rmem_max, and the
 *     datagrams a socket dropped for want of one): Linux. ek_rcvbuf_ask,
 *     ek_socket_drops; fallback: SO_RCVBUF (as the system caps it), and
 *     -ENOTSUP.
 *   ppoll, for ping's schedule: Linux, FreeBSD, OpenBSD, NetBSD
 *     (POSIX.1-2024), not macOS. ek_poll_ns; fallback: poll(2), waits
 *     rounded up to the millisecond.
 *   MSG_TRUNC as a recv flag (the datagram's real length, not the length
 *     read): Linux. EK_MSG_TRUNC; fallback: 0. Callers read into a buffer
 *     one byte larger than they expect, so "too long" shows all the same.
 *   MSG_NOSIGNAL: POSIX.1-2008, but not macOS. EK_MSG_NOSIGNAL; fallback:
 *     0 and SO_NOSIGPIPE on each socket ek_socket, ek_socketpair and
 *     ek_accept make. SIGPIPE is ignored as well (ek_signal_open and every
 *     client command), so a missed socket costs nothing.
 *   clock_nanosleep: POSIX, but not macOS. ek_sleep_until_ns; fallback:
 *     nanosleep for what is left.
 *   getentropy (getrandom(2) on Linux): POSIX.1-2024, on every target
 *     (glibc 2.25, musl, the BSDs, macOS). ek_random_bytes; fallback:
 *     /dev/urandom.
 *   IP_PKTINFO (a datagram's destination, which its echo leaves from):
 *     Linux, macOS, NetBSD; IPV6_RECVPKTINFO / IPV6_PKTINFO: RFC 3542,
 *     everywhere. ek_dst_addr_enable, ek_dst_addr_reply. Not written:
 *     FreeBSD's and OpenBSD's IP_RECVDSTADDR / IP_SENDSRCADDR (no such
 *     system to test on); there an IPv4 echo from a wildcard-bound socket
 *     leaves from the address the kernel picks.
 *   SO_REUSEPORT: every target has it, but only Linux and DragonFly
 *     spread connections over the sockets; FreeBSD does with
 *     SO_REUSEPORT_LB, which ek_set_reuseport prefers. macOS, OpenBSD and
 *     NetBSD give all to one socket: correct, not balanced.
 *   epoll (loop_epoll.c) and io_uring (model_uring.c), the server's
 *     Linux-only models: built only with EK_HAVE_EPOLL, EK_HAVE_URING;
 *     otherwise `--io` says why (ek_platform_no_epoll, _no_uring).
 *
 * Portable already, no seam: MSG_DONTWAIT, getifaddrs, flock, initgroups,
 * sysconf(_SC_NPROCESSORS_ONLN) (not POSIX, on every target); TCP_NODELAY,
 * O_CLOEXEC, F_DUPFD_CLOEXEC, O_NOFOLLOW (POSIX.1-2008); /proc (ek_proc.c
 * reads it, and where it is missing `bench --server-pid` says it cannot
 * tell); abstract unix sockets, `unix:@NAME` (a Linux namespace; elsewhere
 * bind fails with the system's error); systemd (ek_sd.c: plain sockets and
 * environment variables, inert without systemd).
 */
#ifndef EK_PLATFORM_H
#define EK_PLATFORM_H

#include "ek_config.h"

#include <poll.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

/* ---- descriptors -------------------------------------------------------- */

/* socket(family, type, 0) with flags (O_CLOEXEC, O_NONBLOCK). Returns the
 * fd or -errno. */
int ek_socket(int family, int type, int flags);

/* The user id of a unix socket's peer (SO_PEERCRED on Linux; getpeereid
 * elsewhere where it exists). Returns 0, or -errno (-ENOSYS: cannot
 * tell). */
int ek_peer_uid(int fd, uid_t *uid);

/* Closes every descriptor from 3 up but the n in keep (a forked child
 * keeping only what is its own): close_range(2) where there is one
 * (Linux 5.9, FreeBSD 12.2; the raw system call where libc has no
 * wrapper); else one close() per descriptor listed in /proc/self/fd
 * (Linux) or /dev/fd (macOS); else close() on every number up to the
 * descriptor limit. */
void ek_close_all_but(const int *keep, size_t n);

/* socketpair(family, type, 0, sv) with flags on both. Returns 0, or
 * -errno with sv untouched or, once made and closed again, both -1. */
int ek_socketpair(int family, int type, int flags, int sv[2]);

/* accept(listen_fd) with flags. O_NONBLOCK is set exactly as asked (BSD's
 * accept would inherit the listener's). Returns the fd or -errno. */
int ek_accept(int listen_fd, int flags);

/* pipe(fds) with flags on both ends. Returns 0, or -errno with fds
 * untouched or, once made and closed again, both -1. */
int ek_pipe(int fds[2], int flags);

/* Where the platform has no MSG_NOSIGNAL, 0: see above. */
#ifdef MSG_NOSIGNAL
#define EK_MSG_NOSIGNAL MSG_NOSIGNAL
#else
#define EK_MSG_NOSIGNAL 0
#endif

/* ---- zero-copy echo ----------------------------------------------------- */

/* Moves up to len bytes from fd_in to fd_out (one of them a pipe) without
 * blocking (SPLICE_F_MOVE | SPLICE_F_NONBLOCK). Returns the bytes moved
 * (0: end of input) or -errno; -ENOSYS in a build without splice, where
 * EK_HAVE_SPLICE is undefined and callers copy with read and write. */
ssize_t ek_splice(int fd_in, int fd_out, size_t len);

/* ---- datagrams ---------------------------------------------------------- */

/* recvmmsg's and sendmmsg's vector: msg_len is the datagram's length. */
#ifdef EK_HAVE_MMSG
typedef struct mmsghdr ek_mmsghdr;
#else
typedef struct {
    struct msghdr msg_hdr;
    unsigned int msg_len;
} ek_mmsghdr;
#endif

/* Receives up to n datagrams (flags as for recvmsg, e.g. MSG_DONTWAIT).
 * Returns how many, or -errno when the first one failed; an error after
 * the first ends the batch and shows on the next call. */
int ek_recvmmsg(int fd, ek_mmsghdr *v, unsigned n, int flags);

/* Sends the n datagrams in order, stopping at the first the socket
 * refuses. Returns how many went, or -errno when the first one failed. */
int ek_sendmmsg(int fd, ek_mmsghdr *v, unsigned n, int flags);

/* MSG_TRUNC as a receive flag where it returns the datagram's real
 * length; 0 where it would not. */
#ifdef EK_HAVE_RECV_TRUNC
#define EK_MSG_TRUNC MSG_TRUNC
#else
#define EK_MSG_TRUNC 0
#endif

/* Asks the UDP socket fd (AF_INET or AF_INET6) to report each datagram's
 * destination address in its control data; for IPv4 without IP_PKTINFO,
 * does nothing. Returns 0 or -errno (-EAFNOSUPPORT for another family). */
int ek_dst_addr_enable(int fd, int family);

/* Control data for the answer to the datagram received with `in`: its
 * destination becomes the answer's source. Writes at most size bytes to
 * out (zeroed first) and returns how many, 0 when `in` carries none. */
size_t ek_dst_addr_reply(const struct msghdr *in, void *out, size_t size);

/* Asks for a receive buffer of `bytes` on fd: past net.core.rmem_max
 * where the process may (SO_RCVBUFFORCE, CAP_NET_ADMIN), else as much of
 * it as SO_RCVBUF gives. Best effort. */
void ek_rcvbuf_ask(int fd, int bytes);

/* How many packets fd's receive queue has dropped for want of room, or
 * -errno (-ENOTSUP where the system cannot tell). */
int64_t ek_socket_drops(int fd);

/* ---- listeners ---------------------------------------------------------- */

/* Lets several sockets bind the same address (SO_REUSEPORT_LB where it
 * exists, else SO_REUSEPORT). Returns 0 or -errno. */
int ek_set_reuseport(int fd);

/* ---- time --------------------------------------------------------------- */

/* Sleeps until t, in ek_now_ns()'s clock. Returns 0, or -EINTR when a
 * signal came first (call again to go on sleeping). */
int ek_sleep_until_ns(int64_t t);

/* Makes this thread's timers as punctual as the kernel allows (Linux
 * slackens them by 50 us by default). Best effort. */
void ek_timer_slack_min(void);

/* ---- kernel timestamps (bench --timestamps) ------------------------------ */

/*
 * A stamp is in nanoseconds on the clock of whoever took it: the kernel's
 * CLOCK_REALTIME for a software stamp, the NIC's for a hardware one (only
 * where the device was set up for them, SIOCSHWTSTAMP). Its lowest bit
 * says which (EK_TSTAMP_HW: hardware), at the cost of a nanosecond: two
 * stamps can be subtracted only when that bit agrees.
 *
 * Send stamps are the moment the device took the packet (SCM_TSTAMP_SND:
 * the driver for a NIC, the loopback or veth transmit for those); each
 * comes back on the socket's error queue with a key: for TCP the offset
 * of the last byte of that send, for UDP the datagram's number, both
 * counted from 0 at ek_tstamp_enable (32 bits, wrapping). Arrival stamps
 * come with the data; for a TCP read that took several segments, the
 * last one's.
 */
#define EK_TSTAMP_HW 1

/* Whether this build has kernel timestamps; NULL if so, else why not. */
const char *ek_tstamp_missing(void);

/* Asks for send and arrival stamps on fd, a socket that has sent nothing
 * yet. Returns 0 or -errno (-ENOTSUP in a build without them). */
int ek_tstamp_enable(int fd);

/* recv(fd, buf, len, MSG_DONTWAIT | flags), retrying EINTR, with the
 * arrival stamp of what it read in *rx (0 when the kernel gave none).
 * Returns the bytes read (for a datagram its real length with
 * EK_MSG_TRUNC in flags), or -errno. */
ssize_t ek_tstamp_recv(int fd, void *buf, size_t len, int flags, int64_t *rx);

/* The next send stamp waiting on fd's error queue: 1 with *key and *tx,
 * 0 when none waits, or -errno. */
int ek_tstamp_next_tx(int fd, uint32_t *key, int64_t *tx);

/* ---- a periodic timer ---------------------------------------------------- */

/* A descriptor that becomes readable at first_ns (ek_now_ns()'s clock)
 * and every period_ns after, armed once: a wait for it and for sockets
 * needs no timeout of its own, whose arming and cancelling on every
 * early wake-up cost a virtual machine some 10 us. Returns the fd
 * (non-blocking, close-on-exec) or -errno (-ENOSYS: none here). */
int ek_ticker_open(int64_t first_ns, int64_t period_ns);

/* The expirations since the last call (0 if none), or -errno. */
int64_t ek_ticker_read(int fd);

/* ---- randomness and waits ------------------------------------------------ */

/* n random bytes from the kernel (getentropy, or /dev/urandom): 0 or
 * -errno. */
int ek_random_bytes(void *buf, size_t n);

/* poll(2) with a timeout in nanoseconds (negative: no limit): ppoll where
 * the build has it, else poll's milliseconds, rounded up. Returns what
 * poll returns. */
int ek_poll_ns(struct pollfd *fds, nfds_t n, int64_t timeout_ns);

/* ---- readiness for the bench client ------------------------------------- */

/*
 * A readiness set for up to `capacity` descriptors, each known by a number
 * below capacity (the caller's slot). Not ek_backend: the bench needs
 * nanosecond deadlines and POLLERR and POLLHUP apart from POLLIN. Events
 * are poll(2)'s: POLLIN and POLLOUT asked for; POLLIN, POLLOUT, POLLERR and
 * POLLHUP reported, level-triggered. epoll where the build has it, else
 * poll(2) over an array indexed by the slot.
 */
struct ek_poller;

struct ek_poller_event {
    uint32_t slot;
    unsigned events;
};

/* Returns 0 with *out, or -errno. */
int ek_poller_open(struct ek_poller **out, uint32_t capacity);
void ek_poller_close(struct ek_poller *p);

/* Watches fd for events as slot; changes them; stops watching (before
 * fd is closed). Return 0 or -errno. */
int ek_poller_add(struct ek_poller *p, int fd, uint32_t slot, unsigned events);
int ek_poller_modify(struct ek_poller *p, int fd, uint32_t slot,
                     unsigned events);
int ek_poller_remove(struct ek_poller *p, int fd, uint32_t slot);

/* Waits up to timeout_ns (negative: no limit) and stores at most max
 * events. Returns how many, or -errno (-EINTR when a signal came). */
int ek_poller_wait(struct ek_poller *p, struct ek_poller_event *ev, int max,
                   int64_t timeout_ns);

/* ---- what this build leaves out ----------------------------------------- */

/* Why the epoll or the uring model is not in this build (for ek_model). */
const char *ek_platform_no_epoll(void);
const char *ek_platform_no_uring(void);

#endif
