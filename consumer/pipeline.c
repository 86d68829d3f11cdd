/*
 * pipeline.c - the consumer loop, and with it the whole delivery guarantee.
 *
 * pipeline_round() reads top to bottom as the steps of one batch:
 *
 *   1. poll      new messages join those held from earlier rounds
 *   2. parse     each message is a vote or poison
 *   3. DLQ       poison goes to the dead-letter topic (settled on its ack)
 *   4. dedupe    a token this process saw recorded is a duplicate at once
 *                (recorded.h); a token in an INSERT in flight waits;
 *                within the batch the first event wins
 *   5. gate      one Redis round trip: a lock per token (or "done", or busy)
 *   6. collect   read the results of the INSERTs already answered (without
 *                waiting); settle their rows
 *   7. mark done their tokens become "D" in Redis (sent, read with the next
 *                gate call, in the same round trip)
 *   8. send      this round's rows go out as the next INSERT ... ON CONFLICT
 *                (token) DO NOTHING on a connection with none in flight
 *                (when every one has one, the oldest is read first), not
 *                waited for
 *   9. DLQ acks  dead letters the broker confirmed are settled
 *  10. offsets   stored up to the highest contiguous settled message
 *
 * The stages overlap: PostgreSQL runs up to --inserts-in-flight (2) batch
 * INSERTs at once, each on its own connection (libpq's asynchronous API),
 * while this process polls, parses and gates the next batch, so neither
 * waits for the other as long as both have work (see README "Performance").
 * A round with no rows of its own waits for every INSERT in flight.
 *
 * The in-flight rule: a token is in at most one INSERT at a time. A later
 * copy of a token whose INSERT is in flight (in either) is held, unsettled,
 * until that INSERT's result is read (step 6); it then meets the recorded
 * cache and settles as a duplicate, or, if the INSERT failed, it is the
 * token's next try. So two INSERTs in flight never hold the same token and
 * never wait on each other's rows. Messages in an INSERT in flight are
 * settled only by its result: a rebalance or a shutdown reads every result
 * first, so the offsets handed over cover exactly what is recorded. Results
 * are read oldest first; offsets only move past contiguous settled
 * messages, so an INSERT that fails while a later one succeeds holds the
 * partition's offset until its rows are retried.
 *
 * A message is "settled" when it is recorded, known to be a duplicate, or
 * confirmed in the DLQ; only then may its partition's offset move past it
 * (offsets.c). Anything else stays held in p->items and is retried: a token
 * locked by another consumer (with backoff, until it is done there or the
 * lock expires), a batch PostgreSQL could not take (partitions paused, locks
 * released, the same rows retried), a dead letter not yet acknowledged.
 * While PostgreSQL is down, or HOLD_BATCHES batches wait on foreign locks,
 * the assigned partitions are paused; polling goes on so the group keeps us.
 *
 * Counting: every settled message is "consumed" and exactly one of
 * inserted, dup_redis, dup_db, dead_lettered. Two kinds of duplicate are
 * decided here, before Redis: a later copy of a token within the same batch,
 * and a token in the recorded cache (recorded, as PostgreSQL or Redis told this
 * process earlier). Both count as dup_redis - stopped before PostgreSQL -
 * when Redis answered the last batch that asked it, and as dup_db when it
 * did not (without Redis, only PostgreSQL's UNIQUE would have caught them).
 * retries counts lock-held retries (per message) plus failed PostgreSQL
 * batches.
 *
 * After every round that settled something, the new counts are added to the
 * Redis hash <prefix>tadak:stats:<group> (gate_add_stats, one pipelined round trip), which
 * the producer serves as GET /stats for the vote page; Redis being down only
 * delays them to a later round.
 */
#include "pipeline.h"
#include "dlq.h"
#include "recorded.h"
#include "event.h"
#include "kafka.h"
#include "log.h"
#include "offsets.h"
#include "shutdown.h"
#include "tokenset.h"
#include "topics.h"
#include "util.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define LOCK_BACKOFF_MIN_MS 50
#define LOCK_BACKOFF_MAX_MS 1000
#define DB_BACKOFF_MIN_MS   100
#define DB_BACKOFF_MAX_MS   2000
#define DLQ_TRUNCATE_BYTES  1024
#define DLQ_CHECK_MS        8000
#define DLQ_LOG_EVERY_MS    60000
#define LAG_EVERY_MS        1000
#define TOPIC_LOG_EVERY_MS  30000
#define TOPIC_CHECK_MS      500
#define HELD_BACKOFF_MIN_MS 250
#define HELD_BACKOFF_MAX_MS 1000
/*
 * Pause fetching while this many batches of messages are held, in all (by
 * foreign locks), or behind one partition's oldest unsettled message (a
 * dead letter the DLQ will not take, a lock): memory stays bounded and the
 * other partitions keep flowing.
 */
#define HOLD_BATCHES 4
/*
 * librdkafka's prefetch: up to PREFETCH_BATCHES batches of messages, at most
 * PREFETCH_KB in its queue and PARTITION_FETCH_KB per partition a fetch; a
 * queue over that is topped up again after FETCH_QUEUE_BACKOFF_MS. Measured
 * with librdkafka 2.14.2 on 1M-event backlogs (bench/, 1 consumer): 4
 * batches and a 10 ms back-off did 440k duplicate events/s (RSS 29 MiB);
 * 10 batches and 1 ms, 665k (32 MiB), unique votes 117k (38 MiB); a 512 KiB
 * fetch, 535k but 46 MiB. Under librdkafka 2.0.2 a full queue backed its
 * partition off for a fixed second, so only a deep (60-85 MiB) queue kept up.
 */
#define PREFETCH_BATCHES       10
#define PREFETCH_KB            1024
#define PARTITION_FETCH_KB     256
#define FETCH_QUEUE_BACKOFF_MS 1
/*
 * Done markers owed to Redis (recorded while it did not answer), at most;
 * beyond, a token's stale lock expires by its TTL. Sent OWED_CHUNK a call.
 */
#define OWED_MAX   65536
#define OWED_CHUNK 256
/* Done cache, per generation (two of them): ~98k tokens, 3 MiB at most. */
#define RECORDED_SLOTS      131072
#define RECORDED_POOL_BYTES (2u << 20)

enum item_state {
    ITEM_NEW,      /* polled, not parsed yet */
    ITEM_VOTE,     /* a valid vote, waiting for its (next) try */
    ITEM_POISON,   /* invalid, waiting to be dead-lettered */
    ITEM_DLQ_SENT, /* dead letter produced, waiting for the broker's ack */
    ITEM_FLIGHT,   /* in the INSERT in flight, settled when its result is read */
    ITEM_DONE,     /* settled or dropped: message released, slot to reclaim */
};

enum outcome { OUT_INSERTED, OUT_DUP_REDIS, OUT_DUP_DB, OUT_DEAD_LETTERED, OUT_COUNT };

struct item {
    rd_kafka_message_t *msg; /* owned until the item is DONE */
    enum item_state state;
    struct vote vote;
    enum event_err err;
    char sqlstate[6]; /* PostgreSQL refused the row: its SQLSTATE ("" for poison) */
    char detail[256]; /* the parser's explanation, or PostgreSQL's message (cut) */
    int truncate_dlq; /* the DLQ refused the full value as too large */
    uint64_t seq;     /* names the dead letter in delivery reports */
    int64_t retry_at; /* monotonic ms; due when <= now */
    int64_t backoff_ms;
    struct gate_item gate;
};

/* Rows for one INSERT and the items they came from. */
struct batch {
    struct store_row *rows;
    struct item **its;
    size_t n;
    struct store *store; /* a flight's own connection */
    uint64_t sent;       /* a flight's send number: the oldest is collected first */
};

#define FLIGHTS_MAX 2

struct pipeline {
    const struct consumer_opts *o;
    struct gate *gate;
    struct store *store;
    rd_kafka_t *rk;
    rd_kafka_queue_t *cq;        /* the consumer queue, popped a batch at a time */
    rd_kafka_message_t **polled; /* poll_batch's scratch: batch-size entries */
    struct dlq *dlq;
    struct offsets *offsets;
    struct tokenset seen;
    struct recorded *recorded; /* tokens known to be recorded */

