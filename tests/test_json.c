/* Unit test of the harness's JSON checker, which the bench tests rely on:
 * it must reject what is not JSON, or those tests prove nothing. */
#include "check.h"
#include "harness.h"

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
    printf("PASS: json\n");
    return 0;
}
