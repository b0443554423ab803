/*
 * ek_addr: the address syntax users type, and the resolved socket addresses.
 *
 *   HOST:PORT        localhost:50000, 127.0.0.1:0, example.org:7
 *   [V6ADDR]:PORT    [::1]:50000, [::]:7
 *   *:PORT, :PORT    every local address (0.0.0.0 and ::)
 *   unix:PATH        a unix stream socket; unix:@NAME is Linux's abstract
 *                    namespace (no file)
 *   udp:HOST:PORT    the same over UDP (datagrams); tcp:HOST:PORT says TCP,
 *                    the default, explicitly
 *   tls:HOST:PORT    TLS over TCP
 *
 * PORT is decimal, 0..65535; 0 asks the kernel for a free port (listening
 * only). An IPv6 address must be in brackets, so "::1:50000" is refused with
 * a hint rather than guessed at.
 */
#ifndef EK_ADDR_H
#define EK_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

#define EK_HOST_MAX 256
#define EK_ADDRSTR_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) + 16)

enum ek_addr_kind { EK_ADDR_INET, EK_ADDR_UNIX };

/* An address as written, before name resolution. */
struct ek_addr_spec {
    enum ek_addr_kind kind;
    char host[EK_HOST_MAX]; /* EK_ADDR_INET; "" means every local address */
    uint16_t port;          /* EK_ADDR_INET */
    bool udp;               /* EK_ADDR_INET: "udp:" */
    bool tls;               /* EK_ADDR_INET: "tls:" */
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* EK_ADDR_UNIX */
};

/* A resolved address, ready for bind(2) or connect(2). */
struct ek_sockaddr {
    struct sockaddr_storage ss;
    socklen_t len;
};

/* Parses text. Returns 0, or -EINVAL with *why describing the problem. */
int ek_addr_parse(const char *text, struct ek_addr_spec *out, const char **why);

/* Resolves spec into *out (malloc'd, *n entries, duplicates removed, in
 * getaddrinfo's order). passive selects wildcard addresses for an empty
 * host. Returns 0, or a negative EAI_* code from getaddrinfo(3) (print it
 * with gai_strerror), or EAI_MEMORY. */
int ek_addr_resolve(const struct ek_addr_spec *spec, bool passive,
                    struct ek_sockaddr **out, size_t *n);

/* Formats as the user would write it: "127.0.0.1:50000", "[::1]:50000",
 * "unix:/run/echo.sock", "unix:@name". Always NUL-terminates. */
void ek_addr_format(const struct sockaddr *sa, socklen_t len, char *buf,
                    size_t size);

#endif