    struct item **items; /* held + new, in poll order; an item never moves */
    size_t n, cap;
    struct item **spare; /* settled items, to be reused */
    size_t nspare;
    /* Per-round scratch, sized with items. */
    size_t *cand, *dups;
    struct gate_item **gitems;
    /* The batch being filled this round, and those whose INSERT is in flight. */
    struct batch fill, flight[FLIGHTS_MAX];
    int nflights;          /* --inserts-in-flight; flight[1]'s store is ours */
    uint64_t flights_sent; /* send numbers */

    uint64_t next_seq;
    int db_down;
    int gate_up; /* Redis answered the last batch that asked it */
    int64_t db_backoff_ms, db_probe_at;

    /* The assignment, and the pause state we asked librdkafka for. */
    int32_t *parts;
    int nparts, parts_cap;
    int8_t *pstate; /* by partition: -1 unknown (new), 0 fetching, 1 paused */
    int32_t npstate;

    int joined;   /* got an assignment at least once */
    int assigned; /* holds an assignment (maybe empty): idle time counts */
    int64_t started_at, active_at, unassigned_since, next_lag_at;
    int fatal;               /* stop: a fatal error was logged */
    int kafka_fatal;         /* ... and it was Kafka's: do not commit */
    int instance_held;       /* ... UNRELEASED_INSTANCE_ID before any assignment */
    int64_t held_backoff_ms; /* between tries to take our --instance-id */

    char **owed; /* tokens recorded whose done marker Redis has not taken yet */
    size_t nowed, owed_cap;
    int64_t owed_dropped;  /* over OWED_MAX, left to their lock TTL */
    int64_t dlq_logged_at; /* last "dead-letter topic failing" line (0: none yet) */
    int64_t dlq_unlogged;  /* failures since that line */

    struct metrics *metrics;
    struct metric *consumed, *retries, *outcome[OUT_COUNT], *batch_seconds, *dlq_failures;
    struct metric *redis_up;
};

/* ------------------------------------------------------------ helpers */

static int due(const struct item *it, int64_t now)
{
    return it->retry_at <= now;
}

/* Settled: count it, release the message, let the offset move past it. */
static void settle(struct pipeline *p, struct item *it, enum outcome out)
{
    offsets_settle(p->offsets, it->msg->partition, it->msg->offset);
    metric_add(p->consumed, 1);
    metric_add(p->outcome[out], 1);
    rd_kafka_message_destroy(it->msg);
    it->msg = NULL;
    it->state = ITEM_DONE;
}

/* This process' running totals, for the stats hash behind the producer's GET /stats. */
static void share_counts(struct pipeline *p)
{
    int64_t totals[GATE_NSTATS];

    totals[GATE_STAT_CONSUMED] = metric_value(p->consumed);
    totals[GATE_STAT_INSERTED] = metric_value(p->outcome[OUT_INSERTED]);
    totals[GATE_STAT_DUP_REDIS] = metric_value(p->outcome[OUT_DUP_REDIS]);
    totals[GATE_STAT_DUP_DB] = metric_value(p->outcome[OUT_DUP_DB]);
    totals[GATE_STAT_DEAD_LETTERED] = metric_value(p->outcome[OUT_DEAD_LETTERED]);
    gate_add_stats(p->gate, p->o->group, totals);
}

/* A recorded token whose done marker Redis did not take: send it once Redis answers. */
static void owed_add(struct pipeline *p, const char *token)
{
    if (p->nowed == OWED_MAX) {
        if (p->owed_dropped++ == 0)
            log_warn("too many done markers owed to redis, later ones left to the lock TTL",
                     "owed=%zu", p->nowed);
        return;
    }
    if (p->nowed == p->owed_cap) {
        p->owed_cap = p->owed_cap ? p->owed_cap * 2 : 256;
        p->owed = xrealloc(p->owed, p->owed_cap * sizeof(*p->owed));
    }
    p->owed[p->nowed++] = xstrdup(token);
}

/* Send the owed done markers, a chunk a call, while Redis takes them. */
static void owed_flush(struct pipeline *p)
{
    struct gate_item items[OWED_CHUNK], *ptrs[OWED_CHUNK];

    while (p->nowed) {
        size_t n = p->nowed < OWED_CHUNK ? p->nowed : OWED_CHUNK, from = p->nowed - n;
        for (size_t i = 0; i < n; i++) {
            items[i] = (struct gate_item){.token = p->owed[from + i], .action = GATE_OPEN};
            ptrs[i] = &items[i];
        }
        if (gate_mark_done(p->gate, ptrs, n) != 0)
            return;
        for (size_t i = from; i < p->nowed; i++)
            free(p->owed[i]);
        p->nowed = from;
        if (!p->nowed) {
            log_info("owed done markers written to redis", "dropped=%" PRId64, p->owed_dropped);
            p->owed_dropped = 0;
        }
    }
}

/* Not settled and not ours any more (partition revoked, shutdown). */
static void drop(struct item *it)
{
    rd_kafka_message_destroy(it->msg);
    it->msg = NULL;
    it->state = ITEM_DONE;
}

/* The dead letter's tadak-error: the parser's verdict, or PostgreSQL's refusal. */
static const char *item_error(const struct item *it)
{
    return it->sqlstate[0] ? "rejected_by_database" : event_err_name(it->err);
}

static void retry_later(struct item *it, int64_t now)
{
    it->backoff_ms = it->backoff_ms ? it->backoff_ms * 2 : LOCK_BACKOFF_MIN_MS;
    if (it->backoff_ms > LOCK_BACKOFF_MAX_MS)
        it->backoff_ms = LOCK_BACKOFF_MAX_MS;
    it->retry_at = now + it->backoff_ms;
}

static void grow(struct pipeline *p, size_t want)
{
    if (want <= p->cap)
        return;
    p->cap = want * 2;
    p->items = xrealloc(p->items, p->cap * sizeof(*p->items));
    p->spare = xrealloc(p->spare, p->cap * sizeof(*p->spare));
    p->cand = xrealloc(p->cand, p->cap * sizeof(*p->cand));
    p->dups = xrealloc(p->dups, p->cap * sizeof(*p->dups));
    p->gitems = xrealloc(p->gitems, p->cap * sizeof(*p->gitems));
    for (struct batch *b = &p->fill; b <= &p->flight[FLIGHTS_MAX - 1]; b++) {
        b->rows = xrealloc(b->rows, p->cap * sizeof(*b->rows));
        b->its = xrealloc(b->its, p->cap * sizeof(*b->its));
    }
}

static struct item *item_new(struct pipeline *p)
{
    struct item *it = p->nspare ? p->spare[--p->nspare] : xmalloc(sizeof(*it));
    memset(it, 0, sizeof(*it));
    return it;
}

/* Drop settled items, keeping the rest in poll order (older first). */
static void compact(struct pipeline *p)
{
    size_t w = 0;
    for (size_t r = 0; r < p->n; r++)
        if (p->items[r]->state == ITEM_DONE)
            p->spare[p->nspare++] = p->items[r];
        else
            p->items[w++] = p->items[r];
    p->n = w;
}

static int8_t *part_state(struct pipeline *p, int32_t part)
{
    if (part >= p->npstate) {
        p->pstate = xrealloc(p->pstate, (size_t)(part + 1) * sizeof(*p->pstate));
        memset(p->pstate + p->npstate, -1, (size_t)(part + 1 - p->npstate));
        p->npstate = part + 1;
    }
    return &p->pstate[part];
}

/*
 * The assignment grows or shrinks by parts. A partition that comes (back)
 * starts afresh in the offsets table; one that goes is forgotten there, and
 * messages of it polled from now on are dropped untracked (offsets.h).
 */
static void assignment_change(struct pipeline *p, const rd_kafka_topic_partition_list_t *parts,
                              int add)
{
    for (int i = 0; i < parts->cnt; i++) {
        int32_t part = parts->elems[i].partition;
        int k = 0;
        *part_state(p, part) = -1; /* librdkafka keeps our old pause flag: decide again */
        if (add)
            offsets_assign(p->offsets, part);
        else
            offsets_revoke(p->offsets, part);
        while (k < p->nparts && p->parts[k] != part)
            k++;
        if (add && k == p->nparts) {
            if (p->nparts == p->parts_cap) {
                p->parts_cap = p->parts_cap ? p->parts_cap * 2 : 16;
                p->parts = xrealloc(p->parts, (size_t)p->parts_cap * sizeof(*p->parts));
            }
            p->parts[p->nparts++] = part;
        } else if (!add && k < p->nparts) {
            p->parts[k] = p->parts[--p->nparts];
        }
    }
}

