/*
 * Fuzz target: what users and scripts type: addresses (ek_addr_parse and
 * ek_addr_format), CIDR rules (ek_cidr_parse), numbers, sizes and seconds
 * (ek_util.h). None may crash, read past the string, or accept what it
 * then cannot represent.
 */
#include "ek_acl.h"
#include "ek_addr.h"
#include "ek_util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char text[512];
    if (size >= sizeof(text))
        return 0;
    memcpy(text, data, size);
    text[size] = '\0'; /* the parsers take C strings, as argv gives */

    const char *why = NULL;
    struct ek_addr_spec spec;
    if (ek_addr_parse(text, &spec, &why) == 0) {
        if (spec.kind == EK_ADDR_UNIX && strlen(spec.path) >= sizeof(spec.path))
            abort();
        if (spec.kind == EK_ADDR_INET && strlen(spec.host) >= sizeof(spec.host))
            abort();
    } else if (why == NULL) {
        abort();
    }

    struct ek_cidr rule;
    why = NULL;
    if (ek_cidr_parse(text, &rule, &why) == 0) {
        unsigned max = rule.family == AF_INET ? 32 : 128;
        if ((rule.family != AF_INET && rule.family != AF_INET6) ||
            rule.prefix > max)
            abort();
        struct ek_acl acl = {0};
        if (ek_acl_add(&acl, true, &rule) == 0) {
            struct sockaddr_storage ss = {0};
            ss.ss_family = (sa_family_t)rule.family;
            (void)ek_acl_permits(&acl, (struct sockaddr *)&ss);
        }
        ek_acl_free(&acl);
    } else if (why == NULL) {
        abort();
    }

    uint64_t v;
    int64_t ms;
    if (ek_parse_uint(text, 0, UINT64_MAX, &v, &why) != 0 && why == NULL)
        abort();
    if (ek_parse_size(text, 0, 1ull << 40, &v, &why) == 0 && v > (1ull << 40))
        abort();
    if (ek_parse_seconds(text, 86400 * 1000LL, &ms, &why) == 0 &&
        (ms < 0 || ms > 86400 * 1000LL))
        abort();
    return 0;
}
