/*
 * ek_sd: the two small systemd protocols a daemon speaks, written out
 * rather than linking libsystemd (both are a page of documented text:
 * sd_listen_fds(3), sd_notify(3)):
 *   - socket activation: the sockets arrive as fds 3, 4, ... with
 *     LISTEN_PID (must be us) and LISTEN_FDS (how many) in the
 *     environment, LISTEN_FDNAMES optionally naming them;
 *   - readiness: datagrams such as "READY=1" to the unix socket named by
 *     NOTIFY_SOCKET (a path, or "@name" for the abstract namespace).
 * Outside systemd both are silent no-ops.
 */
#ifndef EK_SD_H
#define EK_SD_H

#define EK_SD_LISTEN_FDS_START 3

/* How many sockets systemd passed (0: none, or not to us), and clears the
 * variables so that children do not take them for theirs. Returns -1 with
 * *why set when the variables are malformed. */
int ek_sd_listen_fds(const char **why);

/* Sends state (e.g. "READY=1\nSTATUS=serving") to the service manager, if
 * any. Failures are logged at debug level and otherwise ignored: the
 * service manager is a bystander to the echo. */
void ek_sd_notify(const char *state);

/* printf-style ek_sd_notify. */
void ek_sd_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