/*
 * Pause every assigned partition while PostgreSQL is down or too many
 * messages wait on locks held elsewhere, and one partition alone while too
 * many of its messages wait behind its oldest unsettled one; resume when
 * that no longer holds. We keep polling meanwhile, so the group does not
 * evict us. Partitions in state -1 (just assigned) always get an explicit
 * pause or resume: librdkafka keeps an application's pause across a
 * revoke and a new assignment, so "not paused by us" must be said.
 */
static void update_paused(struct pipeline *p)
{
    size_t limit = HOLD_BATCHES * (size_t)p->o->batch_size;
    int all = p->db_down || p->n >= limit;
    rd_kafka_topic_partition_list_t *lists[2] = {NULL, NULL}; /* resume, pause */

    for (int i = 0; i < p->nparts; i++) {
        int32_t part = p->parts[i];
        int8_t *st = part_state(p, part);
        int want = all || offsets_pending(p->offsets, part) >= limit;
        if (*st == want)
            continue;
        if (want && !all)
            log_info("partition paused behind an unsettled message",
                     "partition=%" PRId32 " waiting=%zu", part, offsets_pending(p->offsets, part));
        *st = (int8_t)want;
        if (!lists[want])
            lists[want] = rd_kafka_topic_partition_list_new(p->nparts);
        rd_kafka_topic_partition_list_add(lists[want], p->o->topic, part);
    }
    if (lists[0]) {
        rd_kafka_resume_partitions(p->rk, lists[0]);
        rd_kafka_topic_partition_list_destroy(lists[0]);
    }
    if (lists[1]) {
        rd_kafka_pause_partitions(p->rk, lists[1]);
        rd_kafka_topic_partition_list_destroy(lists[1]);
    }
}

static void store_offsets(struct pipeline *p)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    rd_kafka_resp_err_t err;
    int64_t next;

    for (int32_t part = 0; part < offsets_partition_count(p->offsets); part++) {
        if (!offsets_take(p->offsets, part, &next))
            continue;
        if (!l)
            l = rd_kafka_topic_partition_list_new(8);
        rd_kafka_topic_partition_list_add(l, p->o->topic, part)->offset = next;
    }
    if (!l)
        return;
    err = rd_kafka_offsets_store(p->rk, l);
    if (err)
        log_warn("offsets not stored", "error=%s", rd_kafka_err2name(err));
    rd_kafka_topic_partition_list_destroy(l);
}

static void commit_sync(struct pipeline *p)
{
    rd_kafka_resp_err_t err = rd_kafka_commit(p->rk, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        log_warn("offset commit failed", "error=%s", rd_kafka_err2name(err));
}

static void flights_collect(struct pipeline *p, int64_t now);

/* Drop the held messages of partitions taken away (those in flight were collected). */
static void drop_partitions(struct pipeline *p, const rd_kafka_topic_partition_list_t *parts)
{
    for (int i = 0; i < parts->cnt; i++)
        for (size_t k = 0; k < p->n; k++)
            if (p->items[k]->state != ITEM_DONE &&
                p->items[k]->msg->partition == parts->elems[i].partition)
                drop(p->items[k]);
}

/* ------------------------------------------------------------ kafka callbacks */

/* "0,3,5": the partitions of a rebalance, for its log line (cut at size). */
static void part_list(const rd_kafka_topic_partition_list_t *parts, char *list, size_t size)
{
    size_t used = 0;

    list[0] = '\0';
    for (int i = 0; i < parts->cnt && used < size; i++) {
        int w = snprintf(list + used, size - used, "%s%" PRId32, i ? "," : "",
                         parts->elems[i].partition);
        used += w > 0 ? (size_t)w : 0;
    }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct pipeline *p = opaque;
    const char *protocol = rd_kafka_rebalance_protocol(rk); /* NULL: none (yet) */
    int cooperative = protocol && strcmp(protocol, "COOPERATIVE") == 0;
    rd_kafka_error_t *error = NULL;

    char list[256];

    part_list(parts, list, sizeof(list));
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        log_info("partitions assigned", "count=%d partitions=\"%s\"", parts->cnt, list);
        if (cooperative)
            error = rd_kafka_incremental_assign(rk, parts);
        else
            rd_kafka_assign(rk, parts);
        assignment_change(p, parts, 1);
        update_paused(p);
        p->joined = 1;
        p->assigned = 1;
        p->active_at = util_now_ms();
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        log_info("partitions revoked", "count=%d partitions=\"%s\" lost=%d", parts->cnt, list,
                 rd_kafka_assignment_lost(rk));
        /* Hand over what is settled; the rest will be read again by the next owner. */
        flights_collect(p, util_now_ms());
        store_offsets(p);
        if (!rd_kafka_assignment_lost(rk))
            commit_sync(p);
        drop_partitions(p, parts);
        assignment_change(p, parts, 0);
        if (cooperative) {
            error = rd_kafka_incremental_unassign(rk, parts);
        } else {
            rd_kafka_assign(rk, NULL);
            p->assigned = 0; /* an eager rebalance: a new assignment follows */
            p->unassigned_since = util_now_ms();
        }
    } else {
        log_error("rebalance failed", "error=%s", rd_kafka_err2name(err));
        rd_kafka_assign(rk, NULL);
        for (int i = 0; i < p->nparts; i++) {
            offsets_revoke(p->offsets, p->parts[i]);
            for (size_t k = 0; k < p->n; k++)
                if (p->items[k]->state != ITEM_DONE && p->items[k]->state != ITEM_FLIGHT &&
                    p->items[k]->msg->partition == p->parts[i])
                    drop(p->items[k]);
        }
        p->nparts = 0;
        p->assigned = 0;
        p->unassigned_since = util_now_ms();
    }
    if (error) {
        log_error("rebalance failed", "error=\"%s\"", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
}

/*
 * Kafka's fatal error: the handle is done. 1 when it must be logged as one;
 * 0 for UNRELEASED_INSTANCE_ID before we ever held an assignment: our
 * --instance-id still belongs to a member that vanished without leaving (a
 * crashed consumer restarted at once), which the KIP-848 protocol keeps
 * until its session ends; pipeline_run then tries again (rejoin).
 */
static int kafka_fatal(struct pipeline *p, rd_kafka_t *rk, char *why, size_t whysize)
{
    rd_kafka_resp_err_t code = rd_kafka_fatal_error(rk, why, whysize);

    p->fatal = p->kafka_fatal = 1;
    if (code == RD_KAFKA_RESP_ERR_UNRELEASED_INSTANCE_ID && !p->joined) {
        p->instance_held = 1;
        return 0;
    }
    return 1;
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct pipeline *p = opaque;
    char why[512];

    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        if (kafka_fatal(p, rk, why, sizeof(why)))
            log_error("fatal Kafka error", "detail=\"%s\"", why);
    } else if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION) {
        log_error("Kafka authentication failed", "detail=\"%s\"", reason);
        p->fatal = p->kafka_fatal = 1;
    } else {
        log_warn("Kafka error", "error=%s detail=\"%s\"",
                 rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
    }
}

/* An error delivered as a message: a few mean this consumer cannot work at all. */
static int message_error(struct pipeline *p, const rd_kafka_message_t *m)
{
    char why[512];

    switch (m->err) {
    case RD_KAFKA_RESP_ERR__PARTITION_EOF:
        return 0;
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
        /* Deleted, or not yet in every broker's metadata: the group waits for it. */
        log_warn("topic not available", "topic=%s error=%s", p->o->topic,
                 rd_kafka_err2name(m->err));
        return 0;
    case RD_KAFKA_RESP_ERR__FATAL:
        if (!kafka_fatal(p, p->rk, why, sizeof(why)))
            return -1;
        /* fall through */
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
        log_error("cannot consume", "topic=%s error=%s detail=\"%s\"", p->o->topic,
                  rd_kafka_err2name(m->err), rd_kafka_message_errstr(m));
        p->fatal = p->kafka_fatal = 1;
        return -1;
    default:
        log_warn("consumer error", "error=%s detail=\"%s\"", rd_kafka_err2name(m->err),
                 rd_kafka_message_errstr(m));
        return 0;
    }
}

/*
 * A dead letter was refused (or could not be produced): the message stays
 * held, its partition's offset with it, and it is sent again with backoff;
 * poison is never skipped without the DLQ's acknowledgement. Counted in
 * tadak_dlq_failures_total; logged at once, then at most once a minute.
 */
static void dlq_failed(struct pipeline *p, const struct item *it, rd_kafka_resp_err_t err)
{
    int64_t now = util_now_ms();

    metric_add(p->dlq_failures, 1);
    p->dlq_unlogged++;
    if (p->dlq_logged_at && now - p->dlq_logged_at < DLQ_LOG_EVERY_MS)
        return;
    log_warn("dead-letter topic failing, partition held at the invalid message",
             "dlq=%s error=%s partition=%" PRId32 " offset=%" PRId64 " failures=%" PRId64,
             p->o->dlq_topic, rd_kafka_err2name(err), it->msg->partition, it->msg->offset,
             p->dlq_unlogged);
    p->dlq_logged_at = now;
    p->dlq_unlogged = 0;
}

/* The DLQ's delivery report for one dead letter (called from dlq_poll). */
static void on_dead_letter(void *arg, uint64_t seq, rd_kafka_resp_err_t err)
{
    struct pipeline *p = arg;
    struct item *it = NULL;

    for (size_t i = 0; i < p->n && !it; i++)
        if (p->items[i]->state == ITEM_DLQ_SENT && p->items[i]->seq == seq)
            it = p->items[i];
    if (!it)
        return; /* its partition was revoked meanwhile */
    if (!err) {
        log_warn("invalid message dead-lettered",
                 "partition=%" PRId32 " offset=%" PRId64 " error=%s sqlstate=%s detail=\"%s\" "
                 "dlq=%s",
                 it->msg->partition, it->msg->offset, item_error(it),
                 it->sqlstate[0] ? it->sqlstate : "none", it->detail, p->o->dlq_topic);
        settle(p, it, OUT_DEAD_LETTERED);
        return;
    }
    dlq_failed(p, it, err);
    if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
        it->truncate_dlq = 1;
    it->state = ITEM_POISON;
    retry_later(it, util_now_ms());
}

/* ------------------------------------------------------------ the round */

/*
 * Step 1. Poll up to batch-size new messages, waiting at most batch-wait-ms
 * (less when a held message is due sooner). 0, or -1 on a fatal error.
 */
static int poll_batch(struct pipeline *p, size_t *got)
{
    int64_t now = util_now_ms(), deadline = now + p->o->batch_wait_ms;
    rd_kafka_message_t *m;

    *got = 0;
    for (size_t i = 0; i < p->n; i++)
        if ((p->items[i]->state == ITEM_VOTE || p->items[i]->state == ITEM_POISON) &&
            p->items[i]->retry_at < deadline)
            deadline = p->items[i]->retry_at > now ? p->items[i]->retry_at : now;
    /* An INSERT in flight: take what has arrived, then go and read its result. */
    for (int f = 0; f < p->nflights; f++)
        if (p->flight[f].n)
            deadline = now;
    grow(p, p->n + (size_t)p->o->batch_size);
    /* A batch per call: one queue lock for many messages, not one each. */
    while (*got < (size_t)p->o->batch_size && !shutdown_requested() && !p->fatal) {
        int timeout = deadline > now ? (int)(deadline - now) : 0;
        ssize_t k = rd_kafka_consume_batch_queue(p->cq, timeout, p->polled,
                                                 (size_t)p->o->batch_size - *got);

        now = util_now_ms();
        for (ssize_t j = 0; j < k; j++) {
            m = p->polled[j];
            if (m->err) {
                message_error(p, m);
                rd_kafka_message_destroy(m);
                continue;
            }
            if (offsets_track(p->offsets, m->partition, m->offset) != 0) {
                /* Delivered again (the first copy is held), or not ours any more. */
                rd_kafka_message_destroy(m);
                continue;
            }
            p->items[p->n] = item_new(p);
            p->items[p->n]->msg = m;
            p->items[p->n]->state = ITEM_NEW;
            p->n++;
            (*got)++;
        }
        if (k <= 0 && now >= deadline)
            break;
    }
    return p->fatal ? -1 : 0;
}

static void send_dead_letter(struct pipeline *p, struct item *it, int64_t now)
{
    size_t max = it->truncate_dlq ? DLQ_TRUNCATE_BYTES : SIZE_MAX;
    rd_kafka_resp_err_t err;

    it->seq = ++p->next_seq;
    err = dlq_send(p->dlq, it->msg, item_error(it), it->detail, it->sqlstate, max, it->seq);
    if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE && !it->truncate_dlq) {
        it->truncate_dlq = 1;
        err = dlq_send(p->dlq, it->msg, item_error(it), it->detail, it->sqlstate,
                       DLQ_TRUNCATE_BYTES, it->seq);
    }
    if (err) {
        dlq_failed(p, it, err);
        retry_later(it, now);
        return;
    }
    it->state = ITEM_DLQ_SENT;
}

