/*
 * tokenset.c - see tokenset.h. FNV-1a hash (util.h), linear probing. The
 * set keeps pointers, not copies: tokens must outlive the batch.
 */
#include "tokenset.h"
#include "util.h"

#include <limits.h>
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

long tokenset_add(struct tokenset *ts, const char *token, size_t index)
{
    size_t mask = ts->cap - 1, i = (size_t)util_fnv1a64(token, strlen(token)) & mask;

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

/* Never an item index: a batch holds far fewer items. */
#define IN_FLIGHT ((size_t)LONG_MAX)

void tokenset_mark_in_flight(struct tokenset *ts, const char *token)
{
    tokenset_add(ts, token, IN_FLIGHT);
}

enum token_verdict tokenset_verdict(struct tokenset *ts, const char *token, size_t index)
{
    long first = tokenset_add(ts, token, index);

    if (first < 0)
        return TOKEN_FIRST;
    return (size_t)first == IN_FLIGHT ? TOKEN_IN_FLIGHT : TOKEN_REPEAT;
}

void tokenset_free(struct tokenset *ts)
{
    free(ts->keys);
    free(ts->vals);
    memset(ts, 0, sizeof(*ts));
}
