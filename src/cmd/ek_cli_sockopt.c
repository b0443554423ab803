/*
 * The client socket options at the command line: parsing, --help, and the
 * check that names the option a kernel refuses (ek_sockopt.c sets them).
 */
#include "ek_cli.h"
#include "ek_log.h"
#include "ek_platform.h"
#include "ek_sockopt.h"
#include "ek_util.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>

void ek_client_sock_usage(int column)
{
    static const char *const lines[][2] = {
        {"--source ADDR", "connect from ADDR; a pool, used round robin:"},
        {"", "CIDR (10.0.0.0/24) or FIRST-LAST (127.0.0.2-127.0.0.5)"},
        {"--bind-dev IFACE", "leave by interface IFACE (SO_BINDTODEVICE)"},
        {"--tos N", "the IP TOS byte / IPv6 traffic class, 0..255"},
        {"--dscp CLASS", "the same as a DSCP: 0..63, or ef, af11..af43,"},
        {"", "cs0..cs7, va, le"},
        {"--mark N", "SO_MARK (needs CAP_NET_ADMIN), 0..4294967295"},
        {"--cc ALGO", "TCP congestion control (cubic, bbr, reno, ...)"},
        {"--mss BYTES", "TCP maximum segment size, 88..32767"},
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        printf("      %-*s%s\n", column - 6, lines[i][0], lines[i][1]);
}

/* A congestion control name as the kernel spells them. */
static bool cc_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= sizeof(((struct ek_sockopts *)0)->cc))
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
            return false;
    return true;
}

int ek_client_sock_option(const char *cmd, struct ek_sockopts *o, int c,
                          const char *arg)
{
    const char *why = NULL, *name = NULL;
    uint64_t v;
    int dscp;
    switch (c) {
    case EK_OPT_SOURCE:
        if (ek_source_parse(arg, &o->source, &why) < 0)
            name = "--source";
        break;
    case EK_OPT_BIND_DEV:
        if (strlen(arg) >= sizeof(o->dev) || arg[0] == '\0') {
            name = "--bind-dev";
            why = "an interface name is 1 to 15 characters";
        } else if (if_nametoindex(arg) == 0) {
            name = "--bind-dev";
            why = "no such network interface";
        } else {
            snprintf(o->dev, sizeof(o->dev), "%s", arg);
        }
        break;
    case EK_OPT_TOS:
    case EK_OPT_DSCP:
        if (o->tos >= 0)
            return ek_usage_error(cmd, "--tos and --dscp both set the TOS "
                                       "byte: give one, once");
        if (c == EK_OPT_TOS && ek_parse_uint(arg, 0, 255, &v, &why) == 0)
            o->tos = (int)v;
        else if (c == EK_OPT_DSCP && ek_dscp_parse(arg, &dscp, &why) == 0)
            o->tos = dscp << 2;
        else
            name = c == EK_OPT_TOS ? "--tos" : "--dscp";
        break;
    case EK_OPT_MARK:
        if (ek_parse_uint(arg, 0, UINT32_MAX, &v, &why) == 0)
            o->mark = (int64_t)v;
        else
            name = "--mark";
        break;
    case EK_OPT_CC:
        if (cc_name_ok(arg)) {
            snprintf(o->cc, sizeof(o->cc), "%s", arg);
        } else {
            name = "--cc";
            why = "expected a congestion control's name (cubic, bbr, ...)";
        }
        break;
    case EK_OPT_MSS:
        /* Linux's bounds: TCP_MIN_MSS and MAX_TCP_WINDOW. */
        if (ek_parse_uint(arg, 88, 32767, &v, &why) == 0)
            o->mss = (int)v;
        else
            name = "--mss";
        break;
    default:
        return -1;
    }
    if (name != NULL)
        return ek_usage_error(cmd, "invalid %s '%s': %s", name, arg, why);
    return 0;
}

/* The first line of a /proc file, for a hint ("" when unreadable). */
static const char *proc_line(const char *path, char *buf, size_t size)
{
    buf[0] = '\0';
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return buf;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    return buf;
}