/*
 * PostgreSQL refused the batch: give our locks back, pause, retry the same
 * rows later. A refusal that retrying cannot cure (the schema does not fit)
 * stops the consumer instead of retrying forever. The failure is judged on
 * the connection that failed (`store`), never on another flight's.
 */
static void db_failed(struct pipeline *p, struct batch *b, const struct store *store,
                      const char *why, int64_t now)
{
    size_t nours = 0;

    for (size_t r = 0; r < b->n; r++) {
        struct item *it = b->its[r];
        if (it->gate.action == GATE_OURS)
            p->gitems[nours++] = &it->gate;
        it->state = ITEM_VOTE;
        it->retry_at = now + p->db_backoff_ms;
    }
    b->n = 0;
    gate_release(p->gate, p->gitems, nours);
    if (store_last_failure(store) == STORE_FAIL_PERMANENT) {
        log_error("postgresql refuses the batch, retrying cannot help", "error=\"%s\"", why);
        p->fatal = 1;
        return;
    }
    if (!p->db_down)
        log_warn("postgresql unavailable, pausing consumption", "error=\"%s\"", why);
    else
        log_debug("postgresql still unavailable", "error=\"%s\"", why);
    p->db_down = 1;
    p->db_backoff_ms = p->db_backoff_ms ? p->db_backoff_ms * 2 : DB_BACKOFF_MIN_MS;
    if (p->db_backoff_ms > DB_BACKOFF_MAX_MS)
        p->db_backoff_ms = DB_BACKOFF_MAX_MS;
    p->db_probe_at = now + p->db_backoff_ms;
    metric_add(p->retries, 1);
}

static void db_ok(struct pipeline *p)
{
    if (!p->db_down)
        return;
    log_info("postgresql reachable again, resuming", "held=%zu", p->n);
    p->db_down = 0;
    p->db_backoff_ms = 0;
}

/*
 * While PostgreSQL is down and no held row is due to try it (they may all
 * have been revoked in a rebalance), ask it directly: the outage ends when
 * PostgreSQL answers, not when some row happens to be inserted.
 */
static void db_probe(struct pipeline *p, int64_t now)
{
    char why[512];

    if (!p->db_down || now < p->db_probe_at)
        return;
    if (store_ping(p->store, why, sizeof(why)) == 0) {
        db_ok(p);
        return;
    }
    log_debug("postgresql still unavailable", "error=\"%s\"", why);
    p->db_backoff_ms =
        p->db_backoff_ms * 2 > DB_BACKOFF_MAX_MS ? DB_BACKOFF_MAX_MS : p->db_backoff_ms * 2;
    p->db_probe_at = now + p->db_backoff_ms;
}

/*
 * Rows lo..lo+n-1 of b are recorded (inserted now, or their token was
 * already there): our locks become "1" markers (sent without waiting: the
 * next gate call reads the replies, in the same round trip as its own), the
 * tokens join the recorded cache, the messages settle. Markers Redis cannot
 * take now (it is down, or was when the locks were asked for and a lock set
 * before its reply was lost would otherwise block the token on every other
 * consumer for the lock TTL) are owed and sent once it answers (owed_flush).
 */
