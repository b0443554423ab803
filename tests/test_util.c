/* Unit test of the command-line number parsers, the timeouts, SipHash
 * and ek_close_all_but. */
#include "check.h"
#include "ek_platform.h"
#include "ek_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

static void test_uint(void)
{
    uint64_t v;
    const char *why;
    CHECK(ek_parse_uint("42", 0, 100, &v, &why) == 0 && v == 42);
    CHECK(ek_parse_uint("0", 0, 100, &v, &why) == 0 && v == 0);
    CHECK(ek_parse_uint("101", 0, 100, &v, &why) == -ERANGE);
    CHECK_CONTAINS(why, "between 0 and 100");
    CHECK(ek_parse_uint("0", 1, UINT64_MAX, &v, &why) == -ERANGE);
    CHECK_CONTAINS(why, "at least 1");
    const char *bad[] = {"", "-1", "+1", " 1", "1 ", "1x", "0x10", "1.5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(ek_parse_uint(bad[i], 0, 100, &v, &why) == -EINVAL);
    CHECK(ek_parse_uint("99999999999999999999999", 0, UINT64_MAX, &v, &why) ==
          -ERANGE);
}

static void test_size(void)
{
    uint64_t v;
    const char *why;
    struct {
        const char *s;
        uint64_t want;
    } ok[] = {{"1", 1},           {"256K", 262144}, {"256k", 262144},
              {"256KiB", 262144}, {"1m", 1048576},  {"1MB", 1048576},
              {"2G", 2147483648}, {"7b", 7}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        CHECK(ek_parse_size(ok[i].s, 1, UINT64_MAX, &v, &why) == 0);
        CHECK_INT(v, ==, ok[i].want);
    }
    CHECK(ek_parse_size("10X", 1, UINT64_MAX, &v, &why) == -EINVAL);
    CHECK(ek_parse_size("K", 1, UINT64_MAX, &v, &why) == -EINVAL);
    CHECK(ek_parse_size("2G", 1, 1 << 30, &v, &why) == -ERANGE);
    CHECK(ek_parse_size("0", 1, 100, &v, &why) == -ERANGE);
    CHECK(ek_parse_size("99999999999G", 1, UINT64_MAX, &v, &why) == -ERANGE);
}

static void test_seconds(void)
{
    int64_t ms;
    const char *why;
    CHECK(ek_parse_seconds("10", 86400000, &ms, &why) == 0 && ms == 10000);
    CHECK(ek_parse_seconds("0", 86400000, &ms, &why) == 0 && ms == 0);
    CHECK(ek_parse_seconds("0.25", 86400000, &ms, &why) == 0 && ms == 250);
    CHECK(ek_parse_seconds("1.5", 86400000, &ms, &why) == 0 && ms == 1500);
    CHECK(ek_parse_seconds("0.0001", 86400000, &ms, &why) == 0 && ms == 1);
    CHECK(ek_parse_seconds("2.0000000001", 86400000, &ms, &why) == 0 &&
          ms == 2000);
    CHECK(ek_parse_seconds("86401", 86400000, &ms, &why) == -ERANGE);
    int64_t us;
    CHECK(ek_parse_seconds_us("0.0005", 3600000000, &us, &why) == 0 &&
          us == 500);
    CHECK(ek_parse_seconds_us("1.000001", 3600000000, &us, &why) == 0 &&
          us == 1000001);
    CHECK(ek_parse_seconds_us("0.0000009", 3600000000, &us, &why) == 0 &&
          us == 0);
    CHECK(ek_parse_seconds_us("3601", 3600000000, &us, &why) == -ERANGE);
    const char *bad[] = {"", "-1", "1.", ".5", "1s", "1e3", "one"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(ek_parse_seconds(bad[i], 86400000, &ms, &why) == -EINVAL);
}

static void test_timeouts(void)
{
    CHECK_INT(ek_timeout_min(-1, 5), ==, 5);
    CHECK_INT(ek_timeout_min(5, -1), ==, 5);
    CHECK_INT(ek_timeout_min(3, 5), ==, 3);
    CHECK_INT(ek_timeout_min(-1, -1), ==, -1);
    CHECK_INT(ek_timeout_until(-1), ==, -1);
    CHECK_INT(ek_timeout_until(ek_now_ms() - 10), ==, 0);
    int t = ek_timeout_until(ek_now_ms() + 5000);
    CHECK(t > 4000 && t <= 5000);
}

/* The reference vectors of the SipHash paper (appendix A; key 00..0f,
 * message 00..0e, and the empty message). */
static void test_siphash(void)
{
    const uint64_t key[2] = {0x0706050403020100ULL, 0x0f0e0d0c0b0a0908ULL};
    unsigned char msg[15];
    for (unsigned i = 0; i < sizeof(msg); i++)
        msg[i] = (unsigned char)i;
    CHECK(ek_siphash(msg, 15, key) == 0xa129ca6149be45e5ULL);
    CHECK(ek_siphash(msg, 0, key) == 0x726fdb47dd0e0e31ULL);
    CHECK(ek_siphash(msg, 8, key) == 0x93f5f5799a932462ULL);
}

/* A forked child keeps what it is told to keep and nothing else
 * (ek_close_all_but, the process model's children). */
static void test_close_all_but(void)
{
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        int fds[12];
        for (int i = 0; i < 12; i++)
            if ((fds[i] = dup(2)) < 0)
                _exit(2);
        const int keep[] = {fds[9], fds[2], fds[5]};
        ek_close_all_but(keep, 3);
        for (int i = 0; i < 12; i++) {
            bool open = fcntl(fds[i], F_GETFD) >= 0;
            if (open != (i == 2 || i == 5 || i == 9))
                _exit(3);
        }
        _exit(fcntl(2, F_GETFD) >= 0 ? 0 : 4); /* stdio stays */
    }
    int st;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECK(WIFEXITED(st));
    CHECK_INT(WEXITSTATUS(st), ==, 0);
}

int main(void)
{
    test_close_all_but();
    test_siphash();
    test_uint();
    test_size();
    test_seconds();
    test_timeouts();
    printf("PASS: util\n");
    return 0;
}
