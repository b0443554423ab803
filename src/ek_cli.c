#include "ek_cli.h"
#include "ek_config.h"

#include <stdarg.h>
#include <stdio.h>
#include <sysexits.h>

void ek_print_version(void)
{
    printf("echokit %s\n", EK_VERSION);
}

int ek_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "echokit: %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'echokit %s --help'.\n", cmd);
    return EX_USAGE;
}
