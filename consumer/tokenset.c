/*
 * tokenset.c - see tokenset.h. FNV-1a hash, linear probing. The set keeps
 * pointers, not copies: tokens must outlive the batch.
 */
#include "tokenset.h"
#include "util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void tokenset_reset(struct tokenset *ts, size_t n)
{
    size_t want = 16;

    while (want < 2 * n)
        want *= 2;
    if (want > ts->cap) {
        free(ts->keys);
        free(ts->vals);
        ts->keys = xmalloc(want * sizeof(*ts->keys));
        ts->vals = xmalloc(want * sizeof(*ts->vals));
        ts->cap = want;
    }
    memset(ts->keys, 0, ts->cap * sizeof(*ts->keys));
}

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

long tokenset_add(struct tokenset *ts, const char *token, size_t index)
{
    size_t mask = ts->cap - 1, i = (size_t)hash(token) & mask;

    for (;; i = (i + 1) & mask) {
        if (!ts->keys[i]) {
            ts->keys[i] = token;
            ts->vals[i] = index;
            return -1;
        }
        if (strcmp(ts->keys[i], token) == 0)
            return (long)ts->vals[i];
    }
}

void tokenset_free(struct tokenset *ts)
{
    free(ts->keys);
    free(ts->vals);
    memset(ts, 0, sizeof(*ts));
}
