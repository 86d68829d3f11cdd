/*
 * gate.h - the Redis dedupe gate in front of PostgreSQL.
 *
 * Every vote token gets one Redis key, prefix + token, holding either
 *
 *   "P <owner> <event_id>"   a consumer (owner) is recording the vote now;
 *                            the key expires after the lock TTL, so a dead
 *                            consumer cannot block the token forever
 *   "1"                      the vote is recorded (the done marker); kept
 *                            for the dedupe window. A small integer, so
 *                            Redis stores one shared object for every
 *                            marker instead of a string per key (32 B a
 *                            token less; not with an LRU/LFU maxmemory
 *                            policy). "D", written by earlier versions,
 *                            still reads as done.
 *
 * A batch takes its locks in one pipelined round trip of
 * `SET key "P owner id" NX PX ttl GET` (Redis >= 7). A recorded token is
 * marked done with a plain pipelined `SET key 1 PX window` (PostgreSQL has
 * just said the vote is recorded, so the marker is true whoever holds the
 * key); a lock we give up is released with a compare-and-delete script (up
 * to 100 keys a call), so a consumer whose lock expired can never destroy
 * the lock of another. Marking done does not wait for Redis' answer; the
 * next call on the gate reads it.
 *
 * Owner liveness: every consumer keeps <prefix>tadak:alive:<id> = <owner>
 * alive with a short TTL (GATE_ALIVE_TTL_MS, refreshed by gate_heartbeat
 * about once a second). <id> is the instance id (--instance-id) when there is
 * one, else the owner itself; the owner is "<instance id>@<host>:<pid>:<rand>"
 * or "<host>:<pid>:<rand>". A "P" lock whose owner is no longer the value of
 * its alive key (the process died, or was restarted under the same instance
 * id) is taken over by compare-and-set inside gate_acquire, so a SIGKILLed
 * consumer blocks its tokens for seconds, not for the lock TTL. A live
 * consumer that misses heartbeats for GATE_ALIVE_TTL_MS looks dead too;
 * PostgreSQL still decides, so a wrong "dead" verdict costs a dup_db, never
 * a row.
 *
 * Namespace: <prefix>tadak:database holds the identity of the database the
 * markers under this prefix belong to (store_identity). The first consumer
 * claims it; a consumer for another database is refused by gate_new (or,
 * found on a reconnect, the gate stays down and PostgreSQL decides), so two
 * environments sharing a Redis never settle each other's votes. The claim
 * is checked again by every heartbeat and after every batch's SETs (one more
 * pipelined `SET key <ours> NX GET`, no extra round trip): a key gone
 * (evicted, flushed) is claimed again at once; a key naming another
 * database (one that claimed it meanwhile) makes the gate act as if Redis
 * were down - gate_acquire returns -1 with every item GATE_OPEN after
 * giving back the locks it had just taken, no done marker is written -
 * logged once, until a reconnect finds the prefix ours again. A value an
 * older tadak wrote (our identity without its "#<id>") counts as ours and
 * is upgraded.
 *
 * Redis only stops bursts early; PostgreSQL's UNIQUE token decides. When
 * Redis is unreachable every item comes back GATE_OPEN ("ask PostgreSQL"),
 * the outage is logged once, and reconnection is tried at most once a second.
 *
 *   g = gate_new(url, prefix, instance_id, db_identity, lock_ttl_ms, window_ms,
 *                err, sizeof err);
 *   gate_acquire(g, items, n)     fills items[i]->action; -1 when Redis is down
 *   gate_mark_done(g, items, n)   the done marker for recorded items (sent, not awaited)
 *   gate_release(g, items, n)     delete "P ours" for items we hold
 *   gate_heartbeat(g)             keep our alive key (at most one write a second)
 *   gate_retire(g)                delete our alive key (clean exit)
 *   gate_add_stats(g, totals)     stats hash, see below
 *   gate_decide(old, len, owner)  the pure reply -> action table
 *
 * Readers (the producer's status routes) open the same keys without taking
 * part: no owner, no alive key, no namespace claim, nothing written.
 *
 *   g = gate_reader(url, prefix, command_ms, err, sizeof err);
 *   gate_peek(g, token, &state, err, sizeof err)   none / pending ("P") / done
 *   gate_read_stats(g, vals, err, sizeof err)      the stats hash, GATE_NSTATS fields
 */
