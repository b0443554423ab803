/*
 * ek_cli: the subcommands, and what they share at the command-line edge.
 *
 * Exit statuses follow sysexits(3); see the man page for the full table.
 */
#ifndef EK_CLI_H
#define EK_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Each takes argv with argv[0] = the subcommand name. */
int ek_cmd_serve(int argc, char **argv);
int ek_cmd_send(int argc, char **argv);
int ek_cmd_ping(int argc, char **argv);
int ek_cmd_bench(int argc, char **argv);

void ek_print_version(void);

/* "echokit: <cmd>: <problem>" plus "Try 'echokit <cmd> --help'." on
 * stderr; returns EX_USAGE for `return ek_usage_error(...)`. */
int ek_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The usage error for what getopt_long (with opterr = 0 and a leading
 * ':' in optstring) returned as c: ':' for a missing value, anything else
 * for an unknown option. Returns EX_USAGE. */
int ek_option_error(const char *cmd, int c, char **argv);

/* The client side of send, ping and bench: parses text (HOST:PORT,
 * [IPV6]:PORT, unix:PATH), resolves it and connects to each address in
 * turn until one answers, within timeout_ms in all. Returns 0 with *fd (a
 * non-blocking socket) and, if peer is not NULL, the address that
 * answered; or, after printing why, an exit status: 64 bad address, 68
 * host not found, 69 refused or unreachable, 75 timed out. */
int ek_client_connect(const char *cmd, const char *text, int64_t timeout_ms,
                      int *fd, char *peer, size_t peer_size);

/* The same over UDP: a connected (so that only the server's datagrams
 * arrive, and ICMP port unreachable reads as ECONNREFUSED) non-blocking
 * socket to the first address text resolves to ("udp:" optional). */
int ek_client_connect_udp(const char *cmd, const char *text, int *fd,
                          char *peer, size_t peer_size);

/* Whether text names a UDP address ("udp:HOST:PORT"). */
bool ek_addr_text_is_udp(const char *text);

#endif
