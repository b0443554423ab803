/* Unit test of ek_json: the JSON checker the bench tests rely on (it must
 * reject what is not JSON, or those tests prove nothing), and the fields
 * `bench merge` reads. */
#include "check.h"
#include "ek_json.h"
#include "harness.h"

#include <errno.h>
#include <string.h>

int main(void)
{
    const char *good[] = {
        "{}",
        "[]",
        "0",
        "-1.5e3",
        "\"a\\n\\u00e9\"",
        "null",
        "true",
        " {\"a\":1,\"b\":[1,2,{\"c\":null}],\"d\":\"x\"}\n",
    };
    const char *bad[] = {
        "",
        "{",
        "{\"a\":}",
        "{\"a\":1,}",
        "[1 2]",
        "01",
        "1.",
        "-",
        "{'a':1}",
        "{\"a\":1}}",
        "\"tab\there\"",
        "nul",
        "{\"a\" 1}",
        "{\"a\":1} x",
        "\"\\x\"",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (!h_json_valid(good[i])) {
            fprintf(stderr, "valid JSON refused: %s\n", good[i]);
            return 1;
        }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (h_json_valid(bad[i])) {
            fprintf(stderr, "invalid JSON accepted: %s\n", bad[i]);
            return 1;
        }
    double v;
    CHECK(h_json_number("{\"a\":1,\"msgs\":42.5}", "msgs", &v) && v == 42.5);
    CHECK(!h_json_number("{\"latency_us\":null}", "latency_us", &v));
    CHECK(!h_json_number("{\"a\":1}", "b", &v));
    struct ek_json j;
    CHECK_INT(ek_json_parse("{\"msgs\":18446744073709551615,\"l\":{\"p99\":"
                            "1.5,\"x\":null},\"s\":\"HIST\",\"a\":[7,{\"b\":"
                            "true}],\"big\":18446744073709551616}",
                            &j),
              ==, 0);
    uint64_t u;
    CHECK(ek_json_u64(&j, "msgs", &u) && u == UINT64_MAX);
    CHECK(!ek_json_u64(&j, "big", &u));   /* past 2^64: not exact */
    CHECK(!ek_json_u64(&j, "l.p99", &u)); /* a fraction */
    CHECK(ek_json_double(&j, "l.p99", &v) && v == 1.5);
    CHECK(!ek_json_double(&j, "l.x", &v));
    CHECK(ek_json_u64(&j, "a.0", &u) && u == 7);
    CHECK(ek_json_get(&j, "a.1.b") != NULL);
    size_t len;
    const char *str = ek_json_string(&j, "s", &len);
    CHECK(str != NULL && len == 4 && memcmp(str, "HIST", 4) == 0);
    CHECK(ek_json_string(&j, "msgs", &len) == NULL);
    CHECK(ek_json_get(&j, "l") == NULL); /* objects are not fields */
    ek_json_free(&j);
    CHECK_INT(ek_json_parse("{\"a\":1,}", &j), ==, -EINVAL);
    ek_json_free(&j);
    printf("PASS: json\n");
    return 0;
}
