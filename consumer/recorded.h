/*
 * recorded.h - the recorded cache: tokens this consumer knows are recorded,
 * kept in process so that later copies are settled as duplicates without a
 * Redis round trip.
 *
 * A token may enter only once it is certainly recorded: our INSERT returned
 * it, PostgreSQL reported it as a conflict (its row exists), or Redis
 * answered with the done marker. A recorded token stays recorded - the votes table's
 * UNIQUE row is the proof - so a hit can never drop a vote. This assumes
 * rows are not deleted while the consumer runs; to bound how long that
 * assumption is leaned on, no entry is trusted for longer than the dedupe
 * window (the lifetime of Redis' done markers).
 *
 * The full token is stored and compared: a hash collision costs a string
 * compare, never a false "recorded". Memory is bounded: two generations, each
 * with a fixed number of slots and a fixed byte pool. New tokens go into the
 * current one; when it is full or half a window old, the previous one is
 * dropped and the current one takes its place (a cheap stand-in for LRU:
 * the most recent tokens are always kept).
 *
 *   rc = recorded_new(slots, pool_bytes, window_ms)   per generation
 *   recorded_has(rc, token, now_ms)    1 when known recorded, else 0
 *   recorded_add(rc, token, now_ms)    remember a recorded token
 *   recorded_free(rc)
 */
#ifndef TADAK_RECORDED_H
#define TADAK_RECORDED_H

#include <stddef.h>
#include <stdint.h>

struct recorded;

/* slots is rounded up to a power of two; a generation holds 3/4 of it. */
struct recorded *recorded_new(size_t slots, size_t pool_bytes, int64_t window_ms);
int recorded_has(struct recorded *dc, const char *token, int64_t now_ms);
void recorded_add(struct recorded *dc, const char *token, int64_t now_ms);
size_t recorded_count(const struct recorded *dc);
void recorded_free(struct recorded *dc);

#endif