static void batch_settle(struct pipeline *p, struct batch *b, size_t lo, size_t n, int64_t now)
{
    size_t i;

    for (i = 0; i < n; i++)
        p->gitems[i] = &b->its[lo + i]->gate;
    if (gate_mark_done(p->gate, p->gitems, n) != 0)
        for (i = 0; i < n; i++)
            owed_add(p, b->rows[lo + i].token);
    for (i = lo; i < lo + n; i++) {
        recorded_add(p->recorded, b->rows[i].token, now);
        settle(p, b->its[i], b->rows[i].inserted ? OUT_INSERTED : OUT_DUP_DB);
    }
}

/*
 * PostgreSQL refused this one row for its data: it becomes a dead letter
 * (tadak-error rejected_by_database, its SQLSTATE and message), sent by the
 * next round's step 3 and settled on the DLQ's ack. Our lock is released:
 * the vote is not recorded.
 */
static void row_rejected(struct pipeline *p, struct item *it, const struct store *store,
                         int64_t now)
{
    const char *state = store_last_sqlstate(store);
    char labels[32];
    struct gate_item *gi = &it->gate;

    snprintf(labels, sizeof(labels), "sqlstate=\"%.5s\"", state);
    metric_add(metrics_counter(p->metrics, "tadak_db_rejected_total", labels,
                               "Rows PostgreSQL refused for their data, dead-lettered"),
               1);
    log_warn("postgresql refused a row, dead-lettering it",
             "partition=%" PRId32 " offset=%" PRId64 " token=%s sqlstate=%s error=\"%s\"",
             it->msg->partition, it->msg->offset, it->vote.token, state, store_last_message(store));
    util_strlcpy(it->sqlstate, state[0] ? state : "XX000", sizeof(it->sqlstate));
    util_strlcpy(it->detail, store_last_message(store), sizeof(it->detail));
    if (it->gate.action == GATE_OURS)
        gate_release(p->gate, &gi, 1);
    it->state = ITEM_POISON;
    it->retry_at = now;
}

/*
 * Rows lo..lo+n-1 of b, whose INSERT PostgreSQL refused for the data of
 * some row: in again as two halves, each half that is refused again in
 * halves, until every refused row stands alone (row_rejected) and every
 * other row is recorded. Each half is a statement (a transaction) of its
 * own on the flight's connection, waited for: refusals are rare, and a
 * refused row among n costs about 2 log2(n) small INSERTs. 0, or -1 when
 * a try failed otherwise (outage, timeout, schema): the rows not yet
 * settled or rejected are then still ITEM_FLIGHT.
 */
static int bisect(struct pipeline *p, struct batch *b, size_t lo, size_t n, int64_t now, char *why,
                  size_t whysize)
{
    size_t half = n / 2;

    if (n == 1) {
        row_rejected(p, b->its[lo], b->store, now);
        return 0;
    }
    for (size_t part = 0; part < 2; part++) {
        size_t at = part ? lo + half : lo, len = part ? n - half : half;
        if (store_insert_batch(b->store, b->rows + at, len, why, whysize) == 0)
            batch_settle(p, b, at, len, now);
        else if (store_last_failure(b->store) != STORE_FAIL_ROW ||
                 bisect(p, b, at, len, now, why, whysize) != 0)
            return -1;
    }
    return 0;
}

/* Keep the rows of b whose item is still in flight (unsettled), in order. */
static void batch_keep_unsettled(struct batch *b)
{
    size_t w = 0;

    for (size_t r = 0; r < b->n; r++) {
        if (b->its[r]->state != ITEM_FLIGHT)
            continue;
        b->rows[w] = b->rows[r];
        b->its[w++] = b->its[r];
    }
    b->n = w;
}

/*
 * Read the result of the INSERT in flight (PostgreSQL ran it while we polled,
 * parsed and gated the next batch) and settle its rows. A row refused for
 * its data is isolated (bisect) and dead-lettered, the others recorded, no
 * partition paused; any other failure gives the rows back to the held items.
 */
static void flight_collect(struct pipeline *p, struct batch *b, int64_t now)
{
    char why[512];

    if (b->n == 0)
        return;
    if (store_insert_wait(b->store, b->rows, b->n, why, sizeof(why)) == 0) {
        db_ok(p);
        batch_settle(p, b, 0, b->n, now);
        b->n = 0;
        return;
    }
    if (store_last_failure(b->store) == STORE_FAIL_ROW &&
        bisect(p, b, 0, b->n, now, why, sizeof(why)) == 0) {
        db_ok(p);
        b->n = 0;
        return;
    }
    batch_keep_unsettled(b);
    db_failed(p, b, b->store, why, now);
}

/* The flight sent longest ago, or NULL if none is in flight. */
static struct batch *oldest_flight(struct pipeline *p)
{
    struct batch *old = NULL;

    for (int f = 0; f < p->nflights; f++)
        if (p->flight[f].n && (!old || p->flight[f].sent < old->sent))
            old = &p->flight[f];
    return old;
}

/* Every INSERT in flight, oldest first, waiting for each. */
static void flights_collect(struct pipeline *p, int64_t now)
{
    struct batch *b;

    while ((b = oldest_flight(p)) != NULL)
        flight_collect(p, b, now);
}

/* The INSERTs whose results are already in, oldest first, without waiting. */
static void flights_collect_ready(struct pipeline *p, int64_t now)
{
    struct batch *b;

    while ((b = oldest_flight(p)) != NULL && store_insert_ready(b->store))
        flight_collect(p, b, now);
}

/*
 * Send this round's rows as the next INSERT, on a connection with none in
 * flight (waiting for the oldest when every one has one); they are in
 * flight until collected.
 */
static void flight_send(struct pipeline *p, int64_t now)
{
    struct batch *free_slot = NULL;
    struct store_row *rows;
    struct item **its;
    char why[512];

    if (p->fill.n == 0)
        return;
    for (int f = 0; f < p->nflights && !free_slot; f++)
        if (p->flight[f].n == 0)
            free_slot = &p->flight[f];
    if (!free_slot) {
        free_slot = oldest_flight(p);
        flight_collect(p, free_slot, now);
    }
    /* Our alive key is refreshed first: the INSERT may take up to the statement timeout. */
    gate_heartbeat(p->gate);
    if (store_insert_send(free_slot->store, p->fill.rows, p->fill.n, why, sizeof(why)) != 0) {
        db_failed(p, &p->fill, free_slot->store, why, now);
        return;
    }
    for (size_t i = 0; i < p->fill.n; i++)
        p->fill.its[i]->state = ITEM_FLIGHT;
    /* The rows change places; each flight keeps its connection. */
    rows = free_slot->rows, its = free_slot->its;
    free_slot->rows = p->fill.rows, free_slot->its = p->fill.its;
    free_slot->n = p->fill.n;
    free_slot->sent = ++p->flights_sent;
    p->fill.rows = rows, p->fill.its = its;
    p->fill.n = 0;
}

/*
 * Step 2: parse what was polled. A vote without an event_id (a client other
 * than tadak-producer) gets one derived from its topic/partition/offset, so
 * reading it again yields the same event.
 */
static void parse_new(struct pipeline *p)
{
    for (size_t i = 0; i < p->n; i++) {
        struct item *it = p->items[i];
        if (it->state != ITEM_NEW)
            continue;
        if (event_parse(it->msg->payload, it->msg->len, &it->vote, &it->err, it->detail,
                        sizeof(it->detail)) != 0) {
            it->state = ITEM_POISON;
            continue;
        }
        if (!it->vote.event_id[0])
            event_derive_id(p->o->topic, it->msg->partition, it->msg->offset, it->vote.event_id);
        it->state = ITEM_VOTE;
    }
}

/* Step 3: produce a dead letter for every poison message due. */
static void dead_letter_poison(struct pipeline *p, int64_t now)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->items[i]->state == ITEM_POISON && due(p->items[i], now))
            send_dead_letter(p, p->items[i], now);
}

/*
 * Step 4: sort the votes due into duplicates (p->dups: in the recorded cache,
 * or a later copy within the round), candidates for the gate (p->cand and
 * p->gitems), and those left waiting for the INSERT in flight.
 */
