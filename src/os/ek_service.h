/*
 * ek_service: what running as a system service takes besides serving:
 * a pid file, dropping root after binding, and inetd mode.
 *
 * No --daemon: a service manager (systemd, runit, s6, launchd) starts,
 * supervises and logs a foreground process better than a double fork
 * does, and `echokit serve &` covers the interactive case.
 */
#ifndef EK_SERVICE_H
#define EK_SERVICE_H

#include <stdbool.h>

/* A pid file, held with an exclusive flock(2) while the server runs so
 * that a second server with the same file refuses to start, whatever a
 * stale file from a crash says. */
struct ek_pidfile {
    int fd; /* -1: none */
    char *path;
};

/* Creates (or takes over a stale) path and writes our pid. Returns 0, or
 * -errno after printing why (-EWOULDBLOCK: another running server holds
 * it). */
int ek_pidfile_open(struct ek_pidfile *pf, const char *path);

/* Removes the file (if our permissions still allow) and closes it. */
void ek_pidfile_close(struct ek_pidfile *pf);

/* Switches to user (name or number): its groups, gid, then uid, and
 * checks that root cannot be regained. Returns 0, or -errno after
 * printing why (-ESRCH no such user, -EPERM not permitted). */
int ek_drop_privileges(const char *user);

/* Whether this process may bind ports below 1024 only because it is root
 * (euid 0): the case where serving as root without --user is refused. */
bool ek_running_as_root(void);

/* inetd mode: echoes stdin to stdout until end of input. Works on a
 * socket (inetd, xinetd, systemd Accept=yes) as on pipes. Returns 0 when
 * everything came back (or the client left), -errno on an I/O error. */
int ek_serve_inetd(void);

#endif
