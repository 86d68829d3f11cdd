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
 *   6. finish    read the results of the INSERTs already answered (without
 *                waiting); settle their rows
 *   7. mark done their tokens become the done marker "1" in Redis (sent, read with the next
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
 * What this file leans on, each behind a small interface: group.c (the
 * Kafka consumer group: rebalances call back through on_revoke and
 * hold_all, pause and resume, lag, commits, the topic wait and the idle
 * clock), flights.c (which INSERT is in flight on which connection),
 * offsets.c, recorded.c, tokenset.c, dlq.c, and gate.c / store.c in common/.
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
#include "event.h"
#include "flights.h"
#include "group.h"
#include "log.h"
#include "offsets.h"
#include "recorded.h"
#include "shutdown.h"
#include "tokenset.h"
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
/*
 * Pause fetching while this many batches of messages are held, in all (by
 * foreign locks), or behind one partition's oldest unsettled message (a
 * dead letter the DLQ will not take, a lock): memory stays bounded and the
 * other partitions keep flowing.
 */
#define HOLD_BATCHES 4
/*
 * Done markers owed to Redis (recorded while it did not answer), at most;
 * beyond, a token's stale lock expires by its TTL. Sent OWED_CHUNK a call.
 */
#define OWED_MAX   65536
#define OWED_CHUNK 256
/* Done cache, per generation (two of them): ~98k tokens, 3 MiB at most. */
#define RECORDED_SLOTS      131072
#define RECORDED_POOL_BYTES (2u << 20)

/* The group's codes pass through pipeline_run unchanged. */
_Static_assert(GROUP_FATAL == PIPELINE_FATAL && GROUP_NOT_JOINED == PIPELINE_NOT_JOINED,
               "group and pipeline exit codes differ");

enum item_state {
    ITEM_NEW,      /* polled, not parsed yet */
    ITEM_VOTE,     /* a valid vote, waiting for its (next) try */
    ITEM_POISON,   /* invalid, waiting to be dead-lettered */
    ITEM_DLQ_SENT, /* dead letter produced, waiting for the broker's ack */
    ITEM_FLIGHT,   /* in an INSERT in flight, settled when its result is read */
    ITEM_DONE,     /* settled or dropped: message released, slot to reclaim */
};

enum outcome { OUT_INSERTED, OUT_DUP_REDIS, OUT_DUP_DB, OUT_DEAD_LETTERED, OUT_COUNT };

struct item {
    rd_kafka_message_t *msg; /* owned until the item is DONE */
    enum item_state state;
    struct event ev;
    enum event_err err;
    char sqlstate[6]; /* PostgreSQL refused the row: its SQLSTATE ("" for poison) */
    char detail[256]; /* the parser's explanation, or PostgreSQL's message (cut) */
    int truncate_dlq; /* the DLQ refused the full value as too large */
    uint64_t seq;     /* names the dead letter in delivery reports */
    int64_t retry_at; /* monotonic ms; due when <= now */
    int64_t backoff_ms;
    struct gate_item gate;
    char text[]; /* the event's strings: the type's text_size bytes, made with the item */
};

struct pipeline {
    const struct consumer_opts *o;
    struct gate *gate;
    struct store *store;
    struct group *group;         /* the Kafka consumer and its assignment */
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
    /* The INSERTs in flight, and the rows of this round's (flights_fill). */
    struct flights *flights;
    struct batch *fill;

    uint64_t next_seq;
    int db_down;
    int gate_up; /* Redis answered the last batch that asked it */
    int64_t db_backoff_ms, db_probe_at;

    int fatal; /* stop: a fatal error was logged (Kafka's are the group's) */

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

/* A fatal error was logged, ours (PostgreSQL's refusal) or Kafka's. */
static int stopping(const struct pipeline *p)
{
    return p->fatal || group_fatal(p->group);
}

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
    flights_reserve(p->flights, p->cap);
}

/*
 * A new item, or a settled one again: items are made once with room for
 * the strings of an event of the pipeline's type (one type per consumer,
 * so every spare fits), and never freed while the consumer runs.
 */
static struct item *item_new(struct pipeline *p)
{
    struct item *it =
        p->nspare ? p->spare[--p->nspare] : xmalloc(sizeof(*it) + p->o->type->text_size);
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

/* ------------------------------------------------------------ DLQ callbacks */

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
    if (flights_oldest(p->flights))
        deadline = now;
    grow(p, p->n + (size_t)p->o->batch_size);
    /* A batch per call: one queue lock for many messages, not one each. */
    while (*got < (size_t)p->o->batch_size && !shutdown_requested() && !stopping(p)) {
        int timeout = deadline > now ? (int)(deadline - now) : 0;
        ssize_t k = group_consume(p->group, timeout, p->polled, (size_t)p->o->batch_size - *got);

        now = util_now_ms();
        for (ssize_t j = 0; j < k; j++) {
            if (!(m = p->polled[j]))
                continue; /* an error, handled by the group */
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
    return stopping(p) ? -1 : 0;
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
            owed_add(p, b->rows[lo + i].ev->token);
    for (i = lo; i < lo + n; i++) {
        recorded_add(p->recorded, b->rows[i].ev->token, now);
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
             it->msg->partition, it->msg->offset, it->ev.token, state, store_last_message(store));
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
 * Read the result of flight b's INSERT (PostgreSQL ran it while we polled,
 * parsed and gated later batches), waiting for it if need be, and act on
 * it: every row recorded settles; a row refused for its data is isolated
 * (bisect) and dead-lettered, the others recorded, no partition paused; any
 * other failure gives the rows back to the held items.
 */
static void flight_finish(struct pipeline *p, struct batch *b, int64_t now)
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

/* Finish every INSERT in flight, oldest first, waiting for each. */
static void flights_wait_all(struct pipeline *p, int64_t now)
{
    struct batch *b;

    while ((b = flights_oldest(p->flights)) != NULL)
        flight_finish(p, b, now);
}

/* Finish the INSERTs whose results are already in, oldest first, never waiting. */
static void flights_poll_ready(struct pipeline *p, int64_t now)
{
    struct batch *b;

    while ((b = flights_oldest(p->flights)) != NULL && store_insert_ready(b->store))
        flight_finish(p, b, now);
}

/*
 * Send this round's rows as the next INSERT, on a connection with none in
 * flight (finishing the oldest first when every one has one); they are in
 * flight until finished.
 */
static void flight_send(struct pipeline *p, int64_t now)
{
    struct batch *slot;
    char why[512];

    if (p->fill->n == 0)
        return;
    if (!(slot = flights_idle(p->flights))) {
        slot = flights_oldest(p->flights);
        flight_finish(p, slot, now);
    }
    /* Our alive key is refreshed first: the INSERT may take up to the statement timeout. */
    gate_heartbeat(p->gate);
    if (store_insert_send(slot->store, p->fill->rows, p->fill->n, why, sizeof(why)) != 0) {
        db_failed(p, p->fill, slot->store, why, now);
        return;
    }
    for (size_t i = 0; i < p->fill->n; i++)
        p->fill->its[i]->state = ITEM_FLIGHT;
    flights_launch(p->flights, slot);
}

/*
 * Step 2: parse what was polled, as an event of the consumer's type (a
 * message that does not fit it is poison: the parser's detail names the
 * field). An event without an event_id (a client other than
 * tadak-producer) gets one derived from its topic/partition/offset, so
 * reading it again yields the same event.
 */
static void parse_new(struct pipeline *p)
{
    const struct evtype *t = p->o->type;

    for (size_t i = 0; i < p->n; i++) {
        struct item *it = p->items[i];
        if (it->state != ITEM_NEW)
            continue;
        event_init(&it->ev, t, t->text_size ? it->text : NULL);
        if (event_parse(&it->ev, it->msg->payload, it->msg->len, 0, &it->err, it->detail,
                        sizeof(it->detail)) != 0) {
            it->state = ITEM_POISON;
            continue;
        }
        if (!it->ev.event_id[0])
            event_derive_id(p->o->topic, it->msg->partition, it->msg->offset, it->ev.event_id);
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
 * p->gitems), and those left waiting for the INSERT in flight that holds
 * their token (one of up to --inserts-in-flight).
 */
static void dedupe(struct pipeline *p, int64_t now, size_t *ncand, size_t *ndups)
{
    size_t i, nvotes = 0, nc = 0, nd = 0;

    for (i = 0; i < p->n; i++)
        nvotes += p->items[i]->state == ITEM_VOTE && due(p->items[i], now);
    for (int f = 0; f < flights_count(p->flights); f++)
        nvotes += flights_at(p->flights, f)->n;
    tokenset_reset(&p->seen, nvotes);
    for (int f = 0; f < flights_count(p->flights); f++) {
        const struct batch *b = flights_at(p->flights, f);
        for (i = 0; i < b->n; i++)
            tokenset_mark_in_flight(&p->seen, b->rows[i].ev->token);
    }
    for (i = 0; i < p->n; i++) {
        struct item *it = p->items[i];
        enum token_verdict v;
        if (it->state != ITEM_VOTE || !due(it, now))
            continue;
        if (recorded_has(p->recorded, it->ev.token, now)) {
            p->dups[nd++] = i;
            continue;
        }
        if ((v = tokenset_verdict(&p->seen, it->ev.token, i)) == TOKEN_IN_FLIGHT)
            continue; /* held: asked again once the INSERT holding it is read */
        if (v == TOKEN_REPEAT) {
            p->dups[nd++] = i;
            continue;
        }
        it->gate.token = it->ev.token;
        it->gate.event_id = it->ev.event_id;
        p->gitems[nc] = &it->gate;
        p->cand[nc++] = i;
    }
    *ncand = nc;
    *ndups = nd;
}

/* A vote whose lock is ours joins the rows of this round's INSERT. */
static void fill_add(struct pipeline *p, struct item *it)
{
    p->fill->rows[p->fill->n] = (struct store_row){
        .ev = &it->ev,
        .partition = it->msg->partition,
        .offset = it->msg->offset,
    };
    p->fill->its[p->fill->n++] = it;
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
            recorded_add(p->recorded, it->ev.token, now);
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

/*
 * After the steps: reclaim settled items, pause or resume partitions for
 * what is now held, share the counts. 0, or -1 to stop (a fatal error).
 */
static int round_end(struct pipeline *p, int worked, int64_t started)
{
    compact(p);
    group_update_paused(p->group);
    share_counts(p);
    if (stopping(p))
        return -1;
    if (worked)
        metric_observe(p->batch_seconds, (double)(util_now_ms() - started) / 1000.0);
    if (p->n)
        group_touch(p->group, util_now_ms()); /* still holding work: not idle */
    return 0;
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
        group_touch(p->group, now);

    /* 2. Parse: a vote (with an event_id, derived if it had none), or poison. */
    parse_new(p);

    /* 3. Dead-letter poison at once; it settles when the DLQ acknowledges it (step 9). */
    dead_letter_poison(p, now);

    /*
     * 4. Dedupe: a token this process already saw recorded (by our INSERT,
     * PostgreSQL's conflict or Redis' done marker) is settled now, without Redis;
     * a token whose INSERT is in flight waits for its result (the in-flight
     * rule, see the top of the file); within the batch the first event of a
     * token (poll order) wins.
     */
    dedupe(p, now, &ncand, &ndups);

    /* 5. Gate: one pipelined Redis round trip, a lock per token. */
    pass_gate(p, ncand, ndups, now);

    /*
     * 6-8. Store, overlapped: read the INSERTs in flight that have answered,
     * settle their rows and mark them done (flight_finish); then send this
     * round's rows as one INSERT ... ON CONFLICT (token) DO NOTHING in token
     * order (store.h), which PostgreSQL runs while the next rounds poll,
     * parse and gate (flight_send). Without rows, an outage is ended by a probe.
     */
    flights_poll_ready(p, now);
    if (p->fill->n == 0) {
        flights_wait_all(p, now); /* nothing to overlap with: wait for the rest */
        db_probe(p, now);
    }
    flight_send(p, now);

    /* Done markers Redis missed while it was down or its replies were lost. */
    owed_flush(p);

    /* 9. Dead letters the broker acknowledged are settled (never waits). */
    dlq_poll(p->dlq, on_dead_letter, p);

    /* 10. Offsets: up to the highest contiguous settled message of each partition. */
    group_store_offsets(p->group);

    return round_end(p, got || ncand || ndups, started);
}

/* ------------------------------------------------------------ group hooks */

/*
 * Partitions are taken away (group.h): on a revoke, every INSERT in flight
 * is finished first, so that the offsets handed over cover exactly what is
 * recorded; then the held messages of those partitions are dropped, left
 * for the next owner to read again. After a failed rebalance (handover 0)
 * the rows in flight stay: their results settle them later.
 */
static void on_revoke(void *arg, const rd_kafka_topic_partition_list_t *parts, int handover)
{
    struct pipeline *p = arg;

    if (handover)
        flights_wait_all(p, util_now_ms());
    for (int i = 0; i < parts->cnt; i++)
        for (size_t k = 0; k < p->n; k++)
            if (p->items[k]->state != ITEM_DONE && p->items[k]->state != ITEM_FLIGHT &&
                p->items[k]->msg->partition == parts->elems[i].partition)
                drop(p->items[k]);
}

/*
 * Pause every partition while PostgreSQL is down or HOLD_BATCHES batches
 * of messages are held (waiting on locks held elsewhere): memory stays
 * bounded. The group pauses one partition alone behind its own backlog.
 */
static int hold_all(void *arg)
{
    const struct pipeline *p = arg;

    return p->db_down || p->n >= HOLD_BATCHES * (size_t)p->o->batch_size;
}

/* ------------------------------------------------------------ setup, run */

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
    const struct group_hooks hooks = {.revoke = on_revoke, .hold_all = hold_all, .arg = p};

    p->o = o;
    p->gate = gate;
    p->store = store;
    p->flights =
        flights_new((int)o->inserts_in_flight, store, o->database_url, o->statement_timeout_ms);
    p->fill = flights_fill(p->flights);
    for (int f = 0; f < flights_count(p->flights); f++) /* rows go to the type's table */
        store_use_type(flights_at(p->flights, f)->store, o->type);
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
    p->group = group_new(o, p->offsets, metrics, HOLD_BATCHES * (size_t)o->batch_size, &hooks,
                         errstr, errsize);
    if (!p->group)
        goto fail;
    p->polled = xcalloc((size_t)o->batch_size, sizeof(*p->polled));
    return p;
fail:
    pipeline_free(p);
    return NULL;
}

/*
 * Before the rounds: wait for the topic (group_wait_topic), then make sure
 * the dead-letter topic can take poison (exists, or is created), so that a
 * DLQ that never can is a clear exit now, not a partition frozen behind the
 * first invalid message later; then subscribe. 0 (also when a signal came
 * meanwhile), or PIPELINE_FATAL / PIPELINE_NOT_JOINED.
 */
static int pipeline_start(struct pipeline *p)
{
    char why[512];
    int rc = group_wait_topic(p->group);

    if (rc != 0)
        return rc > 0 ? 0 : rc;
    rc = dlq_check(p->dlq, DLQ_CHECK_MS, why, sizeof(why));
    if (rc < 0) {
        log_error("dead-letter topic unusable", "dlq=%s error=\"%s\"", p->o->dlq_topic, why);
        return PIPELINE_FATAL;
    }
    if (rc > 0)
        log_warn("dead-letter topic not checked", "dlq=%s error=\"%s\"", p->o->dlq_topic, why);
    return group_subscribe(p->group);
}

int pipeline_run(struct pipeline *p)
{
    int64_t now;
    char why[512];
    int rc, idle;

    log_info("consumer started",
             "type=%s table=%s topic=%s group=%s dlq=%s owner=%s instance=%s start_at=%s",
             p->o->type->name, p->o->type->table, p->o->topic, p->o->group, p->o->dlq_topic,
             gate_owner(p->gate), p->o->instance_id ? p->o->instance_id : "none", p->o->start_at);
    rc = pipeline_start(p);
    while (rc == 0 && !shutdown_requested()) {
        gate_heartbeat(p->gate);
        metric_set(p->redis_up, !gate_is_down(p->gate, NULL, 0));
        if (pipeline_round(p) != 0) {
            /* Our --instance-id held by a member gone (group.h): join again, or stop. */
            if ((rc = group_rejoin(p->group)) == 0)
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
        group_update_lag(p->group, now);
        if ((idle = group_idle_check(p->group, now, p->db_down)) != 0) {
            rc = idle > 0 ? 0 : idle;
            break;
        }
    }
    if (rc == PIPELINE_FATAL)
        log_error("consumer stopping after a fatal error", "topic=%s", p->o->topic);

    /* Hold nothing past here: unsettled messages will be read again by the next owner. */
    flights_wait_all(p, util_now_ms());
    for (size_t i = 0; i < p->n; i++)
        if (p->items[i]->state != ITEM_DONE)
            drop(p->items[i]);
    compact(p);
    group_close(p->group); /* the settled offsets stored and committed */
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

int pipeline_left_running(const struct pipeline *p)
{
    return p && group_left_running(p->group);
}

void pipeline_free(struct pipeline *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->n; i++)
        if (p->items[i]->state != ITEM_DONE)
            drop(p->items[i]);
    free(p->polled);
    group_free(p->group);
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
    flights_free(p->flights);
    for (size_t i = 0; i < p->nowed; i++)
        free(p->owed[i]);
    free(p->owed);
    free(p);
}
