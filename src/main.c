/*
 * echokit: the echo service done properly. main() only dispatches to a
 * subcommand; each lives in its own cmd_*.c with its own options, named
 * in ek_commands (which `echokit completion` reads too).
 */
#include "ek_cli.h"

#include <stdio.h>
#include <string.h>
#include <sysexits.h>

const struct ek_command ek_commands[] = {
    {"serve", "run an echo server with a choice of I/O models", ek_cmd_serve,
     ek_serve_options, ek_serve_shortopts, EK_OPERANDS_NONE},
    {"send", "send a message, or stdin, to an echo server and print the echo",
     ek_cmd_send, ek_send_options, ek_send_shortopts, EK_OPERANDS_ADDRESS},
    {"ping", "measure round trips to an echo server, like ping(8)", ek_cmd_ping,
     ek_ping_options, ek_ping_shortopts, EK_OPERANDS_ADDRESS},
    {"bench", "load an echo server and measure it: rate, latency, memory",
     ek_cmd_bench, ek_bench_options, ek_bench_shortopts, EK_OPERANDS_ADDRESS},
    {"bench merge", "add up bench runs made at once on several hosts",
     ek_cmd_bench_merge, ek_bench_merge_options, ek_bench_merge_shortopts,
     EK_OPERANDS_FILES},
    {"completion", "print the bash, zsh or fish completion script",
     ek_cmd_completion, ek_completion_options, ek_completion_shortopts,
     EK_OPERANDS_SHELL},
    {NULL, NULL, NULL, NULL, NULL, EK_OPERANDS_NONE},
};

static void usage(FILE *to)
{
    fputs("usage: echokit <command> [options] [arguments]\n"
          "\n"
          "The echo service (RFC 862) done properly.\n"
          "\n"
          "commands:\n",
          to);
    for (const struct ek_command *c = ek_commands; c->name != NULL; c++)
        fprintf(to, "  %-12s %s\n", c->name, c->summary);
    fputs("\n"
          "`echokit <command> --help` shows a command's options; "
          "`echokit --version`\n"
          "prints the version. See echokit(1).\n",
          to);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EX_USAGE;
    }
    const char *cmd = argv[1];
    /* "bench merge" is bench's to dispatch: only one-word names here. */
    for (const struct ek_command *c = ek_commands; c->name != NULL; c++)
        if (strchr(c->name, ' ') == NULL && strcmp(cmd, c->name) == 0)
            return c->run(argc - 1, argv + 1);
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 ||
        strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
        ek_print_version();
        return 0;
    }
    fprintf(stderr, "echokit: unknown command '%s'\n", cmd);
    fputs("Try 'echokit --help'.\n", stderr);
    return EX_USAGE;
}
