/*
 * tokenset.h - "have I seen this token in this batch?", mapping a token to
 * the index of the first item that carried it. Open addressing over a table
 * reused from batch to batch, so the hot path allocates nothing.
 *
 *   tokenset_reset(ts, n)              room for n tokens, empty
 *   tokenset_add(ts, token, i)         -1 when new (now stored as i), else the first index
 */
#ifndef TADAK_TOKENSET_H
#define TADAK_TOKENSET_H

#include <stddef.h>

struct tokenset {
    const char **keys;
    size_t *vals;
    size_t cap; /* a power of two, at least twice the tokens */
};

void tokenset_reset(struct tokenset *ts, size_t n);
long tokenset_add(struct tokenset *ts, const char *token, size_t index);
void tokenset_free(struct tokenset *ts);

#endif
