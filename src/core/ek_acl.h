/*
 * ek_acl: --allow and --deny, address-based access control.
 *
 * Rules are CIDR blocks ("10.0.0.0/8", "2001:db8::/32", or one address).
 * A peer is refused when it matches any --deny rule, or when there are
 * --allow rules and it matches none of them: deny wins, and without
 * --allow everyone not denied is let in. Order on the command line does
 * not matter. IPv4-mapped IPv6 peers (::ffff:a.b.c.d) are matched as the
 * IPv4 address they are. Unix-socket peers have no address and are never
 * refused by these rules (file permissions guard a unix socket).
 */
#ifndef EK_ACL_H
#define EK_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct ek_cidr {
    int family; /* AF_INET or AF_INET6 */
    uint8_t addr[16];
    unsigned prefix; /* bits that must match */
};

struct ek_acl {
    struct ek_cidr *allow, *deny;
    size_t nallow, ndeny;
};

/* Parses "ADDR" or "ADDR/PREFIX". Returns 0, or -EINVAL with *why set. */
int ek_cidr_parse(const char *text, struct ek_cidr *out, const char **why);

/* Adds a rule (allow or deny). Returns 0, or -ENOMEM. */
int ek_acl_add(struct ek_acl *acl, bool allow, const struct ek_cidr *rule);

/* Whether acl has any rule at all. */
static inline bool ek_acl_active(const struct ek_acl *acl)
{
    return acl != NULL && (acl->nallow > 0 || acl->ndeny > 0);
}

/* Whether a peer at sa may connect (or send a datagram). */
bool ek_acl_permits(const struct ek_acl *acl, const struct sockaddr *sa);

void ek_acl_free(struct ek_acl *acl);

#endif
