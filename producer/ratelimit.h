/*
 * ratelimit.h - per-client token buckets in a table of fixed size: the
 * producer's answer to one client sending more than its share.
 *
 * Each client, named by a key of bytes the caller chooses (the producer's
 * edge.c: 'u' and the 8 bytes of a verified user's id; for the rest the
 * address family and 16 bytes of the address, clientaddr_key()), has a
 * bucket of at most `burst` tokens that refills at `per_second`; a request
 * takes one token or is refused. A new client starts with a full bucket.
 * Refill is min(burst, tokens + elapsed_ms * rate / 1000); a clock that
 * goes backwards (now before the bucket's last time) neither adds nor
 * removes tokens. Tokens are doubles; a token counts as whole from
 * 1 - 1e-9, so a rate such as 20/m gives its token back after exactly
 * 3000 ms despite binary rounding.
 *
 * The table: `slots` entries (rounded up to a power of two, at least 64),
 * allocated once by ratelimit_new() and never grown. It is set-associative:
 * a key's hash picks a set of 4 ways, kept in most-recently-used order. A
 * key not in its set takes the set's last way: an empty one, else the least
 * recently used client's, which is forgotten. So memory never grows, and
 * what a flood of distinct keys (spoofed or a botnet's addresses) costs is
 * that remembered clients get evicted: each comes back with a full bucket,
 * a fresh burst. Size the table for the clients seen within one refill time
 * (burst / rate) and a flood can only reset buckets, never exhaust memory.
 *
 * An entry holds no key, only its 64-bit hash as its identity: FNV-1a 64
 * over a random 16-byte seed (getrandom(2), one per table) and the key,
 * then mixed. The seed keeps a client from aiming its keys at one set to
 * evict a victim; two keys sharing a 64-bit hash (about 2^-64 per pair)
 * would share a bucket, which is negligible. Keep keys short: one longer
 * than 64 bytes is first reduced to its plain (unseeded) FNV-1a 64, where
 * the seed no longer stops aimed collisions.
 *
 * Cost: 24 bytes a slot (hash, tokens, last time), plus the handle with its
 * 64 lock stripes (a few KiB): 1 Mi slots are 24 MiB. ratelimit_bytes()
 * says exactly. Thread-safe: a set is guarded by one of 64 striped mutexes,
 * so HTTP threads taking for different clients rarely wait on each other.
 * Times are milliseconds passed in (util_now_ms()), so tests need no clock.
 *
 *   if (ratelimit_parse_rate("100/s", &rate, err, sizeof err) != 0) ...
 *   rl = ratelimit_new(rate, burst, slots);    NULL: arguments out of range
 *   if (!ratelimit_take(rl, key, keylen, util_now_ms(), &v))
 *       answer 429 with Retry-After: v.retry_after_s
 *   ratelimit_peek(rl, key, keylen, now, &v)   is there a token? (none taken)
 *   RateLimit headers: v.limit, v.remaining, v.reset_s
 *   ratelimit_slots(rl);  ratelimit_bytes(rl);  ratelimit_free(rl);
 */
#ifndef TADAK_RATELIMIT_H
#define TADAK_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_RATE_MAX  1e9        /* tokens per second */
#define RATELIMIT_BURST_MAX 1000000000 /* tokens */
#define RATELIMIT_SLOTS_MAX (1u << 26) /* 1.5 GiB of entries */

struct ratelimit;

struct ratelimit_verdict {
    int allowed;           /* 1: take it, 0: over the limit */
    int64_t limit;         /* the burst: most requests a client may send at once */
    int64_t remaining;     /* whole tokens left after this request (0 when refused) */
    int64_t reset_s;       /* seconds until the bucket is full again (ceil, >= 0) */
    int64_t retry_after_s; /* refused: seconds until one token is back (ceil, >= 1); allowed: 0 */
};

/*
 * "100/s", "100" (per second), "6000/m", "0.5/s", "2/h": a decimal number
 * (up to 9 decimals, no sign, no exponent) and an optional unit, nothing
 * else. 0 with tokens per second in *per_second, within
 * (0, RATELIMIT_RATE_MAX]; or -1 with the reason in errstr.
 */
int ratelimit_parse_rate(const char *text, double *per_second, char *errstr, size_t errsize);
/*
 * per_second in (0, RATELIMIT_RATE_MAX], burst in [1, RATELIMIT_BURST_MAX],
 * slots up to RATELIMIT_SLOTS_MAX (rounded up to a power of two, at least
 * 64); NULL when an argument is out of range.
 */
struct ratelimit *ratelimit_new(double per_second, int64_t burst, size_t slots);
void ratelimit_free(struct ratelimit *rl);
/* Takes a token for key at now_ms if there is one; fills *v and returns v->allowed. */
int ratelimit_take(struct ratelimit *rl, const void *key, size_t keylen, int64_t now_ms,
                   struct ratelimit_verdict *v);
/*
 * Whether key has a token at now_ms, taking none and changing nothing (an
 * unknown key is a full bucket, not added): fills *v as a take would have
 * had it been refused or allowed, remaining counting the token still there.
 */
int ratelimit_peek(struct ratelimit *rl, const void *key, size_t keylen, int64_t now_ms,
                   struct ratelimit_verdict *v);
size_t ratelimit_slots(const struct ratelimit *rl);
size_t ratelimit_bytes(const struct ratelimit *rl); /* the handle and its table */

#endif
