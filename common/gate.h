/*
 * gate.h - the Redis dedupe gate in front of PostgreSQL.
 *
 * Every vote token gets one Redis key, prefix + token, holding either
 *
 *   "P <owner> <event_id>"   a consumer (owner) is recording the vote now;
 *                            the key expires after the lock TTL, so a dead
 *                            consumer cannot block the token forever
 *   "D <event_id>"           the vote is recorded; kept for the dedupe window
 *
 * A batch takes its locks in one pipelined round trip of
 * `SET key "P owner id" NX PX ttl GET` (Redis >= 7) and settles them with a
 * compare-and-set script (up to 100 keys a call): only the owner of a "P"
 * value may turn it into "D" (done) or delete it (release). Marking done
 * does not wait for Redis' answer; the next call on the gate reads it. There is no
 * unconditional DEL anywhere, so a consumer whose lock expired can never
 * destroy the lock or the marker of another.
 *
 * Redis only stops bursts early; PostgreSQL's UNIQUE token decides. When
 * Redis is unreachable every item comes back GATE_OPEN ("ask PostgreSQL"),
 * the outage is logged once, and reconnection is tried at most once a second.
 *
 *   g = gate_new(url, prefix, lock_ttl_ms, window_ms, err, sizeof err);
 *   gate_acquire(g, items, n)     fills items[i]->action; -1 when Redis is down
 *   gate_mark_done(g, items, n)   "P ours" -> "D id" for items we hold (sent, not awaited)
 *   gate_release(g, items, n)     delete "P ours" for items we hold
 *   gate_count(g, fields, deltas, n)   HINCRBY <prefix>tadak:stats, one round trip
 *   gate_decide(old, len, owner)  the pure reply -> action table
 */
#ifndef TADAK_GATE_H
#define TADAK_GATE_H

#include <stddef.h>
#include <stdint.h>

#define GATE_VALUE_MAX 192 /* "P " + owner + " " + event id, with room to spare */
#define GATE_OWNER_MAX 128

enum gate_action {
    GATE_OURS,      /* we hold the lock: record the vote, then mark it done */
    GATE_DUPLICATE, /* "D ...": the vote is already recorded, skip it */
    GATE_BUSY,      /* another owner holds the lock: retry later, settle nothing */
    GATE_OPEN,      /* no usable answer (Redis down, foreign value): PostgreSQL decides */
};

/* One token's trip through the gate. The caller fills token and event_id. */
struct gate_item {
    const char *token;
    const char *event_id;
    enum gate_action action;   /* set by gate_acquire */
    char lock[GATE_VALUE_MAX]; /* the "P ..." value we hold when action == GATE_OURS */
};

struct gate;

struct gate *gate_new(const char *url, const char *prefix, int64_t lock_ttl_ms, int64_t window_ms,
                      char *errstr, size_t errsize);
void gate_free(struct gate *g);
const char *gate_owner(const struct gate *g);

int gate_acquire(struct gate *g, struct gate_item *const *items, size_t n);
int gate_mark_done(struct gate *g, struct gate_item *const *items, size_t n);
int gate_release(struct gate *g, struct gate_item *const *items, size_t n);

/*
 * Add deltas[i] to field fields[i] of the hash <prefix>tadak:stats (zeros are
 * skipped), pipelined in one round trip. These are display counters for the
 * producer's GET /stats, not part of the guarantee: -1 when Redis is down, and
 * the caller keeps the deltas for the next call.
 */
#define GATE_STATS_KEY "tadak:stats"
int gate_count(struct gate *g, const char *const *fields, const int64_t *deltas, size_t n);

/*
 * The decision table. old is the previous value returned by SET ... GET
 * (NULL for a nil reply: the SET succeeded), owner is this process' owner.
 */
enum gate_action gate_decide(const char *old, size_t len, const char *owner);

/* redis://[[user]:password@]host[:port][/db]; exposed for the tests. */
int gate_parse_url(const char *url, char *host, size_t hostsize, int *port, int *db, char *password,
                   size_t pwsize, char *errstr, size_t errsize);

#endif
