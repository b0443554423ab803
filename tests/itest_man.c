/*
 * itest_man: the man page and --help say the same: every long option of
 * serve, send, ping, bench and bench merge --help is in the man page, and
 * every one its sections document is real.
 */
#include "check.h"
#include "itest.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends each "--long-option" in text to list (no duplicates). */
static size_t long_options(const char *text, char list[][40], size_t n,
                           size_t max)
{
    for (const char *p = strstr(text, "--"); p != NULL;
         p = strstr(p + 2, "--")) {
        size_t len = 2;
        while ((p[len] >= 'a' && p[len] <= 'z') || p[len] == '-')
            len++;
        while (len > 2 && p[len - 1] == '-')
            len--;
        if (len < 4 || len >= 40 || (p > text && p[-1] == '-'))
            continue;
        bool seen = false;
        for (size_t i = 0; i < n && !seen; i++)
            seen = strncmp(list[i], p, len) == 0 && list[i][len] == '\0';
        if (!seen && n < max) {
            memcpy(list[n], p, len);
            list[n++][len] = '\0';
        }
    }
    return n;
}

/* The man page with its "\-" escapes turned into "-". */
static char *man_text(void)
{
    static char text[1 << 17];
    char *raw = malloc(sizeof(text));
    CHECK(raw != NULL);
    size_t n = read_source_file("docs/echokit.1", raw, sizeof(text));
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        if (raw[i] == '\\' && i + 1 < n && raw[i + 1] == '-')
            continue; /* "\-" is a hyphen */
        text[j++] = raw[i];
    }
    text[j] = '\0';
    free(raw);
    return text;
}

/* The text of man section `name` (up to the next .SH). */
static char *man_section(const char *man, const char *name, char *out,
                         size_t size)
{
    char head[64];
    snprintf(head, sizeof(head), "\n.SH %s\n", name);
    const char *s = strstr(man, head);
    CHECK(s != NULL);
    s += strlen(head);
    const char *e = strstr(s, "\n.SH ");
    size_t len = e ? (size_t)(e - s) : strlen(s);
    CHECK(len < size);
    memcpy(out, s, len);
    out[len] = '\0';
    return out;
}

void case_help_matches_man(void)
{
    static const char *const cmds[][2] = {{"serve", "SERVE OPTIONS"},
                                          {"send", "SEND"},
                                          {"ping", "PING"},
                                          {"bench", "BENCH"}};
    const char *man = man_text();
    static char section[1 << 16];
    int checked = 0;
    for (size_t c = 0; c < 4; c++) {
        struct h_run r;
        const char *argv[] = {cmds[c][0], "--help", NULL};
        CHECK_INT(h_run_echokit(argv, -1, 10000, &r), ==, 0);
        char help[112][40], doc[112][40];
        size_t nh = long_options(r.out, help, 0, 112);
        if (strcmp(cmds[c][0], "bench") == 0) { /* its section has merge's */
            const char *merge[] = {"bench", "merge", "--help", NULL};
            CHECK_INT(h_run_echokit(merge, -1, 10000, &r), ==, 0);
            nh = long_options(r.out, help, nh, 112);
        }
        size_t nd =
            long_options(man_section(man, cmds[c][1], section, sizeof(section)),
                         doc, 0, 112);
        for (size_t i = 0; i < nh; i++) { /* every option documented */
            if (strstr(man, help[i]) == NULL) {
                fprintf(stderr, "%s --help has %s; the man page does not\n",
                        cmds[c][0], help[i]);
                exit(1);
            }
            checked++;
        }
        for (size_t i = 0; i < nd; i++) { /* and every documented one real */
            bool found = strcmp(doc[i], "--daemon") == 0; /* "no --daemon" */
            for (size_t k = 0; k < nh && !found; k++)
                found = strcmp(doc[i], help[k]) == 0;
            if (!found) {
                fprintf(stderr,
                        "man page section %s has %s; %s --help does "
                        "not\n",
                        cmds[c][1], doc[i], cmds[c][0]);
                exit(1);
            }
        }
    }
    printf("help vs man: %d options of serve, send, ping, bench in both\n",
           checked);
}
