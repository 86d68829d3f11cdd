/*
 * slow_pidfile_shim.c - a test hook from outside: test_stack.py builds it into
 * a shared object and LD_PRELOADs it into the redis-server that
 * `scripts/stack start-service redis` launches. It is never part of tadak.
 *
 * Redis writes its pid file (createPidFile) as fopen(path, "w") - the file is
 * now empty - then fprintf + fclose. On a busy two-core machine Redis can be
 * descheduled between the two, which is the window issue #21 item 11 found:
 * a liveness check reading the file then sees no pid. The shim makes that
 * delay happen every time: after a successful fopen(..., "w") of a name
 * ending in ".pid" it sleeps TADAK_SHIM_PIDFILE_DELAY_MS (default 50)
 * before returning. Only in a process named redis-server; anything else
 * (bash, redis-cli) passes straight through.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef FILE *(*fopen_fn)(const char *, const char *);

static int is_redis(void)
{
    return strcmp(program_invocation_short_name, "redis-server") == 0;
}

static void delay(void)
{
    const char *v = getenv("TADAK_SHIM_PIDFILE_DELAY_MS");
    char *end;
    long ms = 50;
    struct timespec ts;

    if (v && *v) {
        errno = 0;
        ms = strtol(v, &end, 10);
        if (errno || *end || ms < 0 || ms > 10000)
            ms = 50;
    }
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static FILE *slow(FILE *fp, const char *path, const char *mode)
{
    size_t n = strlen(path);

    if (fp && mode[0] == 'w' && n > 4 && strcmp(path + n - 4, ".pid") == 0 && is_redis())
        delay();
    return fp;
}

FILE *fopen(const char *path, const char *mode)
{
    fopen_fn real = (fopen_fn)dlsym(RTLD_NEXT, "fopen");
    return slow(real(path, mode), path, mode);
}

FILE *fopen64(const char *path, const char *mode)
{
    fopen_fn real = (fopen_fn)dlsym(RTLD_NEXT, "fopen64");
    return slow(real(path, mode), path, mode);
}
