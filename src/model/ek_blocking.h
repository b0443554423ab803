/*
 * ek_blocking: the echo of the blocking models (iterative, thread,
 * process): one connection, one fixed buffer, one read, then send it all,
 * then read again. Every call uses MSG_DONTWAIT (the connection's
 * transport, ek_transport.h) and waits in poll(2), so that a wake fd (the
 * signal pipe, or the cut pipe at the drain deadline), a deadline and
 * --idle-timeout can interrupt it. The PROXY header is read first through
 * the connection layer (ek_conn.h), as in every engine.
 */
#ifndef EK_BLOCKING_H
#define EK_BLOCKING_H

#include "ek_conn.h"

#include <stddef.h>
#include <stdint.h>

struct ek_server;

/* State of one blocking echo: bytes buf[head, tail) are read, not sent. */
struct ek_blocking {
    struct ek_conn conn; /* its transport and PROXY header */
    struct ek_server *srv;
    char *buf;
    size_t size;
    size_t head, tail;
    int64_t idle_ms;               /* --idle-timeout, 0: none */
    int64_t last_ms;               /* when a byte last moved */
    int64_t header_deadline_ms;    /* --proxy-protocol: the header's */
    int64_t handshake_ms;          /* how long the transport's may take */
    int64_t handshake_deadline_ms; /* -1 until its clock starts, and after */
};

/* Sets b up for connection fd of srv over transport tp, echoing through
 * buf. Returns 0, EK_ECHO_REFUSED (the transport refused it:
 * --max-handshakes) or -ENOMEM; then ek_blocking_close all the same. */
int ek_blocking_open(struct ek_blocking *b, struct ek_server *srv, int fd,
                     const struct ek_transport *tp, char *buf, size_t size);

/* Results of ek_echo_blocking, besides -errno. */
enum {
    EK_ECHO_DONE = 0,    /* the client closed and got everything back */
    EK_ECHO_WOKEN = 1,   /* wake_fd became readable; call again to resume */
    EK_ECHO_TIMEOUT = 2, /* deadline_ms passed; call again to resume */
    EK_ECHO_IDLE = 3,    /* nothing moved for b->idle_ms: close it */
    EK_ECHO_REFUSED = 4, /* PROXY header bad, late or refused, the TLS
                            handshake late, or over --max-handshakes:
                            close */
};

/* Echoes on fd until the client closes, or wake_fd (if >= 0) becomes
 * readable, or deadline_ms (CLOCK_MONOTONIC ms, -1 for none) or the idle
 * timeout passes. fd may be blocking. Counts into the server's shared
 * counters with atomic adds (many threads or processes share them). */
int ek_echo_blocking(int fd, struct ek_blocking *b, int wake_fd,
                     int64_t deadline_ms);

/* Ends the connection after ek_echo_blocking's last result rc (or
 * ek_blocking_open's error): closes fd, frees b's state and counts an idle
 * close. Returns how the connection ended for ek_admit_conn_done: 0, or
 * the -errno that ended it. */
int ek_blocking_close(struct ek_blocking *b, int fd, int rc);

#endif
