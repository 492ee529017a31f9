/* A full disk in the middle of a checkpoint journal append, for the tests.
 *
 * Preloaded into ferry (LD_PRELOAD). The FERRY_SHORT_WRITE_AT-th write(2) to a file named
 * "journal" writes only half its bytes, as a disk that fills up mid-write does; the next
 * write to it fails with ENOSPC; later writes go through. Everything else is untouched. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static ssize_t (*next_write)(int, const void *, size_t);
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int seen = 0;
static int phase = 0; /* 0: counting, 1: the next write fails, 2: done */

static int is_journal(int fd) {
    char link[64], target[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n <= 0) return 0;
    target[n] = 0;
    const char *base = strrchr(target, '/');
    return base && strcmp(base, "/journal") == 0;
}

ssize_t write(int fd, const void *buf, size_t count) {
    if (!next_write) next_write = dlsym(RTLD_NEXT, "write");
    if (!is_journal(fd)) return next_write(fd, buf, count);
    const char *at_text = getenv("FERRY_SHORT_WRITE_AT");
    int at = at_text ? atoi(at_text) : 0;
    pthread_mutex_lock(&lock);
    seen++;
    if (phase == 1) {
        phase = 2;
        pthread_mutex_unlock(&lock);
        errno = ENOSPC;
        return -1;
    }
    if (phase == 0 && seen == at && count > 8) {
        phase = 1;
        pthread_mutex_unlock(&lock);
        return next_write(fd, buf, count / 2);
    }
    pthread_mutex_unlock(&lock);
    return next_write(fd, buf, count);
}
