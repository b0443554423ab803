/*
 * itest_logs: --log-format json, checked line by line.
 */
#include "check.h"
#include "itest.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void case_log_json(void)
{
    struct h_server s;
    const char *args[] = {"--listen", "127.0.0.1:0", "--log-format",
                          "json",     "-v",          NULL};
    CHECK_INT(h_server_start(&s, NULL, args, 1, 0), ==, 0);
    int fd = h_connect_or_die(s.addrs[0]);
    CHECK(quick_echo(fd, 81, 5000));
    close(fd);
    CHECK(kill(s.pid, SIGUSR1) == 0);
    CHECK(log_shows(&s, "stats: ", 5000));
    stop_ok(&s);

    static char log[1 << 16];
    snprintf(log, sizeof(log), "%s", h_server_log(&s));
    int lines = 0;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        if (!h_json_valid(line)) {
            fprintf(stderr, "not JSON: %s\n", line);
            exit(1);
        }
        CHECK(strncmp(line, "{\"ts\":\"", 7) == 0);
        CHECK_CONTAINS(line, "\"level\":\"");
        CHECK_CONTAINS(line, "\"msg\":\"");
        lines++;
    }
    printf("log-format json: %d lines, each one JSON object\n", lines);
    CHECK_INT(lines, >=, 5); /* start, connection open/close, stats, exit */
}
