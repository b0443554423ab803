/*
 * ek_cli: the subcommands, and what they share at the command-line edge.
 *
 * Exit statuses follow sysexits(3); see the man page for the full table.
 */
#ifndef EK_CLI_H
#define EK_CLI_H

#include "ek_addr.h"
#include "ek_conn.h"

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Each takes argv with argv[0] = the subcommand name. */
int ek_cmd_serve(int argc, char **argv);
int ek_cmd_send(int argc, char **argv);
int ek_cmd_ping(int argc, char **argv);
int ek_cmd_bench(int argc, char **argv);
int ek_cmd_bench_merge(int argc, char **argv); /* argv[0] = "merge" */
int ek_cmd_completion(int argc, char **argv);

/* Each command's options, as getopt_long takes them: the one table both
 * the parser and `echokit completion` read, so that completions cannot
 * drift from what is accepted (a test checks them against --help). */
extern const struct option ek_serve_options[], ek_send_options[],
    ek_ping_options[], ek_bench_options[], ek_bench_merge_options[],
    ek_completion_options[];
extern const char ek_serve_shortopts[], ek_send_shortopts[],
    ek_ping_shortopts[], ek_bench_shortopts[], ek_bench_merge_shortopts[],
    ek_completion_shortopts[];

/* What a command takes after its options, for completion. */
enum ek_operands {
    EK_OPERANDS_ADDRESS, /* an echo server's address */
    EK_OPERANDS_NONE,
    EK_OPERANDS_FILES,
    EK_OPERANDS_SHELL, /* bash, zsh or fish */
};

struct ek_command {
    const char *name;    /* as typed: "serve", "bench merge" */
    const char *summary; /* its line in `echokit --help` */
    int (*run)(int argc, char **argv);
    const struct option *options; /* ends with a NULL name */
    const char *shortopts;
    enum ek_operands operands;
};

/* Every command, the ones under another ("bench merge") right after it;
 * ends with a NULL name. main() dispatches through it. */
extern const struct ek_command ek_commands[];

/* --version: the version, then what the optional features are built with
 * or why this build has none (static musl build, uring model, TLS). */
void ek_print_version(void);
/* One line, "TLS: built with OpenSSL 3.0.17" or "TLS: not in this build:
 * WHY" (--version, serve --io list). */
void ek_print_tls_support(void);

/* "echokit: <cmd>: <problem>" plus "Try 'echokit <cmd> --help'." on
 * stderr; returns EX_USAGE for `return ek_usage_error(...)`. */
int ek_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The usage error for what getopt_long (with opterr = 0 and a leading
 * ':' in optstring) returned as c: ':' for a missing value, anything else
 * for an unknown option. Returns EX_USAGE. */
int ek_option_error(const char *cmd, int c, char **argv);

struct ek_sockopts;

/* The client side of send, ping and bench: parses text (HOST:PORT,
 * [IPV6]:PORT, unix:PATH), resolves it and connects to each address in
 * turn until one answers, within timeout_ms in all, with the socket
 * options o (only to addresses of --source's family, if given). Returns 0
 * with *fd (a non-blocking socket) and, if peer is not NULL, the address
 * that answered; or, after printing why, an exit status: 64 bad address
 * (or options that cannot apply to it), 68 host not found, 69 refused or
 * unreachable, 71 an option the kernel refused, 75 timed out. */
int ek_client_connect(const char *cmd, const char *text,
                      const struct ek_sockopts *o, int64_t timeout_ms, int *fd,
                      char *peer, size_t peer_size);

/* The same over UDP: a connected (so that only the server's datagrams
 * arrive, and ICMP port unreachable reads as ECONNREFUSED) non-blocking
 * socket to the first address text resolves to ("udp:" optional) of
 * --source's family. */
int ek_client_connect_udp(const char *cmd, const char *text,
                          const struct ek_sockopts *o, int *fd, char *peer,
                          size_t peer_size);

/* Whether text names a UDP address ("udp:HOST:PORT"). */
bool ek_addr_text_is_udp(const char *text);

/* ---- socket options in the clients (send, ping, bench) --------------- */

