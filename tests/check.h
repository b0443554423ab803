/*
 * check.h: the assertions of the test programs. Every test runs in its own
 * process (CTest), so a failed check prints both sides and exits 1; a test
 * that cannot run here says why and exits 77, which CTest reports as
 * skipped (SKIP_RETURN_CODE).
 */
#ifndef EK_CHECK_H
#define EK_CHECK_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EK_SKIP_STATUS 77

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,   \
                    #cond);                                                    \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

#define CHECK_INT(a, op, b)                                                    \
    do {                                                                       \
        long long ck_a = (long long)(a), ck_b = (long long)(b);                \
        if (!(ck_a op ck_b)) {                                                 \
            fprintf(stderr, "%s:%d: check failed: %s %s %s (%lld vs %lld)\n",  \
                    __FILE__, __LINE__, #a, #op, #b, ck_a, ck_b);              \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

#define CHECK_STR(a, b)                                                        \
    do {                                                                       \
        const char *ck_a = (a), *ck_b = (b);                                   \
        if (strcmp(ck_a, ck_b) != 0) {                                         \
            fprintf(stderr,                                                    \
                    "%s:%d: check failed: %s == %s\n  got:  \"%s\"\n"          \
                    "  want: \"%s\"\n",                                        \
                    __FILE__, __LINE__, #a, #b, ck_a, ck_b);                   \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

#define CHECK_CONTAINS(hay, needle)                                            \
    do {                                                                       \
        const char *ck_h = (hay), *ck_n = (needle);                            \
        if (strstr(ck_h, ck_n) == NULL) {                                      \
            fprintf(stderr, "%s:%d: check failed: \"%s\" not found in:\n%s\n", \
                    __FILE__, __LINE__, ck_n, ck_h);                           \
            exit(1);                                                           \
        }                                                                      \
    } while (0)

#define SKIP(...)                                                              \
    do {                                                                       \
        printf("SKIP: ");                                                      \
        printf(__VA_ARGS__);                                                   \
        printf("\n");                                                          \
        fflush(stdout);                                                        \
        exit(EK_SKIP_STATUS);                                                  \
    } while (0)

#endif