static void dedupe(struct pipeline *p, int64_t now, size_t *ncand, size_t *ndups)
{
    size_t i, nvotes = 0, nc = 0, nd = 0;

    for (i = 0; i < p->n; i++)
        nvotes += p->items[i]->state == ITEM_VOTE && due(p->items[i], now);
    for (int f = 0; f < p->nflights; f++)
        nvotes += p->flight[f].n;
    tokenset_reset(&p->seen, nvotes);
    for (int f = 0; f < p->nflights; f++)
        for (i = 0; i < p->flight[f].n; i++)
            tokenset_mark_in_flight(&p->seen, p->flight[f].rows[i].token);
    for (i = 0; i < p->n; i++) {
        struct item *it = p->items[i];
        enum token_verdict v;
        if (it->state != ITEM_VOTE || !due(it, now))
            continue;
        if (recorded_has(p->recorded, it->vote.token, now)) {
            p->dups[nd++] = i;
            continue;
        }
        if ((v = tokenset_verdict(&p->seen, it->vote.token, i)) == TOKEN_IN_FLIGHT)
            continue; /* held: asked again once the INSERT in flight is read */
        if (v == TOKEN_REPEAT) {
            p->dups[nd++] = i;
            continue;
        }
        it->gate.token = it->vote.token;
        it->gate.event_id = it->vote.event_id;
        p->gitems[nc] = &it->gate;
        p->cand[nc++] = i;
    }
    *ncand = nc;
    *ndups = nd;
}

/* A vote whose lock is ours joins the rows of this round's INSERT. */
static void fill_add(struct pipeline *p, struct item *it)
{
    p->fill.rows[p->fill.n] = (struct store_row){
        .token = it->vote.token,
        .user_id = it->vote.user_id,
        .candidate_id = it->vote.candidate_id,
        .event_id = it->vote.event_id,
        .partition = it->msg->partition,
        .offset = it->msg->offset,
    };
    p->fill.its[p->fill.n++] = it;
}

/*
 * Step 5: lock the candidates' tokens in one Redis round trip, settle the
 * duplicates step 4 found, and act on each candidate's answer.
 */
static void pass_gate(struct pipeline *p, size_t ncand, size_t ndups, int64_t now)
{
    size_t i;

    if (ncand > 0)
        p->gate_up = gate_acquire(p->gate, p->gitems, ncand) == 0;
    for (i = 0; i < ndups; i++)
        settle(p, p->items[p->dups[i]], p->gate_up ? OUT_DUP_REDIS : OUT_DUP_DB);
    for (i = 0; i < ncand; i++) {
        struct item *it = p->items[p->cand[i]];
        switch (it->gate.action) {
        case GATE_DUPLICATE:
            recorded_add(p->recorded, it->vote.token, now);
            settle(p, it, OUT_DUP_REDIS);
            break;
        case GATE_BUSY: /* being recorded elsewhere: neither drop nor insert, ask again */
            metric_add(p->retries, 1);
            retry_later(it, now);
            break;
        case GATE_OURS:
        case GATE_OPEN:
            fill_add(p, it);
            break;
        }
    }
}

static int pipeline_round(struct pipeline *p)
{
    size_t got, ncand, ndups;
    int64_t now, started;

    /* 1. Poll: new messages join those held from earlier rounds. */
    if (poll_batch(p, &got) != 0)
        return -1;
    started = now = util_now_ms();
    if (got)
        p->active_at = now;

    /* 2. Parse: a vote (with an event_id, derived if it had none), or poison. */
    parse_new(p);

    /* 3. Dead-letter poison at once; it settles when the DLQ acknowledges it (step 9). */
    dead_letter_poison(p, now);

    /*
     * 4. Dedupe: a token this process already saw recorded (by our INSERT,
     * PostgreSQL's conflict or Redis' "D") is settled now, without Redis;
     * a token whose INSERT is in flight waits for its result (the in-flight
     * rule, see the top of the file); within the batch the first event of a
     * token (poll order) wins.
     */
    dedupe(p, now, &ncand, &ndups);

    /* 5. Gate: one pipelined Redis round trip, a lock per token. */
    pass_gate(p, ncand, ndups, now);

    /*
     * 6-8. Store, overlapped: read the INSERT in flight, settle its rows and
     * mark them done (flight_collect); then send this round's rows as one
     * INSERT ... ON CONFLICT (token) DO NOTHING in token order (store.h),
     * which PostgreSQL runs while the next round polls, parses and gates
     * (flight_send). Without rows, an outage is ended by a probe.
     */
    flights_collect_ready(p, now);
    if (p->fill.n == 0) {
        flights_collect(p, now); /* nothing to overlap with: wait for the rest */
        db_probe(p, now);
    }
    flight_send(p, now);

    /* Done markers Redis missed while it was down or its replies were lost. */
    owed_flush(p);

    /* 9. Dead letters the broker acknowledged are settled (never waits). */
    dlq_poll(p->dlq, on_dead_letter, p);

    /* 10. Offsets: up to the highest contiguous settled message of each partition. */
    store_offsets(p);
    compact(p);
    update_paused(p);
    share_counts(p);
    if (p->fatal)
        return -1;

    if (got || ncand || ndups)
        metric_observe(p->batch_seconds, (double)(util_now_ms() - started) / 1000.0);
    if (p->n)
        p->active_at = util_now_ms(); /* still holding work: not idle */
    return 0;
}

/* ------------------------------------------------------------ lag, setup, run */

static void update_lag(struct pipeline *p)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    char labels[64];

    if (rd_kafka_assignment(p->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    rd_kafka_position(p->rk, parts);
    for (int i = 0; i < parts->cnt; i++) {
        int64_t lo, hi;
        if (parts->elems[i].offset < 0 ||
            rd_kafka_get_watermark_offsets(p->rk, parts->elems[i].topic, parts->elems[i].partition,
                                           &lo, &hi) != 0 ||
            hi < 0)
            continue;
        snprintf(labels, sizeof(labels), "partition=\"%" PRId32 "\"", parts->elems[i].partition);
        metric_set(metrics_gauge(p->metrics, "tadak_consumer_lag", labels,
                                 "Messages between the consumer's position and the high watermark"),
                   hi - parts->elems[i].offset);
    }
    rd_kafka_topic_partition_list_destroy(parts);
}

/*
 * The group's settings. By default the KIP-848 protocol (group.protocol=
 * consumer): the broker assigns, a rebalance moves only the partitions that
 * change hands (the others never stop), and session and heartbeat are the
 * broker's settings (group.consumer.session.timeout.ms). --group-protocol
 * classic is for brokers before 4.0: the cooperative-sticky assignor, which
 * is incremental too, with our session timeout. Either way the rebalance
 * callback takes the incremental path. Static membership (--instance-id)
 * works with both. A group without offsets starts at --start-at (earliest by
 * default: "latest" would never read votes acknowledged before the group
 * existed).
 */
static int group_conf(rd_kafka_conf_t *conf, const struct consumer_opts *o, char *errstr,
                      size_t errsize)
{
    char session[24], heartbeat[24];

    if (kafka_conf_set(conf, "group.id", o->group, errstr, errsize) != 0 ||
        kafka_conf_set(conf, "group.protocol", o->group_protocol, errstr, errsize) != 0 ||
        (o->instance_id &&
         kafka_conf_set(conf, "group.instance.id", o->instance_id, errstr, errsize) != 0))
        return -1;
    if (strcmp(o->group_protocol, "classic") != 0)
        return 0;
    snprintf(session, sizeof(session), "%" PRId64, o->session_timeout_ms);
    snprintf(heartbeat, sizeof(heartbeat), "%" PRId64, o->session_timeout_ms / 6);
    if (kafka_conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", errstr,
                       errsize) != 0 ||
        kafka_conf_set(conf, "session.timeout.ms", session, errstr, errsize) != 0 ||
        kafka_conf_set(conf, "heartbeat.interval.ms", heartbeat, errstr, errsize) != 0)
        return -1;
    return 0;
}

