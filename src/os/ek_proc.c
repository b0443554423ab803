#include "ek_proc.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads the children of pid's main thread into kids (at most max).
 * Returns how many there are (all of them, even past max), or -1 when the
 * kernel does not list them. */
static int children_of(pid_t pid, pid_t *kids, int max)
{
    char path[96];
    snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid,
             (int)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    int n = 0, child;
    /* The kernel writes these numbers: there is no malformed input to
     * report, only the end of the list. */
    // NOLINTNEXTLINE(cert-err34-c)
    while (fscanf(f, "%d", &child) == 1) {
        if (n < max)
            kids[n] = child;
        n++;
    }
    fclose(f);
    return n;
}

int ek_proc_children(pid_t pid)
{
    return children_of(pid, NULL, 0);
}

/* CPU of pid itself, plus (reaped) that of its children it has waited
 * for, which the kernel adds to cutime/cstime. */
static long long own_cpu_us(pid_t pid, int with_reaped)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    /* After the ")" that ends comm (which may hold spaces): state is field
     * 3, utime 14, stime 15, cutime 16, cstime 17. */
    char *p = strrchr(buf, ')');
    unsigned long long utime, stime;
    long long cutime, cstime;
    // NOLINTNEXTLINE(cert-err34-c): the kernel's format; a short read fails
    if (p == NULL || sscanf(p + 2,
                            "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u "
                            "%llu %llu %lld %lld",
                            &utime, &stime, &cutime, &cstime) != 4)
        return -1;
    unsigned long long ticks = utime + stime;
    if (with_reaped)
        ticks += (unsigned long long)(cutime + cstime);
    long hz = sysconf(_SC_CLK_TCK);
    return (long long)(ticks * 1000000ull / (unsigned long long)hz);
}

long long ek_proc_cpu_us(pid_t pid, int with_children)
{
    long long total = own_cpu_us(pid, with_children);
    if (total < 0 || !with_children)
        return total;
    pid_t kids[4096];
    int n = children_of(pid, kids, 4096);
    for (int i = 0; i < n && i < 4096; i++) {
        long long k = ek_proc_cpu_us(kids[i], 1);
        if (k > 0)
            total += k;
    }
    return total;
}

static long field_kb(const char *path, const char *field)
{
    char line[256];
    long v = -1;
    size_t flen = strlen(field);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            v = strtol(line + flen + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

long ek_proc_mem_kb(pid_t pid, const char *field)
{
    char path[96];
    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
    long total = field_kb(path, field);
    if (total < 0) {
        snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
        total = field_kb(path, "VmRSS");
    }
    if (total < 0)
        return -1;
    pid_t kids[4096];
    int n = children_of(pid, kids, 4096);
    for (int i = 0; i < n && i < 4096; i++) {
        long k = ek_proc_mem_kb(kids[i], field);
        if (k > 0)
            total += k;
    }
    return total;
}
