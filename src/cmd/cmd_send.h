/*
 * cmd_send: what the two halves of `echokit send` share: cmd_send.c (the
 * options, TCP, unix sockets) hands --udp and udp: addresses to
 * cmd_send_udp.c.
 */
#ifndef EK_CMD_SEND_H
#define EK_CMD_SEND_H

#include "ek_sockopt.h"

#include <stddef.h>
#include <stdint.h>

/* send --udp: message (len bytes) as one datagram, or, with message NULL,
 * stdin a read at a time after the first_len bytes already read into
 * first. Returns the exit status. */
int ek_send_udp(const char *server, const struct ek_sockopts *o,
                int64_t timeout_ms, const char *message, size_t len,
                const char *first, size_t first_len);

#endif
