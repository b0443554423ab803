/*
 * echokit completion bash|zsh|fish: the shell completion script.
 *
 * It is made from ek_commands: each command's getopt_long table (what the
 * parser accepts) gives the options, and the command's own --help gives
 * each option's description and value name. So a new option is completed
 * as soon as it is parsed, and tests/completion-check fails when --help
 * and the table disagree. Only the kinds of values (a file, a model name,
 * an interface) are said here, in value_kinds.
 */
#include "ek_cli.h"
#include "ek_model.h"
#include "ek_util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <sysexits.h>
#include <unistd.h>

const struct option ek_completion_options[] = {
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};
const char ek_completion_shortopts[] = "h";

static const char usage_text[] =
    "usage: echokit completion bash|zsh|fish\n"
    "\n"
    "Print the completion script for the shell on stdout. To use it now:\n"
    "    source <(echokit completion bash)\n"
    "    source <(echokit completion zsh)     (after compinit)\n"
    "    echokit completion fish | source\n"
    "To install it: bash: /usr/share/bash-completion/completions/echokit;\n"
    "zsh: a file _echokit in a directory of $fpath; fish:\n"
    "~/.config/fish/completions/echokit.fish (packages install all three).\n"
    "\n"
    "  -h, --help    this text\n"
    "\n"
    "Exit status: 0 printed; 64 bad usage; 71 a command's --help could not\n"
    "be read; 74 stdout cannot be written.\n";

/* ---- what the options take ------------------------------------------- */

enum value_kind {
    VALUE_ANY, /* free text: nothing to offer */
    VALUE_FILE,
    VALUE_WORDS, /* one of value_kinds[].words */
    VALUE_INTERFACE,
    VALUE_USER,
    VALUE_CC, /* a congestion control the kernel has loaded */
};

/* The I/O models this build can run, and auto and list: --io's words. */
static char model_words[256];

static void fill_model_words(void)
{
    size_t off = 0;
    for (size_t i = 0; ek_models[i] != NULL; i++)
        if (ek_model_unavailable(ek_models[i]) == NULL) /* this build's */
            off +=
                (size_t)snprintf(model_words + off, sizeof(model_words) - off,
                                 "%s ", ek_models[i]->name);
    snprintf(model_words + off, sizeof(model_words) - off, "auto list");
}

static const struct {
    const char *option;
    enum value_kind kind;
    const char *words;
} value_kinds[] = {
    {"tls-cert", VALUE_FILE, NULL},
    {"tls-key", VALUE_FILE, NULL},
    {"tls-ca", VALUE_FILE, NULL},
    {"tls-client-ca", VALUE_FILE, NULL},
    {"pidfile", VALUE_FILE, NULL},
    {"hdr-log", VALUE_FILE, NULL},
    {"io", VALUE_WORDS, model_words},
    {"mode", VALUE_WORDS, "rr stream idle connect"},
    {"log-format", VALUE_WORDS, "text json"},
    {"tls-min-version", VALUE_WORDS, "1.2 1.3"},
    {"dscp", VALUE_WORDS,
     "ef af11 af12 af13 af21 af22 af23 af31 af32 af33 af41 af42 af43 "
     "cs0 cs1 cs2 cs3 cs4 cs5 cs6 cs7 va le"},
    {"bind-dev", VALUE_INTERFACE, NULL},
    {"user", VALUE_USER, NULL},
    {"cc", VALUE_CC, NULL},
};

/* One option of one command, as the scripts need it. */
struct opt {
    const char *name; /* long name */
    char letter;      /* its short option, or 0 */
    bool takes_value;
    enum value_kind kind;
    const char *words; /* VALUE_WORDS */
    char value[24];    /* its value's name in --help: "ADDR" */
    char summary[120]; /* the first line of its description */
};

struct command {
    const struct ek_command *c;
    struct opt opts[64];
    size_t n;
};

