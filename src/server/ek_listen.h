/*
 * ek_listen: the server's listeners: binding every --listen address (a
 * name listens on every address it resolves to; port 0 is one port for
 * all of them), and taking over the sockets systemd passed.
 */
#ifndef EK_LISTEN_H
#define EK_LISTEN_H

#include "ek_addr.h"
#include "ek_transport.h"

#include <stdbool.h>

struct ek_server;

struct ek_listener {
    int fd; /* -1 once closed */
    struct ek_sockaddr addr;
    char
        name[EK_ADDRSTR_MAX + 4]; /* "127.0.0.1:50000", "udp:...", as printed */
    bool inherited; /* passed by systemd: its socket file is not ours */
    bool udp;       /* a UDP socket (served, never accepted on) */
    /* What its connections speak: the plain socket transport, or TLS
     * ("tls:"); NULL for UDP. */
    const struct ek_transport *tp;
};

/* Binds srv->cfg's addresses and adopts its systemd sockets into
 * srv->listeners. Returns 0, or -errno after printing why: -ENXIO a name
 * resolves to no address, -ENOTSOCK a passed descriptor is neither a
 * listening stream socket nor a UDP socket, else what bind(2) or listen(2)
 * said (-EADDRINUSE, -EACCES, ...). */
int ek_listeners_open(struct ek_server *srv);

/* stdout is the machine-readable channel: one "listening on ADDR" line per
 * listener, flushed. Call once the server is ready (bound, privileges
 * dropped), so that a script may read the lines and connect at once. */
void ek_listeners_announce(const struct ek_server *srv);

/* Closes the stream listeners (with udp_too, the UDP sockets as well) and
 * removes the unix socket files the server created. Idempotent. UDP has
 * no connections to drain: its sockets are served until the exit. */
void ek_listeners_close(struct ek_server *srv, bool udp_too);

/* Closes them all (ek_listeners_close), and frees srv->listeners. */
void ek_listeners_free(struct ek_server *srv);

#endif
