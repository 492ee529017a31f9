/* A folder that can be looked at but not listed, for the tests.
 *
 * Preloaded into ferry (LD_PRELOAD): opendir(3) of a path ending in the value of
 * FERRY_UNLISTABLE fails with EIO, as a failing disk or a dropped share does; everything
 * else is untouched. */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static DIR *(*next_opendir)(const char *);

DIR *opendir(const char *name) {
    if (!next_opendir) next_opendir = dlsym(RTLD_NEXT, "opendir");
    const char *suffix = getenv("FERRY_UNLISTABLE");
    if (suffix && *suffix) {
        size_t n = strlen(name), m = strlen(suffix);
        if (n >= m && strcmp(name + n - m, suffix) == 0) {
            errno = EIO;
            return NULL;
        }
    }
    return next_opendir(name);
}
