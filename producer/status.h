/*
 * status.h - what the producer can tell about votes after it published them:
 * the state of one vote, the tallies, the consumers' counters, and the Redis
 * side of Idempotency-Key.
 *
 * The producer itself never needs PostgreSQL or Redis to accept a vote; these
 * answers do. Each store is optional (no URL: the routes that need it answer
 * 503 not_configured) and reached through ONE connection guarded by a mutex,
 * opened lazily, dropped on any error and re-opened at most once a second, so
 * an outage costs a fast 503, never a stuck HTTP thread: libpq gets
 * connect_timeout=2 and statement_timeout=2s, hiredis a 500 ms connect and a
 * 1 s command timeout.
 *
 *   st = status_new(&opts, err, sizeof err);
 *   status_has_db(st) / status_has_redis(st)     configured?
 *   status_vote(st, user, candidate, &res, err, n)     0 / -1 (unavailable)
 *   status_tallies(st, &json, err, n)                  0 + malloc'd JSON / -1
 *   status_stats(st, vals[STATUS_NSTATS], err, n)      0 / -1
 *   status_idem_claim(st, key, value, ttl, old, oldsize, &existed, err, n)
 *   status_idem_settle(st, key, expect, value, ttl)    compare-and-set
 *   status_idem_release(st, key, expect)               compare-and-delete
 *   status_free(st);
 */
#ifndef TADAK_STATUS_H
#define TADAK_STATUS_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"

struct status;

struct status_opts {
    const char *database_url; /* NULL or "": no PostgreSQL */
    const char *redis_url;    /* NULL or "": no Redis */
    const char *key_prefix;   /* the consumers' --key-prefix */
};

enum status_state { STATUS_RECORDED, STATUS_PENDING, STATUS_UNKNOWN };

struct status_vote {
    enum status_state state;
    char event_id[EVENT_ID_LEN]; /* STATUS_RECORDED */
    char created_at[40];         /* STATUS_RECORDED, ISO 8601 UTC */
};

/* The consumers' counters, in this order, from <prefix>tadak:stats. */
#define STATUS_NSTATS 5
extern const char *const status_stat_names[STATUS_NSTATS];

struct status *status_new(const struct status_opts *o, char *errstr, size_t errsize);
void status_free(struct status *st);
int status_has_db(const struct status *st);
int status_has_redis(const struct status *st);

int status_vote(struct status *st, int64_t user_id, int64_t candidate_id, struct status_vote *res,
                char *errstr, size_t errsize);
int status_tallies(struct status *st, char **json, char *errstr, size_t errsize);
int status_stats(struct status *st, int64_t vals[STATUS_NSTATS], char *errstr, size_t errsize);

int status_idem_claim(struct status *st, const char *key, const char *value, int64_t ttl_ms,
                      char *old, size_t oldsize, int *existed, char *errstr, size_t errsize);
int status_idem_settle(struct status *st, const char *key, const char *expect, const char *value,
                       int64_t ttl_ms);
int status_idem_release(struct status *st, const char *key, const char *expect);

#endif