#ifndef TADAK_GATE_H
#define TADAK_GATE_H

#include <stddef.h>
#include <stdint.h>

#define GATE_VALUE_MAX 192 /* "P " + owner + " " + event id, with room to spare */
#define GATE_OWNER_MAX 128

enum gate_action {
    GATE_OURS,      /* we hold the lock: record the vote, then mark it done */
    GATE_DUPLICATE, /* the done marker: the vote is already recorded, skip it */
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

#define GATE_DONE_VALUE   "1"
#define GATE_ALIVE_TTL_MS 5000
#define GATE_HEARTBEAT_MS 1000
#define GATE_DATABASE_KEY "tadak:database"
#define GATE_ALIVE_KEY    "tadak:alive:"

/*
 * instance_id: NULL or "" for none. db_identity: NULL skips the namespace
 * check. NULL with errstr set when Redis answers and the prefix belongs to
 * another database; Redis down at start is not an error (an outage).
 */
struct gate *gate_new(const char *url, const char *prefix, const char *instance_id,
                      const char *db_identity, int64_t lock_ttl_ms, int64_t window_ms, char *errstr,
                      size_t errsize);
void gate_free(struct gate *g);
const char *gate_owner(const struct gate *g);

int gate_acquire(struct gate *g, struct gate_item *const *items, size_t n);
int gate_mark_done(struct gate *g, struct gate_item *const *items, size_t n);
int gate_release(struct gate *g, struct gate_item *const *items, size_t n);
int gate_heartbeat(struct gate *g);
void gate_retire(struct gate *g);
/* 1 while Redis is down, 0 while it answers; where (may be NULL): its "host:port". */
int gate_is_down(const struct gate *g, char *where, size_t wheresize);

/*
 * totals[i] is this process' running total of gate_stat_names[i]. The gate
 * adds to the hash
 * <prefix>tadak:stats:<group> what Redis has not confirmed yet, as one MULTI/EXEC
 * burst whose reply a later call reads: a field counts as published only
 * on that reply, and a burst lost with the connection is sent again, so
 * the fields move together and stay consistent with each other. A burst
 * Redis applied but whose reply was lost with the connection is counted
 * twice: the hash may run ahead of the totals, never behind. Display
 * counters for the producer's GET /stats, not part of the guarantee: -1
 * when Redis is down (the next call catches up).
 */
#define GATE_STATS_KEY "tadak:stats:" /* + the consumer group: a replay never moves it */

/*
 * The decision table. old is the previous value returned by SET ... GET
 * (NULL for a nil reply: the SET succeeded), owner is this process' owner.
 */
enum gate_action gate_decide(const char *old, size_t len, const char *owner);

/*
 * The length of the id in an owner (from a "P <owner> <event_id>" value):
 * what comes before its last '@', or the whole owner without one. Its alive
 * key is <prefix>tadak:alive:<id>. Exposed for the tests.
 */
size_t gate_owner_id(const char *owner, size_t len);

/* The stats hash's fields, in the order gate_read_stats returns them. */
enum gate_stat {
    GATE_STAT_CONSUMED,
    GATE_STAT_INSERTED,
    GATE_STAT_DUP_REDIS,
    GATE_STAT_DUP_DB,
    GATE_STAT_DEAD_LETTERED,
    GATE_NSTATS
};
extern const char *const gate_stat_names[GATE_NSTATS];
int gate_add_stats(struct gate *g, const char *group, const int64_t totals[GATE_NSTATS]);

enum gate_state {
    GATE_STATE_NONE,    /* no key: never seen, or its marker expired */
    GATE_STATE_PENDING, /* "P ...": a consumer is recording it now */
    GATE_STATE_DONE,    /* the done marker: recorded */
};

/* A gate that only reads; its calls block for at most command_ms. */
struct gate *gate_reader(const char *url, const char *prefix, int command_ms, char *errstr,
                         size_t errsize);
int gate_peek(struct gate *g, const char *token, enum gate_state *state, char *errstr,
              size_t errsize);
int gate_read_stats(struct gate *g, const char *group, int64_t vals[GATE_NSTATS], char *errstr,
                    size_t errsize);

#endif
