#include "ek_sd.h"
#include "ek_log.h"
#include "ek_platform.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* A decimal number that fits an int, all of text. */
static int parse_count(const char *text, long max)
{
    long v = 0;
    if (text == NULL || *text == '\0')
        return -1;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
        if (v > max)
            return -1;
    }
    return (int)v;
}

int ek_sd_listen_fds(const char **why)
{
    const char *pid_text = getenv("LISTEN_PID");
    const char *fds_text = getenv("LISTEN_FDS");
    int n = 0;

    if (pid_text == NULL && fds_text == NULL)
        return 0;
    int pid = parse_count(pid_text, 0x7fffffff);
    if (pid < 0 || (n = parse_count(fds_text, 4096)) < 0) {
        *why = "LISTEN_PID or LISTEN_FDS is not a number";
        n = -1;
    } else if (pid != getpid()) {
        n = 0; /* meant for another process (we were exec'd by it) */
    }
    const char *names = getenv("LISTEN_FDNAMES");
    if (n > 0 && names != NULL) /* FileDescriptorName=: for the operator */
        ek_log(EK_LOG_INFO, "socket activation: sockets named %s", names);
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return n;
}

void ek_sd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    size_t len;

    if (path == NULL || path[0] == '\0')
        return;
    len = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sun.sun_path)) {
        ek_log(EK_LOG_DEBUG, "NOTIFY_SOCKET '%s': not a unix socket", path);
        return;
    }
    memcpy(sun.sun_path, path, len);
    if (path[0] == '@')
        sun.sun_path[0] = '\0'; /* abstract namespace */
    int fd = ek_socket(AF_UNIX, SOCK_DGRAM, O_CLOEXEC);
    if (fd < 0) {
        ek_log(EK_LOG_DEBUG, "sd_notify: socket: %s", strerror(-fd));
        return;
    }
    socklen_t slen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    ssize_t w;
    do
        w = sendto(fd, state, strlen(state), EK_MSG_NOSIGNAL,
                   (struct sockaddr *)&sun, slen);
    while (w < 0 && errno == EINTR);
    if (w < 0)
        ek_log(EK_LOG_DEBUG, "sd_notify to %s: %s", path, strerror(errno));
    close(fd);
}

void ek_sd_notifyf(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    ek_sd_notify(buf);
}
