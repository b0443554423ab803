/*
 * echokit: the echo service done properly. main() only dispatches to a
 * subcommand; each lives in its own cmd_*.c with its own options.
 */
#include "ek_cli.h"

#include <stdio.h>
#include <string.h>
#include <sysexits.h>

static const char usage_text[] =
    "usage: echokit <command> [options] [arguments]\n"
    "\n"
    "The echo service (RFC 862) done properly.\n"
    "\n"
    "commands:\n"
    "  serve   run an echo server with a choice of I/O models\n"
    "  send    send a message, or stdin, to an echo server and print the "
    "echo\n"
    "  ping    measure round trips to an echo server, like ping(8)\n"
    "  bench   load an echo server and measure it: rate, latency, memory\n"
    "          (bench merge: add up runs from several hosts)\n"
    "\n"
    "`echokit <command> --help` shows a command's options; "
    "`echokit --version`\n"
    "prints the version. See echokit(1).\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_text, stderr);
        return EX_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "serve") == 0)
        return ek_cmd_serve(argc - 1, argv + 1);
    if (strcmp(cmd, "send") == 0)
        return ek_cmd_send(argc - 1, argv + 1);
    if (strcmp(cmd, "ping") == 0)
        return ek_cmd_ping(argc - 1, argv + 1);
    if (strcmp(cmd, "bench") == 0)
        return ek_cmd_bench(argc - 1, argv + 1);
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 ||
        strcmp(cmd, "help") == 0) {
        fputs(usage_text, stdout);
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