/* ---- reading a command's --help --------------------------------------- */

/* What `echokit <c> --help` prints. The commands print their help on
 * stdout, which a process cannot portably point elsewhere for one call,
 * so a child runs it into a pipe. Returns a malloc'd string, or NULL after
 * saying why. */
static char *help_of(const struct ek_command *c)
{
    int p[2];
    if (pipe(p) != 0) {
        fprintf(stderr, "echokit: completion: pipe: %s\n", strerror(errno));
        return NULL;
    }
    fflush(stdout);
    /* waitpid needs the child kept: an inherited SIG_IGN would reap it. */
    signal(SIGCHLD, SIG_DFL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "echokit: completion: fork: %s\n", strerror(errno));
        close(p[0]);
        close(p[1]);
        return NULL;
    }
    if (pid == 0) {
        const char *word = strrchr(c->name, ' ');
        char *argv[] = {(char *)(word != NULL ? word + 1 : c->name),
                        (char *)"--help", NULL};
        close(p[0]);
        if (dup2(p[1], STDOUT_FILENO) < 0)
            _exit(EX_OSERR);
        close(p[1]);
        optind = 0; /* getopt starts afresh */
        int rc = c->run(2, argv);
        fflush(stdout);
        _exit(rc);
    }
    close(p[1]);
    size_t len;
    FILE *from = fdopen(p[0], "r");
    char *text = from != NULL ? ek_read_all(from, 1u << 20, &len) : NULL;
    if (from != NULL)
        fclose(from); /* closes p[0] */
    else
        close(p[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) {
            status = -1;
            break;
        }
    if (text == NULL || status != 0) {
        fprintf(stderr,
                "echokit: completion: could not read `echokit %s "
                "--help`\n",
                c->name);
        free(text);
        return NULL;
    }
    return text;
}

/* Finds the line of --help that introduces --name ("  -l, --listen ADDR
 * listen on ..."): the option, then its value's name, then two spaces and
 * the description. Takes the value's name and the description's first
 * line; leaves both empty when --help has no such line. */
static void describe(const char *help, struct opt *o)
{
    size_t name_len = strlen(o->name);
    for (const char *line = help; *line != '\0';) {
        const char *end = strchr(line, '\n');
        if (end == NULL)
            end = line + strlen(line);
        const char *s = line;
        while (*s == ' ')
            s++;
        /* An option's own line is indented by at most six spaces; its
         * description's continuations, which may start with another
         * option's name, are indented further. */
        bool introduces = s > line && s - line <= 6;
        if (s[0] == '-' && s[1] != '-' && s[1] != '\0' && s[2] == ',' &&
            s[3] == ' ')
            s += 4; /* "-l, " */
        if (introduces && s[0] == '-' && s[1] == '-' &&
            strncmp(s + 2, o->name, name_len) == 0 &&
            (s[2 + name_len] == ' ' || s + 2 + name_len == end)) {
            s += 2 + name_len;
            if (*s == ' ' && s[1] != ' ') { /* " ADDR" */
                const char *v = ++s;
                while (s < end && *s != ' ')
                    s++;
                snprintf(o->value, sizeof(o->value), "%.*s", (int)(s - v), v);
            }
            while (s < end && *s == ' ')
                s++;
            snprintf(o->summary, sizeof(o->summary), "%.*s", (int)(end - s), s);
            return;
        }
        line = *end == '\n' ? end + 1 : end;
    }
}

/* The options of c, described from its --help. Returns false after
 * saying why. */
