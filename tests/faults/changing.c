/* A file that changes under every read, for the tests.
 *
 * Preloaded into ferry (LD_PRELOAD): after each pread(2) of a file whose path ends in the
 * value of FERRY_CHANGING, one byte is appended to that file, as a busy writer would.
 * The size changes with every read, so the change is seen whatever the resolution of the
 * file system's timestamps; everything else is untouched. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ssize_t (*next_pread64)(int, void *, size_t, off_t);

static void touch_if_watched(int fd) {
    const char *suffix = getenv("FERRY_CHANGING");
    if (!suffix || !*suffix) return;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) return;
    path[n] = 0;
    size_t m = strlen(suffix);
    if ((size_t)n < m || strcmp(path + n - m, suffix) != 0) return;
    int w = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    if (w < 0) return;
    if (write(w, "x", 1) < 0) { /* the test sees the file unchanged and fails */ }
    close(w);
}

ssize_t pread64(int fd, void *buf, size_t count, off_t offset) {
    if (!next_pread64) next_pread64 = dlsym(RTLD_NEXT, "pread64");
    ssize_t got = next_pread64(fd, buf, count, offset);
    if (got > 0) touch_if_watched(fd);
    return got;
}

ssize_t pread(int fd, void *buf, size_t count, off_t offset) {
    return pread64(fd, buf, count, offset);
}
