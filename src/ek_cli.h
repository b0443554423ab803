/*
 * ek_cli: the subcommands, and what they share at the command-line edge.
 *
 * Exit statuses follow sysexits(3); see the man page for the full table.
 */
#ifndef EK_CLI_H
#define EK_CLI_H

/* Each takes argv with argv[0] = the subcommand name. */
int ek_cmd_serve(int argc, char **argv);
int ek_cmd_send(int argc, char **argv);

void ek_print_version(void);

/* "echokit: <cmd>: <problem>" plus "Try 'echokit <cmd> --help'." on
 * stderr; returns EX_USAGE for `return ek_usage_error(...)`. */
int ek_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