static bool load_command(const struct ek_command *c, struct command *out)
{
    char *help = help_of(c);
    if (help == NULL)
        return false;
    out->c = c;
    out->n = 0;
    for (const struct option *lo = c->options; lo->name != NULL; lo++) {
        if (out->n == sizeof(out->opts) / sizeof(out->opts[0])) {
            fprintf(stderr, "echokit: completion: too many options\n");
            free(help);
            return false;
        }
        struct opt *o = &out->opts[out->n++];
        memset(o, 0, sizeof(*o));
        o->name = lo->name;
        o->takes_value = lo->has_arg != no_argument;
        /* A short option is one whose value getopt returns is a letter
         * of the short options string. */
        if (lo->val > ' ' && lo->val < 127 && lo->val != ':' &&
            lo->val != '+' && strchr(c->shortopts, lo->val) != NULL)
            o->letter = (char)lo->val;
        o->kind = VALUE_ANY;
        for (size_t i = 0; i < sizeof(value_kinds) / sizeof(value_kinds[0]);
             i++)
            if (strcmp(value_kinds[i].option, o->name) == 0) {
                o->kind = value_kinds[i].kind;
                o->words = value_kinds[i].words;
            }
        describe(help, o);
        if (o->value[0] == '\0')
            snprintf(o->value, sizeof(o->value), "%s",
                     o->takes_value ? "VALUE" : "");
    }
    free(help);
    return true;
}

/* ---- commands under commands ----------------------------------------- */

/* A command under another, as "bench merge": the length of the name of
 * the one it is under ("bench"), or 0. */
static size_t parent_len(const struct ek_command *c)
{
    const char *space = strchr(c->name, ' ');
    return space != NULL ? (size_t)(space - c->name) : 0;
}

/* The word that follows its parent's name on the command line. */
static const char *sub_word(const struct ek_command *c)
{
    return c->name + parent_len(c) + 1;
}

/* The words of the commands under parent, space-separated, into out
 * (empty when there is none). */
static void sub_words(const struct command *k, size_t n,
                      const struct ek_command *parent, char *out, size_t size)
{
    size_t off = 0, len = strlen(parent->name);
    out[0] = '\0';
    for (size_t i = 0; i < n && off < size; i++)
        if (parent_len(k[i].c) == len &&
            strncmp(k[i].c->name, parent->name, len) == 0)
            off += (size_t)snprintf(out + off, size - off, "%s%s",
                                    off > 0 ? " " : "", sub_word(k[i].c));
}

/* ---- quoting ----------------------------------------------------------- */

/* s in single quotes for sh, zsh and fish: fish takes \' and \\ inside
 * them, the others end the quotes around an escaped quote. */
static void put_quoted(const char *s, bool fish)
{
    putchar('\'');
    for (; *s != '\0'; s++) {
        if (*s == '\'')
            fputs(fish ? "\\'" : "'\\''", stdout);
        else if (*s == '\\' && fish)
            fputs("\\\\", stdout);
        else
            putchar(*s);
    }
    putchar('\'');
}

/* ---- bash -------------------------------------------------------------- */

static void bash_values(const struct opt *o)
{
    switch (o->kind) {
    case VALUE_FILE:
        puts("            compopt -o filenames 2>/dev/null\n"
             "            mapfile -t COMPREPLY < <(compgen -f -- \"$cur\")");
        break;
    case VALUE_WORDS:
        printf("            COMPREPLY=($(compgen -W '%s' -- \"$cur\"))\n",
               o->words);
        break;
    case VALUE_INTERFACE: /* names as words, never as shell code */
        puts("            local ifaces=(/sys/class/net/*)\n"
             "            [[ -e $ifaces ]] && _echokit_words "
             "\"${ifaces[@]##*/}\"");
        break;
    case VALUE_USER:
        puts("            local users\n"
             "            mapfile -t users < <(compgen -u)\n"
             "            _echokit_words \"${users[@]}\"");
        break;
    case VALUE_CC:
        puts("            local algos\n"
             "            read -ra algos < "
             "/proc/sys/net/ipv4/tcp_available_congestion_control\n"
             "            _echokit_words \"${algos[@]}\"");
        break;
    case VALUE_ANY: /* free text: offer nothing */
        break;
    }
}

