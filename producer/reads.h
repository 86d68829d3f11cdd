/*
 * reads.h - the producer's status reads, served off the voting path:
 * GET /votes/{user_id}/{candidate_id}, /tallies and /stats, and for any
 * event type (evtype.h) GET /events/{type}/{key...} and
 * /events/{type}/counts.
 *
 * A vote must never wait for a status read, so the HTTP threads never query
 * PostgreSQL or Redis for one. They hand the read to this module's worker
 * threads (READS_THREADS, each with its own PostgreSQL session through
 * store.h and its own Redis connection through a gate reader) and suspend
 * the connection; the worker runs the read and calls the job's completion,
 * which resumes it. The queue is bounded (READS_QUEUE_MAX): a read that
 * finds it full fails at once (503), it never waits for room.
 *
 * /tallies comes from a cache. A request that finds an answer younger than
 * READS_TALLIES_TTL_MS gets it from reads_tallies_cached() in the HTTP
 * thread, without a query; otherwise a worker refreshes it, one refresh at a
 * time, so PostgreSQL sees at most one tallies query per TTL whatever the
 * request rate (a failed refresh is remembered for the TTL too). The answer
 * is bounded: the top N candidates by votes (opts.tallies_top), with the
 * total of votes and the number of candidates. With a ballot (opts.ballot,
 * fixed for the producer's life, so one cached answer is always the right
 * one) the three count only its candidates and "outside_ballot" the votes
 * for any other.
 *
 * /events/{type}/counts answers the same way, cached per question (the type,
 * the field grouped by and the filters: READS_CACHE_SLOTS of them, the
 * least recently read out first) for the same TTL, refreshed one at a time
 * with /tallies: the top opts.tallies_top values (at most READS_COUNTS_MAX).
 *
 * A store that is down costs a fast failure: a worker whose session broke
 * tries to reconnect at most once a second (Redis: redisconn's policy).
 * libpq gets connect_timeout=2 and statement_timeout=2 s, Redis a 1 s
 * connect and command timeout, so a read is answered within seconds.
 *
 *   rd = reads_new(&opts, metrics, err, sizeof err);
 *   reads_has_db(rd) / reads_has_redis(rd)       configured?
 *   reads_tallies_cached(rd, &json)               1 + malloc'd copy when fresh
 *   reads_counts_cached(rd, &job, &json)          the same for a counts question
 *   reads_submit(rd, &job)                        0 queued / -1 full or stopping
 *   reads_stop(rd)        answer what is queued (job->failed, shutting down),
 *                         finish the jobs in hand, join the workers
 *   reads_free(rd)
 */
#ifndef TADAK_READS_H
#define TADAK_READS_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "gate.h"
#include "store.h"

#define READS_THREADS        2
#define READS_QUEUE_MAX      256
#define READS_TALLIES_TTL_MS 1000
#define READS_CACHE_SLOTS    64   /* cached answers: /tallies and counts questions */
#define READS_COUNTS_MAX     1000 /* values in a counts answer, whatever tallies_top says */

struct api_candidates;
struct metrics;
struct reads;

struct reads_opts {
    const char *database_url;            /* NULL or "": no PostgreSQL */
    const char *redis_url;               /* NULL or "": no Redis */
    const char *key_prefix;              /* the consumers' --key-prefix */
    int64_t tallies_top;                 /* candidates in a /tallies answer: required, >= 1 */
    const char *stats_group;             /* the consumer group /stats counts: required */
    const struct api_candidates *ballot; /* copied; NULL or empty: no ballot */
};

enum read_kind { READ_VOTE, READ_TALLIES, READ_STATS, READ_COUNTS };
enum read_vote_state { READ_RECORDED, READ_PENDING, READ_UNKNOWN };

/* One read, owned by the caller (embed it in the request). */
struct read_job {
    void (*fn)(struct read_job *job); /* called once, from a worker or reads_stop */
    enum read_kind kind;
    const struct evtype *type;   /* READ_VOTE (the status of any type's key), READ_COUNTS */
    char token[EVENT_TOKEN_LEN]; /* READ_VOTE: the key's */
    int by;                      /* READ_COUNTS: the field grouped by */
    size_t nwhere;               /* READ_COUNTS: the filters, in field order */
    struct store_filter where[EVTYPE_MAX_FIELDS];

    /* The answer. failed: what (general terms, for the client) and why (the log's). */
    int failed;
    int shutting_down; /* failed because reads_stop ran */
    const char *what;
    char why[256];
    enum read_vote_state state; /* READ_VOTE */
    struct store_status vote;   /* READ_VOTE, READ_RECORDED */
    char *json;                 /* READ_TALLIES, READ_COUNTS: malloc'd, the caller frees it */
    int64_t stats[GATE_NSTATS]; /* READ_STATS */
    struct read_job *next;      /* the queue's */
};

struct reads *reads_new(const struct reads_opts *o, struct metrics *metrics, char *errstr,
                        size_t errsize);
void reads_free(struct reads *rd);
int reads_has_db(const struct reads *rd);
int reads_has_redis(const struct reads *rd);
const char *reads_stats_group(const struct reads *rd); /* whose counters READ_STATS reads */
int reads_tallies_cached(struct reads *rd, char **json);
/* The same for a READ_COUNTS job's question (its type, by and where set). */
int reads_counts_cached(struct reads *rd, const struct read_job *job, char **json);
int reads_submit(struct reads *rd, struct read_job *job);
void reads_stop(struct reads *rd);

#endif
