#include "ek_cli.h"
#include "ek_config.h"
#include "ek_log.h"
#include "ek_net.h"
#include "ek_platform.h"
#include "ek_util.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sysexits.h>
#include <unistd.h>

void ek_print_version(void)
{
    printf("echokit %s\n", EK_VERSION);
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

int ek_client_connect(const char *cmd, const char *text, int64_t timeout_ms,
                      int *fd, char *peer, size_t peer_size)
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
    int err = -EADDRNOTAVAIL;
    char name[EK_ADDRSTR_MAX] = "";
    int64_t deadline = ek_now_ms() + timeout_ms;
    for (size_t i = 0; i < n; i++) {
        ek_addr_format((struct sockaddr *)&addrs[i].ss, addrs[i].len, name,
                       sizeof(name));
        int left = ek_timeout_until(deadline);
        err = left > 0 ? ek_net_connect(&addrs[i], left) : -ETIMEDOUT;
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

int ek_client_connect_udp(const char *cmd, const char *text, int *fd,
                          char *peer, size_t peer_size)
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
    char name[EK_ADDRSTR_MAX];
    ek_addr_format((struct sockaddr *)&addrs[0].ss, addrs[0].len, name,
                   sizeof(name));
    int s =
        ek_socket(addrs[0].ss.ss_family, SOCK_DGRAM, O_NONBLOCK | O_CLOEXEC);
    int err = s < 0 ? s : 0;
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