/* --source ADDR|CIDR|FIRST-LAST, --bind-dev IFACE, --tos N, --dscp
 * NAME|N, --mark N, --cc ALGO, --mss N: ek_sockopt.h says what each
 * does. */
enum {
    EK_OPT_SOURCE = 2100, /* above every command's own, and TLS's */
    EK_OPT_BIND_DEV,
    EK_OPT_TOS,
    EK_OPT_DSCP,
    EK_OPT_MARK,
    EK_OPT_CC,
    EK_OPT_MSS,
};

/* Their entries in a getopt_long table. */
#define EK_CLIENT_SOCK_LONGOPTS                                                \
    {"source", required_argument, NULL, EK_OPT_SOURCE},                        \
        {"bind-dev", required_argument, NULL, EK_OPT_BIND_DEV},                \
        {"tos", required_argument, NULL, EK_OPT_TOS},                          \
        {"dscp", required_argument, NULL, EK_OPT_DSCP},                        \
        {"mark", required_argument, NULL, EK_OPT_MARK},                        \
        {"cc", required_argument, NULL, EK_OPT_CC},                            \
    {                                                                          \
        "mss", required_argument, NULL, EK_OPT_MSS                             \
    }

/* Prints their lines of --help, descriptions from column `column`. */
void ek_client_sock_usage(int column);

/* Takes option c with its value arg into *o (which starts as
 * EK_SOCKOPTS_NONE). Returns 0, 64 after saying why (a bad value, --tos
 * with --dscp, an interface that does not exist), or -1 when c is not one
 * of them. */
int ek_client_sock_option(const char *cmd, struct ek_sockopts *o, int c,
                          const char *arg);

/* Whether o can apply to a socket of this family (AF_UNIX included), TCP
 * if stream: tries each option on a socket made for the purpose, so that
 * the one the kernel refuses can be named. Returns 0, or an exit status
 * after saying why: 64 options that cannot apply (--source of the other
 * family, --cc on UDP, any on a unix socket), 71 refused by the kernel
 * (an unknown congestion control, --mark without CAP_NET_ADMIN, a source
 * address not on this host). */
int ek_client_sockopts_check(const char *cmd, const struct ek_sockopts *o,
                             int family, bool stream);

/* ---- TLS in the clients (send, ping, bench) -------------------------- */

struct ek_client_tls;

/* One of the options every client takes, TLS's or the socket's (below
 * and above): 0, an exit status, or -1 when c is neither. */
int ek_client_option(const char *cmd, struct ek_client_tls *t,
                     struct ek_sockopts *o, int c, const char *arg);

#include "ek_tls.h"

/* Their TLS options: --tls (or a tls:HOST:PORT address), --tls-ca FILE,
 * --insecure, --sni NAME, --tls-cert FILE, --tls-key FILE, --tls-alpn
 * LIST, --allow-truncation, and bench's --tls-resume. */
enum {
    EK_OPT_TLS = 2000, /* above every command's own long options */
    EK_OPT_TLS_CA,
    EK_OPT_INSECURE,
    EK_OPT_SNI,
    EK_OPT_TLS_CERT,
    EK_OPT_TLS_KEY,
    EK_OPT_TLS_ALPN,
    EK_OPT_ALLOW_TRUNCATION,
    EK_OPT_TLS_RESUME, /* the last: bench's alone */
};

/* Their entries in a getopt_long table (bench adds --tls-resume). */
#define EK_CLIENT_TLS_LONGOPTS                                                 \
    {"tls", no_argument, NULL, EK_OPT_TLS},                                    \
        {"tls-ca", required_argument, NULL, EK_OPT_TLS_CA},                    \
        {"insecure", no_argument, NULL, EK_OPT_INSECURE},                      \
        {"sni", required_argument, NULL, EK_OPT_SNI},                          \
        {"tls-cert", required_argument, NULL, EK_OPT_TLS_CERT},                \
        {"tls-key", required_argument, NULL, EK_OPT_TLS_KEY},                  \
        {"tls-alpn", required_argument, NULL, EK_OPT_TLS_ALPN},                \
    {                                                                          \
        "allow-truncation", no_argument, NULL, EK_OPT_ALLOW_TRUNCATION         \
    }

