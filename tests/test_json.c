/* Unit test of ek_json: the JSON checker the bench tests rely on (it must
 * reject what is not JSON, or those tests prove nothing), and the fields
 * `bench merge` reads. */
#include "check.h"
#include "ek_json.h"
#include "harness.h"

#include <errno.h>
#include <stdlib.h>
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
    char *str = ek_json_string(&j, "s");
    CHECK(str != NULL && strcmp(str, "HIST") == 0);
    free(str);
    CHECK(ek_json_string(&j, "msgs") == NULL);
    CHECK(ek_json_get(&j, "l") == NULL); /* objects are not fields */
    ek_json_free(&j);
    CHECK_INT(ek_json_parse("{\"a\":1,}", &j), ==, -EINVAL);
    ek_json_free(&j);

    /* Whitespace around the colon, escaped keys and values: the same
     * fields as written plainly (a review found the first two refused). */
    CHECK_INT(ek_json_parse("{ \"msgs\" : 5 , \"m\\u006fde\" : \"r\\/r\" ,"
                            "\"u\":\"\\u00e9\\ud83d\\ude00\\ud800x\\n\"}",
                            &j),
              ==, 0);
    CHECK(ek_json_u64(&j, "msgs", &u) && u == 5);
    str = ek_json_string(&j, "mode");
    CHECK(str != NULL && strcmp(str, "r/r") == 0);
    free(str);
    str = ek_json_string(&j, "u");
    CHECK(str != NULL &&
          strcmp(str, "\xc3\xa9\xf0\x9f\x98\x80\xef\xbf\xbdx\n") == 0);
    free(str);
    ek_json_free(&j);

    /* A file of millions of values is refused, not held. */
    size_t n = 70000;
    char *big = malloc(2 * n + 16);
    CHECK(big != NULL);
    size_t k = 0;
    big[k++] = '[';
    for (size_t i = 0; i < n; i++) {
        big[k++] = '0';
        big[k++] = i + 1 < n ? ',' : ']';
    }
    big[k] = '\0';
    CHECK_INT(ek_json_parse(big, &j), ==, -E2BIG);
    ek_json_free(&j);
    CHECK_INT(ek_json_parse(big, NULL), ==, 0); /* valid all the same */
    free(big);
    printf("PASS: json\n");
    return 0;
}
