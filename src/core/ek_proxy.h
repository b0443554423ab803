/*
 * ek_proxy: the PROXY protocol header (HAProxy, versions 1 and 2) that a
 * load balancer puts before the client's bytes to tell the server who the
 * client really is.
 *
 * The parser is fed the connection's first bytes as they arrive, in any
 * pieces, and consumes exactly the header: it never takes a byte past the
 * end the header declares (v1: its CRLF; v2: 16 bytes plus its length
 * field), so what follows in the same read is the client's data, echoed as
 * usual. Strict: anything but a well-formed header is refused, and so is a
 * connection whose first bytes are not a header at all.
 *
 * Accepted: v1 "PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n" (at most 107
 * bytes) and "PROXY UNKNOWN ...\r\n"; v2 with command PROXY over TCP
 * (IPv4, IPv6) or unix stream, or command LOCAL (health checks: no
 * address), TLVs skipped, at most EK_PROXY_V2_MAX bytes in all.
 */
#ifndef EK_PROXY_H
#define EK_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define EK_PROXY_V1_MAX 107
/* A v2 header is 16 bytes and up to 65535 more; TLVs of a few hundred
 * bytes are the most a load balancer sends (HAProxy: SSL details, unique
 * id). Anything longer is refused rather than buffered. */
#define EK_PROXY_V2_MAX 4096
/* What the parser keeps: a v1 line, or v2's fixed part and addresses (the
 * largest: unix, 216 bytes); TLV bytes beyond are counted, not kept. */
#define EK_PROXY_KEEP 232

/* How long a connection may take to send its header. */
#define EK_PROXY_HEADER_MS 5000

struct ek_proxy_parser {
    uint8_t buf[EK_PROXY_KEEP];
    uint16_t len;   /* bytes in buf */
    uint32_t total; /* v2: the whole header's length once known, else 0 */
    uint32_t seen;  /* v2: header bytes consumed so far */
};

struct ek_proxy_result {
    int version; /* 1 or 2 */
    bool local;  /* LOCAL / UNKNOWN: no client address given */
    struct sockaddr_storage src, dst; /* when !local */
    socklen_t addr_len;
};

enum {
    EK_PROXY_MORE = 0, /* everything given was header: feed more */
    EK_PROXY_DONE = 1, /* *used bytes completed the header; *res is set */
    EK_PROXY_BAD = -1, /* not a valid header; *why says what */
};

/* Feeds n more bytes. Returns EK_PROXY_* with *used the bytes taken from
 * data (all n for MORE; up to the header's end for DONE). */
int ek_proxy_feed(struct ek_proxy_parser *p, const void *data, size_t n,
                  size_t *used, struct ek_proxy_result *res, const char **why);

#endif
