#include "ek_service.h"
#include "ek_log.h"
#include "ek_util.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int ek_pidfile_open(struct ek_pidfile *pf, const char *path)
{
    pf->fd = -1;
    pf->path = NULL;
    /* Opened as root, maybe in a directory the service user can write:
     * no symbolic link (O_NOFOLLOW), nothing that blocks on open (a FIFO:
     * O_NONBLOCK) or becomes a terminal, and, checked before it is
     * locked or truncated, only a regular file with one link (a hard link
     * planted there would name, and truncate, another file). */
    int fd = open(
        path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY,
        0644);
    if (fd < 0) {
        int err = -errno;
        ek_warnx("--pidfile %s: %s", path, strerror(-err));
        return err;
    }
    struct stat st;
    int err = fstat(fd, &st) < 0                         ? -errno
              : !S_ISREG(st.st_mode) || st.st_nlink != 1 ? -EINVAL
                                                         : 0;
    if (err < 0) {
        ek_warnx("--pidfile %s: %s", path,
                 err == -EINVAL ? "not a regular file with a single link; "
                                  "refused"
                                : strerror(-err));
        close(fd);
        return err;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char other[32] = "";
        ssize_t n = pread(fd, other, sizeof(other) - 1, 0);
        other[n > 0 ? n : 0] = '\0';
        other[strcspn(other, "\n")] = '\0';
        ek_warnx("--pidfile %s: held by a running server%s%s", path,
                 other[0] ? ", pid " : "", other);
        close(fd);
        return -EWOULDBLOCK;
    }
    char text[32];
    int len = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, text, (size_t)len, 0) != len) {
        err = errno ? -errno : -EIO;
        ek_warnx("--pidfile %s: %s", path, strerror(-err));
        close(fd);
        return err;
    }
    pf->path = strdup(path);
    if (pf->path == NULL) {
        close(fd);
        ek_warnx("out of memory");
        return -ENOMEM;
    }
    pf->fd = fd;
    return 0;
}

void ek_pidfile_close(struct ek_pidfile *pf)
{
    if (pf->fd < 0)
        return;
    /* Unlink while still holding the lock, so that a server starting now
     * cannot lock the file and then lose it. */
    if (unlink(pf->path) < 0 && errno != ENOENT)
        ek_log(EK_LOG_DEBUG, "cannot remove %s: %s", pf->path, strerror(errno));
    close(pf->fd);
    free(pf->path);
    pf->fd = -1;
    pf->path = NULL;
}

/* getpwnam, or getpwuid for a number. */
static struct passwd *find_user(const char *user)
{
    char *end;
    errno = 0;
    struct passwd *pw = getpwnam(user);
    if (pw != NULL)
        return pw;
    unsigned long uid = strtoul(user, &end, 10);
    if (*user != '\0' && *end == '\0' && uid <= 0x7fffffffUL)
        return getpwuid((uid_t)uid);
    return NULL;
}

int ek_drop_privileges(const char *user)
{
    struct passwd *pw = find_user(user);
    if (pw == NULL) {
        ek_warnx("--user %s: no such user", user);
        return -ESRCH;
    }
    uid_t uid = pw->pw_uid;
    gid_t gid = pw->pw_gid;
    if (uid == geteuid() && uid != 0)
        return 0; /* already that user */
    if (initgroups(pw->pw_name, gid) < 0 || setgid(gid) < 0 ||
        setuid(uid) < 0) {
        int err = -errno;
        ek_warnx("--user %s: %s", user, strerror(-err));
        return err;
    }
    if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
        ek_warnx("--user %s: root could be regained; refusing to run", user);
        return -EPERM;
    }
    ek_log(EK_LOG_INFO, "running as %s (uid %ld, gid %ld)", pw->pw_name,
           (long)uid, (long)gid);
    return 0;
}

bool ek_running_as_root(void)
{
    return geteuid() == 0;
}

int ek_serve_inetd(void)
{
    static char buf[64 * 1024];
    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            if (errno == ECONNRESET)
                return 0; /* the client left; nothing to give back */
            int err = -errno;
            ek_log(EK_LOG_ERROR, "--inetd: read: %s", strerror(-err));
            return err;
        }
        if (n == 0)
            return 0;
        int err = ek_write_all(STDOUT_FILENO, buf, (size_t)n);
        if (err == -EPIPE || err == -ECONNRESET)
            return 0;
        if (err < 0) {
            ek_log(EK_LOG_ERROR, "--inetd: write: %s", strerror(-err));
            return err;
        }
    }
}