static rd_kafka_t *consumer_new(struct pipeline *p, char *errstr, size_t errsize)
{
    const struct consumer_opts *o = p->o;
    rd_kafka_conf_t *conf = kafka_conf_new(o->brokers, errstr, errsize);
    rd_kafka_t *rk = NULL;
    char why[512], min_msgs[24], max_kb[24], backoff[24], part_bytes[24];

    if (!conf)
        return NULL;
    snprintf(min_msgs, sizeof(min_msgs), "%" PRId64, PREFETCH_BATCHES * o->batch_size);
    snprintf(max_kb, sizeof(max_kb), "%d", PREFETCH_KB);
    snprintf(backoff, sizeof(backoff), "%d", FETCH_QUEUE_BACKOFF_MS);
    snprintf(part_bytes, sizeof(part_bytes), "%d", PARTITION_FETCH_KB * 1024);
    if (group_conf(conf, o, errstr, errsize) != 0 ||
        /* Offsets are stored by hand, only for settled messages; auto-commit sends them. */
        kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr, errsize) != 0 ||
        kafka_conf_set(conf, "enable.auto.commit", "true", errstr, errsize) != 0 ||
        kafka_conf_set(conf, "auto.offset.reset", o->start_at, errstr, errsize) != 0 ||
        /*
         * A small prefetch (see PREFETCH_BATCHES): fetching is far faster
         * than PostgreSQL, so a deep queue only costs memory, and with a
         * short fetch.queue.backoff.ms a full queue is topped up again
         * within a millisecond instead of librdkafka's one second (the
         * default, and the only choice before 2.1). -X overrides these.
         */
        kafka_conf_set(conf, "queued.min.messages", min_msgs, errstr, errsize) != 0 ||
        kafka_conf_set(conf, "queued.max.messages.kbytes", max_kb, errstr, errsize) != 0 ||
        kafka_conf_set(conf, "max.partition.fetch.bytes", part_bytes, errstr, errsize) != 0 ||
        kafka_conf_set(conf, "fetch.queue.backoff.ms", backoff, errstr, errsize) != 0 ||
        kafka_conf_set(conf, "fetch.error.backoff.ms", "50", errstr, errsize) != 0 ||
        kafka_conf_apply(conf, &o->extra, errstr, errsize) != 0)
        goto fail;
    rd_kafka_conf_set_opaque(conf, p);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!rk) {
        snprintf(errstr, errsize, "cannot create the Kafka consumer: %s", why);
        goto fail;
    }
    conf = NULL; /* now owned by rk */
    rd_kafka_poll_set_consumer(rk);
    return rk;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    return NULL;
}

struct pipeline *pipeline_new(const struct consumer_opts *o, struct gate *gate, struct store *store,
                              struct metrics *metrics, char *errstr, size_t errsize)
{
    static const char *const names[OUT_COUNT][2] = {
        {"tadak_consumer_inserted_total", "Votes recorded in PostgreSQL"},
        {"tadak_consumer_dup_redis_total", "Duplicates stopped before PostgreSQL"},
        {"tadak_consumer_dup_db_total", "Duplicates caught by PostgreSQL's UNIQUE token"},
        {"tadak_consumer_dead_lettered_total", "Invalid messages sent to the DLQ"},
    };
    struct pipeline *p = xcalloc(1, sizeof(*p));

    p->o = o;
    p->gate = gate;
    p->store = store;
    p->nflights = (int)o->inserts_in_flight;
    if (p->nflights < 1 || p->nflights > FLIGHTS_MAX)
        p->nflights = 1;
    p->flight[0].store = store;
    if (p->nflights == 2)
        p->flight[1].store = store_new(o->database_url, o->statement_timeout_ms);
    p->metrics = metrics;
    p->offsets = offsets_new();
    p->recorded = recorded_new(RECORDED_SLOTS, RECORDED_POOL_BYTES, o->dedupe_window_s * 1000);
    p->consumed = metrics_counter(metrics, "tadak_consumer_consumed_total", "",
                                  "Messages consumed and settled");
    p->retries = metrics_counter(metrics, "tadak_consumer_retries_total", "",
                                 "Lock-held retries plus failed PostgreSQL batches");
    for (int k = 0; k < OUT_COUNT; k++)
        p->outcome[k] = metrics_counter(metrics, names[k][0], "", names[k][1]);
    p->batch_seconds = metrics_latency_histogram(metrics, "tadak_consumer_batch_seconds", "",
                                                 "Time to process one batch");
    p->dlq_failures =
        metrics_counter(metrics, "tadak_dlq_failures_total", "",
                        "Dead letters the DLQ refused or could not take (each is retried)");
    p->redis_up = metrics_gauge(metrics, "tadak_consumer_redis_up", "",
                                "1 while Redis answers; 0 while PostgreSQL alone dedupes");
    grow(p, (size_t)o->batch_size);
    p->dlq = dlq_new(o->brokers, &o->extra, o->dlq_topic, errstr, errsize);
    if (!p->dlq)
        goto fail;
    p->rk = consumer_new(p, errstr, errsize);
    if (!p->rk)
        goto fail;
    p->cq = rd_kafka_queue_get_consumer(p->rk);
    p->polled = xcalloc((size_t)o->batch_size, sizeof(*p->polled));
    p->started_at = p->active_at = p->unassigned_since = util_now_ms();
    return p;
fail:
    pipeline_free(p);
    return NULL;
}

/*
 * 1 when the topic exists (with partitions), 0 when not (yet), -1 when we may
 * not see it; *errp: why not (a local error when no broker answered).
 */