/* What the kernel's refusal of option `which` means, as a hint. */
static void say_refused(const char *cmd, const struct ek_sockopts *o,
                        const char *which, int err, uint64_t index)
{
    char hint[256] = "", have[200];
    if (strcmp(which, "--cc") == 0 && err == ENOENT)
        snprintf(hint, sizeof(hint), " (loaded here: %s)",
                 proc_line("/proc/sys/net/ipv4/"
                           "tcp_available_congestion_control",
                           have, sizeof(have)));
    else if (strcmp(which, "--cc") == 0 && err == EPERM)
        snprintf(hint, sizeof(hint),
                 " (without CAP_NET_ADMIN only these are allowed: %s)",
                 proc_line("/proc/sys/net/ipv4/"
                           "tcp_allowed_congestion_control",
                           have, sizeof(have)));
    else if (strcmp(which, "--mark") == 0 && err == EPERM)
        snprintf(hint, sizeof(hint), " (SO_MARK needs CAP_NET_ADMIN)");
    else if (strcmp(which, "--bind-dev") == 0 && err == EPERM)
        snprintf(hint, sizeof(hint), " (SO_BINDTODEVICE needs CAP_NET_RAW)");
    else if (strcmp(which, "--source") == 0 && err == EADDRNOTAVAIL) {
        struct ek_sockaddr sa;
        char text[INET6_ADDRSTRLEN] = "?";
        ek_source_addr(&o->source, index, &sa);
        const void *a =
            sa.ss.ss_family == AF_INET
                ? (const void *)&((struct sockaddr_in *)&sa.ss)->sin_addr
                : (const void *)&((struct sockaddr_in6 *)&sa.ss)->sin6_addr;
        inet_ntop(sa.ss.ss_family, a, text, sizeof(text));
        snprintf(hint, sizeof(hint), " (%s is not an address of this host)",
                 text);
    }
    ek_warnx("%s: %s: the kernel refused it: %s%s", cmd, which, strerror(err),
             hint);
}

int ek_client_sockopts_check(const char *cmd, const struct ek_sockopts *o,
                             int family, bool stream)
{
    if (!ek_sockopts_any(o))
        return 0;
    if (family != AF_INET && family != AF_INET6)
        return ek_usage_error(cmd, "--source, --bind-dev, --tos, --dscp, "
                                   "--mark, --cc and --mss apply to IP, not "
                                   "to a unix socket");
    if (!stream && (o->cc[0] != '\0' || o->mss > 0))
        return ek_usage_error(cmd, "--cc and --mss apply to TCP, not UDP");
    if (o->source.family != 0 && o->source.family != family)
        return ek_usage_error(cmd,
                              "--source is %s, the server's address is "
                              "%s",
                              o->source.family == AF_INET ? "IPv4" : "IPv6",
                              family == AF_INET ? "IPv4" : "IPv6");
#ifdef EK_PORTABLE_BUILD
    if (o->dev[0] != '\0' || o->mark >= 0 || o->cc[0] != '\0') {
        ek_warnx("%s: --bind-dev, --mark and --cc are Linux's, and this "
                 "build leaves Linux's extensions out (EK_LINUX_EXT=OFF)",
                 cmd);
        return EX_UNAVAILABLE;
    }
#endif
    /* The first and the last address of the pool: one that is not this
     * host's shows here, not as a connection failure later. */
    uint64_t last = o->source.family != 0 ? o->source.count - 1 : 0;
    for (uint64_t index = 0;; index = last) {
        int fd =
            ek_socket(family, stream ? SOCK_STREAM : SOCK_DGRAM, O_CLOEXEC);
        if (fd < 0) {
            ek_warnx("%s: socket: %s", cmd, strerror(-fd));
            return EX_OSERR;
        }
        const char *which = "";
        int err = ek_sockopts_apply(o, fd, family, stream, index, &which);
        close(fd);
        if (err < 0) {
            say_refused(cmd, o, which, -err, index);
            return EX_OSERR;
        }
        if (index == last)
            return 0;
    }
}
