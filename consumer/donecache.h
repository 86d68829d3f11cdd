/*
 * donecache.h - tokens this consumer knows are recorded, kept in process so
 * that later copies are settled as duplicates without a Redis round trip.
 *
 * A token may enter only once it is certainly recorded: our INSERT returned
 * it, PostgreSQL reported it as a conflict (its row exists), or Redis
 * answered "D ...". A recorded token stays recorded - the votes table's
 * UNIQUE row is the proof - so a hit can never drop a vote. This assumes
 * rows are not deleted while the consumer runs; to bound how long that
 * assumption is leaned on, no entry is trusted for longer than the dedupe
 * window (the lifetime of Redis' "D" markers).
 *
 * The full token is stored and compared: a hash collision costs a string
 * compare, never a false "done". Memory is bounded: two generations, each
 * with a fixed number of slots and a fixed byte pool. New tokens go into the
 * current one; when it is full or half a window old, the previous one is
 * dropped and the current one takes its place (a cheap stand-in for LRU:
 * the most recent tokens are always kept).
 *
 *   dc = donecache_new(slots, pool_bytes, window_ms)   per generation
 *   donecache_has(dc, token, now_ms)    1 when known recorded, else 0
 *   donecache_add(dc, token, now_ms)    remember a recorded token
 *   donecache_free(dc)
 */
#ifndef TADAK_DONECACHE_H
#define TADAK_DONECACHE_H

#include <stddef.h>
#include <stdint.h>

struct donecache;

/* slots is rounded up to a power of two; a generation holds 3/4 of it. */
struct donecache *donecache_new(size_t slots, size_t pool_bytes, int64_t window_ms);
int donecache_has(struct donecache *dc, const char *token, int64_t now_ms);
void donecache_add(struct donecache *dc, const char *token, int64_t now_ms);
size_t donecache_count(const struct donecache *dc);
void donecache_free(struct donecache *dc);

#endif