static int topic_exists(struct pipeline *p, rd_kafka_resp_err_t *errp, char *why, size_t whysize)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, p->o->topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err;
    int rc = 0;

    if (!rkt) {
        snprintf(why, whysize, "%s", rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    err = rd_kafka_metadata(p->rk, 0, rkt, &md, TOPIC_CHECK_MS * 4);
    if (!err && md->topic_cnt == 1) {
        err = md->topics[0].err;
        rc = !err && md->topics[0].partition_cnt > 0;
    }
    if (err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
        err == RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION)
        rc = -1;
    snprintf(why, whysize, "%s", err ? rd_kafka_err2name(err) : "no partitions");
    *errp = err;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return rc;
}

/* With --idle-exit, a consumer that cannot start consuming gives up after --join-timeout-s. */
static int join_expired(const struct pipeline *p, int64_t since, int64_t now)
{
    return p->o->idle_exit_s && now - since >= p->o->join_timeout_s * 1000;
}

static int subscribe(struct pipeline *p)
{
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_resp_err_t err;

    rd_kafka_topic_partition_list_add(topics, p->o->topic, RD_KAFKA_PARTITION_UA);
    err = rd_kafka_subscribe(p->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        log_error("cannot subscribe", "topic=%s error=\"%s\"", p->o->topic, rd_kafka_err2str(err));
        return PIPELINE_FATAL;
    }
    p->unassigned_since = util_now_ms();
    return 0;
}

/*
 * Before subscribing: wait for the topic (a fresh deployment starts its
 * consumers before the first vote creates it; logged once, then every 30 s),
 * then make sure the dead-letter topic can take poison (exists, or is
 * created), so that a DLQ that never can is a clear exit now, not a partition
 * frozen behind the first invalid message later. 0, or PIPELINE_FATAL /
 * PIPELINE_NOT_JOINED.
 */
static int pipeline_start(struct pipeline *p)
{
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    int64_t logged_at = 0, now;
    char why[512], others[512];
    int rc;

    while ((rc = topic_exists(p, &err, why, sizeof(why))) == 0) {
        now = util_now_ms();
        if (shutdown_requested())
            return 0;
        if (join_expired(p, p->started_at, now)) {
            log_error("topic never appeared, giving up", "topic=%s waited_s=%" PRId64 " error=%s",
                      p->o->topic, (now - p->started_at) / 1000, why);
            return PIPELINE_NOT_JOINED;
        }
        if (!logged_at || now - logged_at >= TOPIC_LOG_EVERY_MS) {
            if (topics_unreachable(err)) {
                log_warn("cannot reach Kafka, waiting",
                         "brokers=%s set_by=\"--brokers or KAFKA_BOOTSTRAP_SERVERS\" error=%s",
                         p->o->brokers, why);
            } else {
                topics_list(p->rk, TOPIC_CHECK_MS * 4, p->o->topic, others, sizeof(others));
                log_info("waiting for the topic to exist", "topic=%s error=%s existing=\"%s\"",
                         p->o->topic, why, others);
            }
            logged_at = now;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(p->rk, TOPIC_CHECK_MS);
        if (m)
            rd_kafka_message_destroy(m); /* nothing is subscribed yet: only errors */
    }
    if (rc < 0) {
        log_error("cannot read the topic", "topic=%s error=%s", p->o->topic, why);
        return PIPELINE_FATAL;
    }
    if (logged_at)
        log_info("topic exists, consuming", "topic=%s", p->o->topic);

    rc = dlq_check(p->dlq, DLQ_CHECK_MS, why, sizeof(why));
    if (rc < 0) {
        log_error("dead-letter topic unusable", "dlq=%s error=\"%s\"", p->o->dlq_topic, why);
        return PIPELINE_FATAL;
    }
    if (rc > 0)
        log_warn("dead-letter topic not checked", "dlq=%s error=\"%s\"", p->o->dlq_topic, why);

    return subscribe(p);
}

/*
 * Our --instance-id is held by a member that never left (see kafka_fatal):
 * a new Kafka handle after a back-off, until --join-timeout-s has passed
 * since the start; past that, it is a live consumer with the same id. Nothing
 * was ever assigned to this one, so nothing is held or owed. 0 to go on, 1
 * when a signal came during the back-off, PIPELINE_FATAL to give up.
 */
static int rejoin(struct pipeline *p)
{
    int64_t now = util_now_ms();
    char errstr[512];

    if (now - p->started_at >= p->o->join_timeout_s * 1000) {
        log_error("our --instance-id is held by another member of the group, giving up",
                  "instance=%s group=%s waited_s=%" PRId64
                  " hint=\"another consumer runs with this --instance-id\"",
                  p->o->instance_id, p->o->group, (now - p->started_at) / 1000);
        return PIPELINE_FATAL;
    }
    if (!p->held_backoff_ms)
        log_warn("our --instance-id is held by a member that has not left (a crashed consumer?): "
                 "retrying until the broker ends its session",
                 "instance=%s group=%s", p->o->instance_id, p->o->group);
    p->held_backoff_ms = p->held_backoff_ms ? p->held_backoff_ms * 2 : HELD_BACKOFF_MIN_MS;
    if (p->held_backoff_ms > HELD_BACKOFF_MAX_MS)
        p->held_backoff_ms = HELD_BACKOFF_MAX_MS;
    if (shutdown_nap_until(now + p->held_backoff_ms))
        return 1;
    rd_kafka_queue_destroy(p->cq);
    p->cq = NULL;
    rd_kafka_destroy_flags(p->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    if (!(p->rk = consumer_new(p, errstr, sizeof(errstr)))) {
        log_error("cannot start", "error=\"%s\"", errstr);
        return PIPELINE_FATAL;
    }
    p->cq = rd_kafka_queue_get_consumer(p->rk);
    p->fatal = p->kafka_fatal = p->instance_held = 0;
    return subscribe(p);
}

/* 1 when we asked librdkafka to pause one of our partitions. */
static int any_paused(struct pipeline *p)
{
    for (int i = 0; i < p->nparts; i++)
        if (*part_state(p, p->parts[i]) == 1)
            return 1;
    return 0;
}

/*
 * --idle-exit: 0 to go on, 1 to exit 0 (idle long enough with an assignment),
 * PIPELINE_NOT_JOINED when no assignment came within --join-timeout-s. Idle
 * time counts only while an assignment is held: a consumer waiting for the
 * group (dead members' sessions, a rebalance) is not "done", and saying
 * "nothing to consume" then would tell a replay test the topic was empty.
 */
static int idle_check(struct pipeline *p, int64_t now)
{
    if (!p->o->idle_exit_s)
        return 0;
    if (!p->assigned) {
        p->active_at = now;
        if (!join_expired(p, p->unassigned_since, now))
            return 0;
        log_error(p->joined ? "no assignment from the group, giving up"
                            : "never joined the group, giving up",
                  "group=%s topic=%s waited_s=%" PRId64, p->o->group, p->o->topic,
                  (now - p->unassigned_since) / 1000);
        return PIPELINE_NOT_JOINED;
    }
    /*
     * PostgreSQL down, or a partition paused (behind a held message, or by
     * the outage), is not "nothing to consume": a rebalance may have dropped
     * every held message, yet the lag is still there.
     */
    if (p->db_down || any_paused(p))
        p->active_at = now;
    if (now - p->active_at < p->o->idle_exit_s * 1000)
        return 0;
    log_info("nothing to consume, exiting", "idle_s=%" PRId64, p->o->idle_exit_s);
    return 1;
}

int pipeline_run(struct pipeline *p)
{
    int64_t now;
    char why[512];
    int rc, idle;

    log_info("consumer started", "topic=%s group=%s dlq=%s owner=%s instance=%s start_at=%s",
             p->o->topic, p->o->group, p->o->dlq_topic, gate_owner(p->gate),
             p->o->instance_id ? p->o->instance_id : "none", p->o->start_at);
    rc = pipeline_start(p);
    while (rc == 0 && !shutdown_requested()) {
        gate_heartbeat(p->gate);
        metric_set(p->redis_up, !gate_is_down(p->gate, NULL, 0));
        if (pipeline_round(p) != 0) {
            if (p->instance_held && (rc = rejoin(p)) == 0)
                continue;
            rc = rc > 0 ? 0 : PIPELINE_FATAL;
            break;
        }
        if (dlq_fatal(p->dlq, why, sizeof(why))) {
            log_error("fatal dead-letter producer error", "detail=\"%s\"", why);
            rc = PIPELINE_FATAL;
            break;
        }
        now = util_now_ms();
        if (now >= p->next_lag_at) {
            update_lag(p);
            p->next_lag_at = now + LAG_EVERY_MS;
        }
        if ((idle = idle_check(p, now)) != 0) {
            rc = idle > 0 ? 0 : idle;
            break;
        }
    }
    if (rc == PIPELINE_FATAL)
        log_error("consumer stopping after a fatal error", "topic=%s", p->o->topic);

    /* Hold nothing past here: unsettled messages will be read again by the next owner. */
    flights_collect(p, util_now_ms());
    for (size_t i = 0; i < p->n; i++)
        if (p->items[i]->state != ITEM_DONE)
            drop(p->items[i]);
    compact(p);
    store_offsets(p);
    if (!p->kafka_fatal)
        commit_sync(p);
    rd_kafka_queue_destroy(p->cq); /* before the close, which serves the consumer queue */
    p->cq = NULL;
    rd_kafka_consumer_close(p->rk);
    gate_retire(p->gate);
    return rc;
}

void pipeline_print_summary(const struct pipeline *p, FILE *out)
{
    fprintf(out,
            "{\"consumed\":%" PRId64 ",\"inserted\":%" PRId64 ",\"dup_redis\":%" PRId64
            ",\"dup_db\":%" PRId64 ",\"dead_lettered\":%" PRId64 ",\"retries\":%" PRId64 "}\n",
            metric_value(p->consumed), metric_value(p->outcome[OUT_INSERTED]),
            metric_value(p->outcome[OUT_DUP_REDIS]), metric_value(p->outcome[OUT_DUP_DB]),
            metric_value(p->outcome[OUT_DEAD_LETTERED]), metric_value(p->retries));
    fflush(out);
}

void pipeline_free(struct pipeline *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        if (p->items[i]->state != ITEM_DONE)
            drop(p->items[i]);
    if (p->cq)
        rd_kafka_queue_destroy(p->cq);
    free(p->polled);
    if (p->rk)
        rd_kafka_destroy(p->rk);
    dlq_free(p->dlq);
    offsets_free(p->offsets);
    tokenset_free(&p->seen);
    recorded_free(p->recorded);
    for (size_t i = 0; i < p->n; i++)
        free(p->items[i]);
    for (size_t i = 0; i < p->nspare; i++)
        free(p->spare[i]);
    free(p->items);
    free(p->spare);
    free(p->cand);
    free(p->dups);
    free(p->gitems);
    for (struct batch *b = &p->fill; b <= &p->flight[FLIGHTS_MAX - 1]; b++) {
        free(b->rows);
        free(b->its);
    }
    if (p->nflights == 2)
        store_free(p->flight[1].store);
    for (size_t i = 0; i < p->nowed; i++)
        free(p->owed[i]);
    free(p->owed);
    free(p->parts);
    free(p->pstate);
    free(p);
}