static void bash_command(const struct command *k, const char *subs)
{
    printf("    '%s')\n        case $prev in\n", k->c->name);
    /* The options whose value is free text first, in one pattern. */
    const char *sep = "        ";
    for (size_t i = 0; i < k->n; i++) {
        const struct opt *o = &k->opts[i];
        if (!o->takes_value || o->kind != VALUE_ANY)
            continue;
        printf("%s--%s", sep, o->name);
        if (o->letter)
            printf("|-%c", o->letter);
        sep = "|";
    }
    if (sep[0] == '|')
        puts(")\n            return ;;");
    for (size_t i = 0; i < k->n; i++) {
        const struct opt *o = &k->opts[i];
        if (!o->takes_value || o->kind == VALUE_ANY)
            continue;
        printf("        --%s", o->name);
        if (o->letter)
            printf("|-%c", o->letter);
        puts(")");
        bash_values(o);
        puts("            return ;;");
    }
    puts("        esac");
    fputs("        opts='", stdout);
    for (size_t i = 0; i < k->n; i++) {
        printf("%s--%s", i ? " " : "", k->opts[i].name);
        if (k->opts[i].letter)
            printf(" -%c", k->opts[i].letter);
    }
    puts("'");
    switch (k->c->operands) {
    case EK_OPERANDS_FILES:
        puts("        if [[ $cur != -* ]]; then\n"
             "            compopt -o filenames 2>/dev/null\n"
             "            mapfile -t COMPREPLY < <(compgen -f -- \"$cur\")\n"
             "            return\n"
             "        fi ;;");
        break;
    case EK_OPERANDS_SHELL:
        puts("        words='bash zsh fish' ;;");
        break;
    case EK_OPERANDS_ADDRESS:
    case EK_OPERANDS_NONE:
        if (subs[0] != '\0') /* its first operand may be one of them */
            printf("        ((COMP_CWORD == 2)) && words='%s' ;;\n", subs);
        else
            puts("        ;;");
        break;
    }
}

static void emit_bash(const struct command *k, size_t n)
{
    puts("# bash completion for echokit; made by `echokit completion bash`\n"
         "# from the option tables echokit parses with.\n"
         "\n"
         "# The names (interfaces, users, ...) that start with $cur, as they\n"
         "# are typed or as %q quotes them, quoted for the command line: bash\n"
         "# inserts a completion as it is, so an interface named e$(id>pwn)\n"
         "# would run id on Enter. (compgen -W would even expand them.)\n"
         "_echokit_words()\n"
         "{\n"
         "    local w q\n"
         "    for w in \"$@\"; do\n"
         "        printf -v q %q \"$w\"\n"
         "        [[ $w == \"$cur\"* || $q == \"$cur\"* ]] && "
         "COMPREPLY+=(\"$q\")\n"
         "    done\n"
         "}\n"
         "\n"
         "_echokit()\n"
         "{\n"
         "    local cur=${COMP_WORDS[COMP_CWORD]} "
         "prev=${COMP_WORDS[COMP_CWORD-1]}\n"
         "    local cmd=${COMP_WORDS[1]} opts= words=\n"
         "    # --opt=value: bash splits the word at '='\n"
         "    if [[ $cur == = ]]; then cur=; fi\n"
         "    if [[ $prev == = ]]; then "
         "prev=${COMP_WORDS[COMP_CWORD-2]}; fi\n"
         "    COMPREPLY=()\n"
         "    if ((COMP_CWORD == 1)); then");
    fputs("        COMPREPLY=($(compgen -W '", stdout);
    for (size_t i = 0; i < n; i++)
        if (parent_len(k[i].c) == 0)
            printf("%s ", k[i].c->name);
    puts("help --help --version' -- \"$cur\"))\n"
         "        return\n"
         "    fi");
    for (size_t i = 0; i < n; i++)
        if (parent_len(k[i].c) > 0)
            printf("    if [[ $cmd == %.*s && ${COMP_WORDS[2]} == %s ]] && "
                   "((COMP_CWORD > 2)); then\n"
                   "        cmd='%s'\n"
                   "    fi\n",
                   (int)parent_len(k[i].c), k[i].c->name, sub_word(k[i].c),
                   k[i].c->name);
    puts("    case $cmd in");
    for (size_t i = 0; i < n; i++) {
        char subs[128];
        sub_words(k, n, k[i].c, subs, sizeof(subs));
        bash_command(&k[i], subs);
    }
    puts("    *) return ;;\n"
         "    esac\n"
         "    if [[ $cur == -* ]]; then\n"
         "        COMPREPLY=($(compgen -W \"$opts\" -- \"$cur\"))\n"
         "    else\n"
         "        COMPREPLY=($(compgen -W \"$words\" -- \"$cur\"))\n"
         "    fi\n"
         "}\n"
         "complete -F _echokit echokit");
}

