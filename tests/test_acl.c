/* Unit test of --allow/--deny: CIDR parsing and the matching rules. */
#include "check.h"
#include "ek_acl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

static struct sockaddr_storage peer(const char *text)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, text, &v4->sin_addr) == 1)
        v4->sin_family = AF_INET;
    else if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1)
        v6->sin6_family = AF_INET6;
    else
        CHECK(0 /* a test address that does not parse */);
    return ss;
}

static void rule(struct ek_acl *acl, bool allow, const char *text)
{
    struct ek_cidr c;
    const char *why = NULL;
    if (ek_cidr_parse(text, &c, &why) != 0) {
        fprintf(stderr, "'%s' refused: %s\n", text, why);
        exit(1);
    }
    CHECK(ek_acl_add(acl, allow, &c) == 0);
}

static bool permits(const struct ek_acl *acl, const char *addr)
{
    struct sockaddr_storage ss = peer(addr);
    return ek_acl_permits(acl, (struct sockaddr *)&ss);
}

static void test_parse(void)
{
    static const char *const bads[][2] = {
        {"", "expected"},
        {"/8", "expected"},
        {"10.0.0.0/", "missing prefix"},
        {"10.0.0.0/33", "in range"},
        {"10.0.0.0/8x", "in range"},
        {"::/129", "in range"},
        {"10.0.0.0/-1", "in range"},
        {"10.1.2.3/8", "beyond the prefix"},
        {"example.org", "not an IPv4 or IPv6"},
        {"10.0.0", "not an IPv4 or IPv6"},
        {"10.0.0.0/99999999999999999999", "in range"},
    };
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        struct ek_cidr c;
        const char *why = NULL;
        if (ek_cidr_parse(bads[i][0], &c, &why) == 0) {
            fprintf(stderr, "'%s' accepted\n", bads[i][0]);
            exit(1);
        }
        CHECK_CONTAINS(why, bads[i][1]);
    }
    struct ek_cidr c;
    const char *why;
    CHECK(ek_cidr_parse("192.168.0.0/16", &c, &why) == 0);
    CHECK_INT(c.family, ==, AF_INET);
    CHECK_INT(c.prefix, ==, 16);
    CHECK(ek_cidr_parse("::1", &c, &why) == 0);
    CHECK_INT(c.family, ==, AF_INET6);
    CHECK_INT(c.prefix, ==, 128);
    CHECK(ek_cidr_parse("0.0.0.0/0", &c, &why) == 0);
    CHECK_INT(c.prefix, ==, 0);
}

static void test_rules(void)
{
    struct ek_acl none = {0};
    CHECK(permits(&none, "203.0.113.9"));

    /* Deny only: everyone else is in. */
    struct ek_acl deny = {0};
    rule(&deny, false, "10.0.0.0/8");
    CHECK(!permits(&deny, "10.200.1.1"));
    CHECK(permits(&deny, "11.0.0.1"));
    CHECK(permits(&deny, "::1"));
    /* An IPv4-mapped peer is its IPv4 address. */
    CHECK(!permits(&deny, "::ffff:10.0.0.1"));
    ek_acl_free(&deny);

    /* Allow: only those; deny wins inside them. */
    struct ek_acl acl = {0};
    rule(&acl, true, "127.0.0.0/8");
    rule(&acl, true, "2001:db8::/32");
    rule(&acl, false, "127.0.0.2");
    rule(&acl, true, "192.168.1.128/25");
    CHECK(permits(&acl, "127.0.0.1"));
    CHECK(!permits(&acl, "127.0.0.2"));
    CHECK(!permits(&acl, "128.0.0.1"));
    CHECK(permits(&acl, "2001:db8:ffff::1"));
    CHECK(!permits(&acl, "2001:db9::1"));
    CHECK(!permits(&acl, "::1"));
    CHECK(permits(&acl, "192.168.1.200"));
    CHECK(!permits(&acl, "192.168.1.127"));

    /* Unix peers have no address: never refused. */
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    CHECK(ek_acl_permits(&acl, (struct sockaddr *)&un));
    ek_acl_free(&acl);
}

int main(void)
{
    test_parse();
    test_rules();
    puts("PASS: acl");
    return 0;
}
