/*
 * ek_proc: what /proc says about another process (Linux): CPU time and
 * memory, for `bench --server-pid` and the tests. Each returns -1 when
 * /proc cannot tell (no such process, not Linux).
 */
#ifndef EK_PROC_H
#define EK_PROC_H

#include <sys/types.h>

/* User + system CPU time of pid (all its threads), in microseconds. With
 * children, add that of its children: the reaped ones (cutime, cstime)
 * and the live ones, recursively. Tick resolution: 1/CLK_TCK (10 ms). */
long long ek_proc_cpu_us(pid_t pid, int with_children);

/* Memory in KiB of pid and its live descendants: "Rss" (what ps shows;
 * pages shared with a child count twice) or "Pss" (shared pages split
 * between the processes sharing them: the honest sum for a forking
 * server). Uses smaps_rollup, else VmRSS. */
long ek_proc_mem_kb(pid_t pid, const char *field);

/* Live children of pid (a zombie counts until it is reaped). */
int ek_proc_children(pid_t pid);

#endif