/* ---- zsh --------------------------------------------------------------- */

/* s with the characters zsh's _arguments gives meaning to in a
 * [description] or a :message: escaped, into out (cut to fit). */
static void zsh_escape(const char *s, char *out, size_t size)
{
    size_t off = 0;
    for (; *s != '\0' && off + 3 < size; s++) {
        if (*s == '[' || *s == ']' || *s == ':' || *s == '\\')
            out[off++] = '\\';
        out[off++] = *s;
    }
    out[off] = '\0';
}

/* One _arguments spec, head[description]tail, quoted for the shell. */
static void put_zsh_spec(const char *head, const struct opt *o,
                         const char *tail)
{
    char summary[2 * sizeof(o->summary)], spec[512];
    zsh_escape(o->summary, summary, sizeof(summary));
    snprintf(spec, sizeof(spec), "%s[%s]%s", head, summary, tail);
    fputs(" \\\n    ", stdout);
    put_quoted(spec, false);
}

/* The zsh function that completes c: _echokit_bench_merge. */
static void put_zsh_function(const struct ek_command *c)
{
    fputs("_echokit_", stdout);
    for (const char *s = c->name; *s != '\0'; s++)
        putchar(*s == ' ' ? '_' : *s);
}

static void zsh_command(const struct command *k, const char *subs)
{
    put_zsh_function(k->c);
    fputs("()\n{\n    _arguments -s -S", stdout);
    for (size_t i = 0; i < k->n; i++) {
        const struct opt *o = &k->opts[i];
        char action[400] = "";
        if (o->takes_value) {
            const char *what = " ";
            char words[300];
            switch (o->kind) {
            case VALUE_FILE:
                what = "_files";
                break;
            case VALUE_WORDS:
                snprintf(words, sizeof(words), "(%s)", o->words);
                what = words;
                break;
            case VALUE_INTERFACE:
                what = "_net_interfaces";
                break;
            case VALUE_USER:
                what = "_users";
                break;
            case VALUE_CC:
                what = "_echokit_cc";
                break;
            case VALUE_ANY:
                break;
            }
            char value[2 * sizeof(o->value)];
            zsh_escape(o->value, value, sizeof(value));
            snprintf(action, sizeof(action), ":%s:%s", value, what);
        }
        char head[64];
        snprintf(head, sizeof(head), "*--%s%s", o->name,
                 o->takes_value ? "=" : "");
        put_zsh_spec(head, o, action);
        if (o->letter) {
            snprintf(head, sizeof(head), "*-%c%s", o->letter,
                     o->takes_value ? "+" : "");
            put_zsh_spec(head, o, action);
        }
    }
    switch (k->c->operands) {
    case EK_OPERANDS_FILES:
        fputs(" \\\n    '*:file:_files'", stdout);
        break;
    case EK_OPERANDS_SHELL:
        fputs(" \\\n    '1:shell:(bash zsh fish)'", stdout);
        break;
    case EK_OPERANDS_ADDRESS:
        if (subs[0] != '\0') /* its first operand may be one of them */
            printf(" \\\n    '1:address (or %s):(%s)'", subs, subs);
        else
            fputs(" \\\n    '*:address: '", stdout);
        break;
    case EK_OPERANDS_NONE:
        break;
    }
    puts("\n}\n");
}

