/*
 * tokenset.h - "have I seen this token in this batch?", mapping a token to
 * the index of the first item that carried it. Open addressing over a table
 * reused from batch to batch, so the hot path allocates nothing.
 *
 *   tokenset_reset(ts, n)              room for n tokens, empty
 *   tokenset_add(ts, token, i)         -1 when new (now stored as i), else the first index
 *
 * The round's dedupe rule on top of it (pipeline.c): the tokens of every
 * INSERT in flight (up to --inserts-in-flight of them) are marked first;
 * then each due vote, in poll order, is
 *
 *   TOKEN_FIRST      the first copy this round: it goes to the gate
 *   TOKEN_REPEAT     a later copy of a token of this round: a duplicate
 *   TOKEN_IN_FLIGHT  its token is in one of the INSERTs in flight: it waits for
 *                    that INSERT's result (then it meets the recorded cache, or,
 *                    if the INSERT failed, it may be the token's first copy again)
 *
 *   tokenset_mark_in_flight(ts, token)
 *   tokenset_verdict(ts, token, i)
 */
#ifndef TADAK_TOKENSET_H
#define TADAK_TOKENSET_H

#include <stddef.h>

struct tokenset {
    const char **keys;
    size_t *vals;
    size_t cap; /* a power of two, at least twice the tokens */
};

enum token_verdict { TOKEN_FIRST, TOKEN_REPEAT, TOKEN_IN_FLIGHT };

void tokenset_reset(struct tokenset *ts, size_t n);
void tokenset_mark_in_flight(struct tokenset *ts, const char *token);
enum token_verdict tokenset_verdict(struct tokenset *ts, const char *token, size_t index);
long tokenset_add(struct tokenset *ts, const char *token, size_t index);
void tokenset_free(struct tokenset *ts);

#endif
