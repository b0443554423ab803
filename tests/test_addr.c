/* Unit test of the address syntax (ek_addr_parse) and ek_addr_format. */
#include "check.h"
#include "ek_addr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>

struct good {
    const char *text;
    enum ek_addr_kind kind;
    const char *host_or_path;
    unsigned port;
};

static const struct good goods[] = {
    {"localhost:50000", EK_ADDR_INET, "localhost", 50000},
    {"127.0.0.1:0", EK_ADDR_INET, "127.0.0.1", 0},
    {"[::1]:7", EK_ADDR_INET, "::1", 7},
    {"[fe80::1%lo]:7", EK_ADDR_INET, "fe80::1%lo", 7},
    {"[::]:65535", EK_ADDR_INET, "::", 65535},
    {"*:80", EK_ADDR_INET, "", 80},
    {":80", EK_ADDR_INET, "", 80},
    {"example.org:7", EK_ADDR_INET, "example.org", 7},
    {"unix:/run/echo.sock", EK_ADDR_UNIX, "/run/echo.sock", 0},
    {"unix:rel/path", EK_ADDR_UNIX, "rel/path", 0},
    {"unix:@abstract", EK_ADDR_UNIX, "@abstract", 0},
};

struct bad {
    const char *text;
    const char *why_has;
};

static const struct bad bads[] = {
    {"", "missing port"},
    {"localhost", "missing port"},
    {"localhost:", "missing port"},
    {"localhost:http", "port must be"},
    {"localhost:65536", "port must be"},
    {"localhost:-1", "port must be"},
    {"localhost: 7", "port must be"},
    {"::1:7", "brackets"},
    {"[::1]", "missing port"},
    {"[::1]7", "missing port"},
    {"[::1:7", "missing ']'"},
    {"[]:7", "bad IPv6"},
    {"[1.2.3.4]:7", "bad IPv6"},
    {"[::g]:7", "bad IPv6"},
    {"unix:", "empty"},
    {"unix:@", "empty"},
    {"unix:/"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     "too long"},
};

static void test_parse(void)
{
    for (size_t i = 0; i < sizeof(goods) / sizeof(goods[0]); i++) {
        struct ek_addr_spec s;
        const char *why = NULL;
        if (ek_addr_parse(goods[i].text, &s, &why) != 0) {
            fprintf(stderr, "'%s' refused: %s\n", goods[i].text, why);
            exit(1);
        }
        CHECK_INT(s.kind, ==, goods[i].kind);
        if (s.kind == EK_ADDR_INET) {
            CHECK_STR(s.host, goods[i].host_or_path);
            CHECK_INT(s.port, ==, goods[i].port);
        } else {
            CHECK_STR(s.path, goods[i].host_or_path);
        }
    }
    for (size_t i = 0; i < sizeof(bads) / sizeof(bads[0]); i++) {
        struct ek_addr_spec s;
        const char *why = NULL;
        if (ek_addr_parse(bads[i].text, &s, &why) != -EINVAL) {
            fprintf(stderr, "'%s' accepted\n", bads[i].text);
            exit(1);
        }
        CHECK_CONTAINS(why, bads[i].why_has);
    }
}

static void check_roundtrip(const char *text)
{
    struct ek_addr_spec s;
    const char *why;
    struct ek_sockaddr *sa;
    size_t n;
    char out[EK_ADDRSTR_MAX];
    CHECK(ek_addr_parse(text, &s, &why) == 0);
    CHECK(ek_addr_resolve(&s, false, &sa, &n) == 0);
    CHECK_INT(n, ==, 1);
    ek_addr_format((struct sockaddr *)&sa[0].ss, sa[0].len, out, sizeof(out));
    CHECK_STR(out, text);
    free(sa);
}

static void test_resolve_and_format(void)
{
    check_roundtrip("127.0.0.1:50000");
    check_roundtrip("[::1]:7");
    check_roundtrip("unix:/tmp/x.sock");
    check_roundtrip("unix:@name");

    /* Wildcard for a listener: one address per family, no duplicates. */
    struct ek_addr_spec s;
    const char *why;
    struct ek_sockaddr *sa;
    size_t n;
    CHECK(ek_addr_parse("*:7", &s, &why) == 0);
    CHECK(ek_addr_resolve(&s, true, &sa, &n) == 0);
    CHECK(n >= 1 && n <= 2);
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            CHECK(sa[i].len != sa[j].len ||
                  memcmp(&sa[i].ss, &sa[j].ss, sa[i].len) != 0);
    free(sa);

    /* An abstract name's length counts only its bytes. */
    CHECK(ek_addr_parse("unix:@ab", &s, &why) == 0);
    CHECK(ek_addr_resolve(&s, false, &sa, &n) == 0);
    CHECK_INT(sa[0].len, ==, offsetof(struct sockaddr_un, sun_path) + 3);
    free(sa);
}

int main(void)
{
    test_parse();
    test_resolve_and_format();
    printf("PASS: addr\n");
    return 0;
}