static void emit_zsh(const struct command *k, size_t n)
{
    puts("#compdef echokit\n"
         "# zsh completion for echokit; made by `echokit completion zsh`\n"
         "# from the option tables echokit parses with.\n"
         "\n"
         "_echokit_cc()\n"
         "{\n"
         "    local -a algos\n"
         "    algos=(${(z)\"$(<"
         "/proc/sys/net/ipv4/tcp_available_congestion_control)\"})\n"
         "    compadd -a algos\n"
         "}\n");
    for (size_t i = 0; i < n; i++) {
        char subs[128];
        sub_words(k, n, k[i].c, subs, sizeof(subs));
        zsh_command(&k[i], subs);
    }
    puts("_echokit()\n"
         "{\n"
         "    local curcontext=$curcontext state line\n"
         "    _arguments -C \\\n"
         "        '(- *)'{-h,--help}'[the commands]' \\\n"
         "        '(- *)'{-V,--version}'[print the version]' \\\n"
         "        '1:command:->command' \\\n"
         "        '*::argument:->argument'\n"
         "    case $state in\n"
         "    command)\n"
         "        local -a commands\n"
         "        commands=(");
    for (size_t i = 0; i < n; i++)
        if (parent_len(k[i].c) == 0) {
            char item[200];
            snprintf(item, sizeof(item), "%s:%s", k[i].c->name,
                     k[i].c->summary);
            fputs("            ", stdout);
            put_quoted(item, false);
            putchar('\n');
        }
    puts("        )\n"
         "        _describe command commands ;;\n"
         "    argument)");
    fputs("        ", stdout);
    for (size_t i = 0; i < n; i++)
        if (parent_len(k[i].c) > 0) {
            printf("if [[ $words[1] == %.*s && $words[2] == %s ]] &&\n"
                   "            ((CURRENT > 2)); then\n"
                   "            shift words\n"
                   "            ((CURRENT--))\n"
                   "            ",
                   (int)parent_len(k[i].c), k[i].c->name, sub_word(k[i].c));
            put_zsh_function(k[i].c);
            fputs("\n        el", stdout);
        }
    puts("if (($+functions[_echokit_$words[1]])); then\n"
         "            _echokit_$words[1]\n"
         "        fi ;;\n"
         "    esac\n"
         "}\n"
         "\n"
         "if [[ $zsh_eval_context[-1] == loadautofunc ]]; then\n"
         "    _echokit \"$@\"\n"
         "else\n"
         "    compdef _echokit echokit\n"
         "fi");
}

/* ---- fish -------------------------------------------------------------- */

static void fish_command(const struct command *k)
{
    char when[64];
    snprintf(when, sizeof(when), "__echokit_command_is '%s'", k->c->name);
    for (size_t i = 0; i < k->n; i++) {
        const struct opt *o = &k->opts[i];
        printf("complete -c echokit -n \"%s\" -l %s", when, o->name);
        if (o->letter)
            printf(" -s %c", o->letter);
        if (o->takes_value) {
            switch (o->kind) {
            case VALUE_FILE:
                fputs(" -r -F", stdout);
                break;
            case VALUE_WORDS:
                printf(" -x -a '%s'", o->words);
                break;
            case VALUE_INTERFACE:
                fputs(" -x -a '(__fish_print_interfaces)'", stdout);
                break;
            case VALUE_USER:
                fputs(" -x -a '(__fish_complete_users)'", stdout);
                break;
            case VALUE_CC:
                fputs(" -x -a '(string split \" \" < "
                      "/proc/sys/net/ipv4/tcp_available_congestion_control)'",
                      stdout);
                break;
            case VALUE_ANY:
                fputs(" -x", stdout);
                break;
            }
        }
        fputs(" -d ", stdout);
        put_quoted(o->summary, true);
        putchar('\n');
    }
    switch (k->c->operands) {
    case EK_OPERANDS_FILES:
        printf("complete -c echokit -n \"%s\" -F\n", when);
        break;
    case EK_OPERANDS_SHELL:
        printf("complete -c echokit -n \"%s\" -a 'bash zsh fish'\n", when);
        break;
    case EK_OPERANDS_ADDRESS:
    case EK_OPERANDS_NONE:
        break;
    }
}