/* Prints their lines of --help, descriptions from column `column`;
 * with_resume: bench's --tls-resume too. */
void ek_client_tls_usage(int column, bool with_resume);

struct ek_client_tls {
    bool on;    /* --tls, or a tls: address */
    bool asked; /* any option of TLS's but --tls */
    struct ek_tls_client_options opt;
};

/* Takes option c with its value arg. Returns 0, an exit status (bad
 * value), or -1 when c is not one of the TLS options. */
int ek_client_tls_option(const char *cmd, struct ek_client_tls *t, int c,
                         const char *arg);

/* After the options, with the server's address: whether TLS is on, and
 * if so, its context in *out (NULL otherwise). Returns 0 or, after
 * printing why, an exit status: 64 an option without --tls, or no name
 * to verify (unix:, :PORT) without --sni or --insecure; 69 a build
 * without TLS; 78 an unusable certificate or key. */
int ek_client_tls_start(const char *cmd, struct ek_client_tls *t,
                        const char *server, struct ek_tls_client **out);

/* Frees what ek_client_tls_start made (NULL: nothing). */
void ek_client_tls_free(struct ek_tls_client *tc);

struct ek_addr_spec;
struct ek_conn;

/* The host part of the server's address (in *spec), which TLS verifies
 * and sends as SNI: "" for one without a host (:PORT), NULL for unix: or
 * an address that does not parse. */
const char *ek_client_host(const char *server, struct ek_addr_spec *spec);

/* Makes *c the connection to server (the text given, already connected
 * on fd): the plain transport, or TLS's client side when tc is not NULL
 * (the handshake starts with the first read or write). Returns 0 or
 * EX_OSERR (out of memory, said). ek_conn_release frees it. */
int ek_client_conn_open(const char *cmd, struct ek_tls_client *tc,
                        struct ek_conn *c, int fd, const char *server);

/* Completes c's TLS handshake (nothing to do for a plain connection)
 * within timeout_ms, and describes it into what (when not NULL: "TLSv1.3
 * TLS_AES_128_GCM_SHA256", "" for plain). Returns 0, or an exit status
 * after saying why ("CMD: PEER: TLS: ..."): 75 timed out, 76 the
 * handshake failed, 69 the connection did. */
int ek_client_handshake(const char *cmd, struct ek_conn *c, int fd,
                        const char *peer, int64_t timeout_ms, char *what,
                        size_t what_size);

/* A client's connection to its server, made the one way send, ping and
 * bench make it (ek_client_session_open). */
struct ek_client_session {
    int fd;              /* non-blocking; -1: none */
    struct ek_conn conn; /* its transport (not for UDP) */
    bool udp;
    char peer[EK_ADDRSTR_MAX]; /* the address that answered */
};

/* Connects cmd's client to server: over UDP when udp, else a stream (TCP,
 * unix) with its transport, TLS's when tc is not NULL, whose handshake is
 * done within timeout_ms and described into what (ek_client_handshake).
 * Returns 0, or an exit status after saying why (ek_client_connect's,
 * ek_client_handshake's), with nothing left open. The caller owns s->fd
 * and s->conn then: ek_client_session_close frees both. */
int ek_client_session_open(const char *cmd, const char *server,
                           const struct ek_sockopts *o, bool udp,
                           struct ek_tls_client *tc, int64_t timeout_ms,
                           char *what, size_t what_size,
                           struct ek_client_session *s);

/* Releases s's transport and closes its socket. */
void ek_client_session_close(struct ek_client_session *s);

/* Why c's TLS failed (its last read or write returned -EPROTO), or NULL
 * when c is not TLS. */
const char *ek_client_tls_error(const struct ek_conn *c);

/* Whether that failure was the server's FIN without its close_notify
 * (ek_tls_truncated): the stream may be cut short. */
bool ek_client_tls_truncated(const struct ek_conn *c);

/* Exit status of a failed TLS handshake: EX_PROTOCOL (76). */
#define EK_EXIT_TLS 76

#endif
