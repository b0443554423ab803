/*
 * Fuzz target: `echokit bench merge` whole, as a user runs it on files
 * from anywhere: reading (the JSON reader, HdrHistogram histograms and
 * logs, every value's range), combine() (the sums, the overlap, the run
 * ids) and the printers (text, --json, --percentiles). fuzz_merge_input
 * fuzzes the readers alone, faster.
 *
 * The input: a first byte of flags (the output: text, --json or
 * --percentiles; --allow-same-run; --no-overlap-check), then up to four
 * files separated by NUL bytes, each given to the command as a memfd's
 * /proc/self/fd path. stdout is a memfd too, read back after each run;
 * stderr (the command's warnings) is discarded (-close_fd_mask=2, added
 * by LLVMFuzzerInitialize; libFuzzer and the sanitizers keep their own
 * copy of it).
 *
 * Must hold: no crash and no sanitizer report (signed overflow and
 * out-of-range casts included: -fsanitize=undefined); the exit status is
 * 0, 1, 65 or 71 (the files are always readable); a text report is
 * printable ASCII lines only, whatever the files hold; and a --json result
 * is one line of JSON that merges again, alone, to the same count of
 * messages and runs.
 */
#include "ek_cli.h"
#include "ek_json.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define FILES 4

static int in_fd[FILES + 1]; /* the last: the --json output, merged again */
static int out_fd = -1;
static char *out; /* what the last run printed */
static size_t out_len, out_cap;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    /* The command's warnings, one or two a run, would fill the log. */
    static char *args[256];
    static char quiet[] = "-close_fd_mask=2";
    int n = *argc < 254 ? *argc : 254;
    memcpy(args, *argv, (size_t)n * sizeof(args[0]));
    args[n++] = quiet;
    args[n] = NULL;
    *argc = n;
    *argv = args;

    for (int i = 0; i <= FILES; i++)
        if ((in_fd[i] = memfd_create("merge-input", MFD_CLOEXEC)) < 0)
            abort();
    out_fd = memfd_create("merge-output", MFD_CLOEXEC);
    if (out_fd < 0 || dup2(out_fd, STDOUT_FILENO) < 0)
        abort();
    return 0;
}

/* fd's contents replaced by data. */
static void fill(int fd, const void *data, size_t n)
{
    if (ftruncate(fd, 0) != 0 ||
        (n > 0 && pwrite(fd, data, n, 0) != (ssize_t)n))
        abort();
}

/* Runs bench merge with the options and files given; what it printed is
 * in out (NUL-terminated). Returns its exit status. */
static int merge(const char *const *opts, size_t nopts, const int *fds,
                 size_t nfds)
{
    char paths[FILES + 1][32];
    char *argv[16] = {"merge"};
    int argc = 1;
    for (size_t i = 0; i < nopts; i++)
        argv[argc++] = (char *)opts[i];
    for (size_t i = 0; i < nfds; i++) {
        snprintf(paths[i], sizeof(paths[i]), "/proc/self/fd/%d", fds[i]);
        argv[argc++] = paths[i];
    }
    argv[argc] = NULL;
    fflush(stdout);
    if (ftruncate(out_fd, 0) != 0 || lseek(STDOUT_FILENO, 0, SEEK_SET) != 0)
        abort();
    int status = ek_cmd_bench_merge(argc, argv);
    fflush(stdout);
    off_t len = lseek(out_fd, 0, SEEK_END);
    if (len < 0)
        abort();
    if ((size_t)len + 1 > out_cap) {
        char *bigger = realloc(out, (size_t)len + 1);
        if (bigger == NULL)
            abort();
        out = bigger;
        out_cap = (size_t)len + 1;
    }
    if (pread(out_fd, out, (size_t)len, 0) != len)
        abort();
    out[len] = '\0';
    out_len = (size_t)len;
    return status;
}

/* A whole number at path of the JSON in text, or UINT64_MAX. */
static uint64_t json_count(const char *text, const char *path)
{
    char *copy = strdup(text);
    struct ek_json j;
    uint64_t n = UINT64_MAX;
    if (copy == NULL)
        abort();
    if (ek_json_parse(copy, &j) != 0 || !ek_json_u64(&j, path, &n))
        n = UINT64_MAX;
    ek_json_free(&j);
    free(copy);
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t flags = data[0];
    const char *opts[4];
    size_t nopts = 0;
    int mode = flags & 3; /* 0, 3: text; 1: --json; 2: --percentiles */
    if (mode == 1)
        opts[nopts++] = "--json";
    if (mode == 2)
        opts[nopts++] = "--percentiles";
    if (flags & 4)
        opts[nopts++] = "--allow-same-run";
    if (flags & 8)
        opts[nopts++] = "--no-overlap-check";

    size_t nfiles = 0;
    const uint8_t *p = data + 1, *end = data + size;
    while (nfiles < FILES) {
        const uint8_t *nul = memchr(p, '\0', (size_t)(end - p));
        const uint8_t *stop = nul != NULL && nfiles + 1 < FILES ? nul : end;
        fill(in_fd[nfiles++], p, (size_t)(stop - p));
        if (stop == end)
            break;
        p = stop + 1;
    }

    int status = merge(opts, nopts, in_fd, nfiles);
    if (status != 0 && status != 1 && status != 65 && status != 71)
        abort();
    if (status > 1)
        return 0;
    if (mode == 0 || mode == 3) {
        for (size_t i = 0; i < out_len; i++)
            if ((out[i] < ' ' || out[i] > '~') && out[i] != '\n')
                abort(); /* a file's bytes reached the terminal */
        return 0;
    }
    if (mode != 1)
        return 0;

    /* The result merges again, alone, to the same messages and runs. */
    if (out_len == 0 || out[out_len - 1] != '\n' ||
        memchr(out, '\n', out_len) != out + out_len - 1)
        abort();
    uint64_t msgs = json_count(out, "msgs"), runs = json_count(out, "runs");
    if (msgs == UINT64_MAX || runs == UINT64_MAX)
        abort();
    fill(in_fd[FILES], out, out_len);
    static const char *const again_opts[] = {"--json", "--allow-same-run",
                                             "--no-overlap-check"};
    status = merge(again_opts, 3, &in_fd[FILES], 1);
    if (status != 0 && status != 1)
        abort();
    if (json_count(out, "msgs") != msgs || json_count(out, "runs") != runs)
        abort();
    return 0;
}
