/* fastvpd sysfs helper: walks sysfs with directory fds. No Python API: cffi calls these with the
 * GIL released. */
#include "_sysfs.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

ssize_t fv_read_file_at(int dirfd, const char *name, unsigned char *buf, size_t cap, int *err)
{
    /* O_NONBLOCK: opening a FIFO in a hostile tree must not wait for a writer. */
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd < 0 && errno == ELOOP)  /* sysfs attributes are never links, but a path may be one */
        fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        *err = errno;
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        *err = errno;
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        *err = EINVAL;
        close(fd);
        return -1;
    }
    size_t got = 0;
    while (got < cap) {
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            *err = errno;
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    return (ssize_t)got;
}
