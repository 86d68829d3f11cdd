/*
 * corpus.c - see corpus.h. The tests run from tests/unit (tests/run), so the
 * default path is relative to it.
 */
#include "corpus.h"
#include "util.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define CORPUS_DEFAULT_DIR "../../../shared/corpus/json-test-suite/test_parsing"

static char *read_whole(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n = -1;

    if (f && fseek(f, 0, SEEK_END) == 0)
        n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fail_msg("cannot read %s", path);
        return NULL; /* not reached: fail_msg leaves the test */
    }
    buf = xmalloc((size_t)n + 1);
    *len = fread(buf, 1, (size_t)n, f);
    buf[*len] = '\0';
    fclose(f);
    return buf;
}

size_t corpus_each(void (*fn)(const struct corpus_file *f, void *arg), void *arg)
{
    const char *dir = getenv("TADAK_CORPUS_DIR");
    struct dirent *de;
    size_t files = 0;
    DIR *d;

    if (!dir)
        dir = CORPUS_DEFAULT_DIR;
    d = opendir(dir);
    if (!d)
        fail_msg("corpus not found at %s (set TADAK_CORPUS_DIR)", dir);
    while ((de = readdir(d)) != NULL) {
        struct corpus_file f;
        char path[1024];
        char *buf;

        if (!strstr(de->d_name, ".json"))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        buf = read_whole(path, &f.len);
        f.name = de->d_name;
        f.buf = buf;
        fn(&f, arg);
        free(buf);
        files++;
    }
    closedir(d);
    return files;
}