static void emit_fish(const struct command *k, size_t n)
{
    puts("# fish completion for echokit; made by `echokit completion fish`\n"
         "# from the option tables echokit parses with.\n"
         "\n"
         "# The command being completed: the first word after echokit, or\n"
         "# 'bench merge'; empty before one is given.\n"
         "function __echokit_command\n"
         "    set -l words (commandline -opc)");
    const char *branch = "if";
    for (size_t i = 0; i < n; i++)
        if (parent_len(k[i].c) > 0) {
            printf("    %s test (count $words) -ge 3; and test \"$words[2]\" = "
                   "%.*s\n"
                   "        and test \"$words[3]\" = %s\n"
                   "        echo '%s'\n",
                   branch, (int)parent_len(k[i].c), k[i].c->name,
                   sub_word(k[i].c), k[i].c->name);
            branch = "else if";
        }
    printf("    %s test (count $words) -ge 2\n", branch);
    puts("        echo $words[2]\n"
         "    end\n"
         "end\n"
         "\n"
         "function __echokit_command_is\n"
         "    test \"$(__echokit_command)\" = \"$argv[1]\"\n"
         "end\n"
         "\n"
         "complete -c echokit -f\n"
         "complete -c echokit -n \"__echokit_command_is ''\" -s h -l help "
         "-d 'the commands'\n"
         "complete -c echokit -n \"__echokit_command_is ''\" -s V -l version "
         "-d 'print the version'");
    for (size_t i = 0; i < n; i++) {
        if (parent_len(k[i].c) == 0)
            printf("complete -c echokit -n \"__echokit_command_is ''\" -a %s "
                   "-d ",
                   k[i].c->name);
        else /* as its parent's first operand */
            printf("complete -c echokit -n \"__echokit_command_is %.*s; and "
                   "test (count (commandline -opc)) -eq 2\" -a %s -d ",
                   (int)parent_len(k[i].c), k[i].c->name, sub_word(k[i].c));
        put_quoted(k[i].c->summary, true);
        putchar('\n');
    }
    for (size_t i = 0; i < n; i++)
        fish_command(&k[i]);
}

int ek_cmd_completion(int argc, char **argv)
{
    if (argc == 2 &&
        (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (argc != 2)
        return ek_usage_error("completion", argc < 2 ? "which shell? bash, "
                                                       "zsh or fish"
                                                     : "one shell only");
    void (*emit)(const struct command *, size_t) = NULL;
    if (strcmp(argv[1], "bash") == 0)
        emit = emit_bash;
    else if (strcmp(argv[1], "zsh") == 0)
        emit = emit_zsh;
    else if (strcmp(argv[1], "fish") == 0)
        emit = emit_fish;
    else
        return ek_usage_error("completion",
                              "unknown shell '%s': bash, zsh or fish", argv[1]);

    fill_model_words();
    static struct command commands[16];
    size_t n = 0;
    for (const struct ek_command *c = ek_commands; c->name != NULL; c++) {
        if (n == sizeof(commands) / sizeof(commands[0]) ||
            !load_command(c, &commands[n]))
            return EX_OSERR;
        n++;
    }
    emit(commands, n);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "echokit: completion: stdout: %s\n", strerror(errno));
        return EX_IOERR;
    }
    return 0;
}
