/*
 * sysconf_shim: an LD_PRELOAD library for cli.threads_auto_many_cpus.
 * sysconf(_SC_NPROCESSORS_ONLN) reports EK_FAKE_CPUS CPUs when that is
 * set, as on a host with more CPUs than echokit runs loops; every other
 * call goes to libc's sysconf.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

long sysconf(int name)
{
    static long (*real)(int);
    const char *fake = getenv("EK_FAKE_CPUS");
    if (name == _SC_NPROCESSORS_ONLN && fake != NULL)
        return atol(fake);
    if (real == NULL) {
        void *sym = dlsym(RTLD_NEXT, "sysconf");
        if (sym == NULL)
            return -1;
        memcpy(&real, &sym, sizeof(real)); /* object to function pointer */
    }
    return real(name);
}
