/*
 * reads.c - status reads on their own threads and connections. See reads.h.
 *
 * The job queue is a FIFO under one lock. Each worker owns its store and
 * gate reader outright (no locks around them). The tallies cache has two
 * locks: cache_lock only guards the pointer and its age (held for a copy,
 * so the HTTP threads never wait on a query), refresh_lock makes refreshes
 * one at a time (held across the query, only by workers).
 */
#include "reads.h"
#include "api.h"
#include "event.h"
#include "log.h"
#include "metrics.h"
#include "strbuf.h"
#include "util.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define READS_STATEMENT_TIMEOUT_MS 2000
#define READS_REDIS_COMMAND_MS     1000
#define READS_RETRY_MS             1000

struct worker {
    struct reads *rd;
    pthread_t thread;
    struct store *store;    /* NULL: no PostgreSQL configured */
    struct gate *gate;      /* NULL: no Redis configured */
    int64_t store_next_try; /* no reconnect before this, after a failure */
};

struct reads {
    size_t top;
    struct store_range ballot[API_CANDIDATE_RANGES];
    size_t nballot; /* 0: no ballot, every candidate counts */
    char *stats_group;
    char *database_url, *redis_url;

    pthread_mutex_t lock;
    pthread_cond_t work;
    struct read_job *head, *tail;
    size_t queued;
    int stopping;
    struct worker workers[READS_THREADS];
    int started;

    pthread_mutex_t cache_lock; /* tallies, tallies_at, failure */
    char *tallies;              /* the last answer, or NULL */
    int64_t tallies_at;         /* when it (or the failure) was read, monotonic ms */
    int tallies_failed;         /* the last refresh failed: fail fast until the TTL passed */
    char tallies_why[256];
    pthread_mutex_t refresh_lock;

    struct metric *m_queries, *m_rejected;
};

/* ------------------------------------------------------------ the reads */

/* The worker's PostgreSQL session, unless it broke less than a second ago. */
static struct store *db(struct worker *w, struct read_job *job)
{
    if (!store_connected(w->store) && util_now_ms() < w->store_next_try) {
        snprintf(job->why, sizeof(job->why), "PostgreSQL is unreachable; retrying");
        return NULL;
    }
    return w->store;
}

static void db_failed(struct worker *w)
{
    if (!store_connected(w->store))
        w->store_next_try = util_now_ms() + READS_RETRY_MS;
}

static void read_vote(struct worker *w, struct read_job *job)
{
    char token[EVENT_TOKEN_LEN];
    enum gate_state peek;
    struct store *s;

    job->state = READ_UNKNOWN;
    event_token(job->user_id, job->candidate_id, token, sizeof(token));
    job->what = "database unavailable; retry";
    if (!(s = db(w, job)) ||
        store_status(s, evtype_vote(), token, &job->vote, job->why, sizeof(job->why)) != 0) {
        db_failed(w);
        job->failed = 1;
        return;
    }
    if (job->vote.found) {
        job->state = READ_RECORDED;
        return;
    }
    if (!w->gate)
        return;
    job->what = "Redis unavailable; retry";
    if (gate_peek(w->gate, token, &peek, job->why, sizeof(job->why)) != 0) {
        job->failed = 1;
        return;
    }
    if (peek == GATE_STATE_PENDING)
        job->state = READ_PENDING;
}

static void read_stats(struct worker *w, struct read_job *job)
{
    job->what = "Redis unavailable; retry";
    job->failed =
        gate_read_stats(w->gate, w->rd->stats_group, job->stats, job->why, sizeof(job->why)) != 0;
}

/* outside_ballot only with a ballot: without one there is no outside. */
static char *tallies_json(const struct store_tally *t, size_t n,
                          const struct store_tallies_sum *sum, int ballot)
{
    struct strbuf b;

    strbuf_init(&b, 96 + 48 * n);
    strbuf_printf(&b, "{\"tallies\":[");
    for (size_t i = 0; i < n; i++)
        strbuf_printf(&b, "%s{\"candidate_id\":%" PRId64 ",\"votes\":%" PRId64 "}", i ? "," : "",
                      t[i].candidate_id, t[i].votes);
    strbuf_printf(&b, "],\"total\":%" PRId64 ",\"candidates\":%" PRId64, sum->total,
                  sum->candidates);
    if (ballot)
        strbuf_printf(&b, ",\"outside_ballot\":%" PRId64, sum->outside);
    strbuf_printf(&b, "}\n");
    return b.s;
}

/* Under cache_lock: a copy of a fresh answer (1), a fresh failure (-1), or stale (0). */
static int cache_lookup_locked(struct reads *rd, char **json, struct read_job *job)
{
    if (rd->tallies_at == 0 || util_now_ms() - rd->tallies_at >= READS_TALLIES_TTL_MS)
        return 0;
    if (rd->tallies_failed) {
        if (job)
            util_strlcpy(job->why, rd->tallies_why, sizeof(job->why));
        return -1;
    }
    *json = xstrdup(rd->tallies);
    return 1;
}

static void read_tallies(struct worker *w, struct read_job *job)
{
    struct reads *rd = w->rd;
    struct store_tally *t = NULL;
    struct store_tallies_sum sum;
    struct store *s;
    size_t n;
    int hit;

    job->what = "database unavailable; retry";
    pthread_mutex_lock(&rd->refresh_lock);
    pthread_mutex_lock(&rd->cache_lock);
    hit = cache_lookup_locked(rd, &job->tallies, job); /* another worker may just have read it */
    pthread_mutex_unlock(&rd->cache_lock);
    if (hit == 0) {
        t = xcalloc(rd->top, sizeof(*t)); /* only for a query: a hit copies the cache */
        if ((s = db(w, job)) != NULL)
            metric_add(rd->m_queries, 1);
        if (!s || store_tallies(s, rd->ballot, rd->nballot, rd->top, t, &n, &sum, job->why,
                                sizeof(job->why)) != 0) {
            db_failed(w);
            hit = -1;
        } else {
            job->tallies = tallies_json(t, n, &sum, rd->nballot > 0);
        }
        pthread_mutex_lock(&rd->cache_lock);
        free(rd->tallies);
        rd->tallies = job->tallies ? xstrdup(job->tallies) : NULL;
        rd->tallies_failed = hit < 0;
        util_strlcpy(rd->tallies_why, job->why, sizeof(rd->tallies_why));
        rd->tallies_at = util_now_ms();
        pthread_mutex_unlock(&rd->cache_lock);
    }
    pthread_mutex_unlock(&rd->refresh_lock);
    job->failed = hit < 0;
    free(t);
}

static void run(struct worker *w, struct read_job *job)
{
    switch (job->kind) {
    case READ_VOTE:
        read_vote(w, job);
        break;
    case READ_TALLIES:
        read_tallies(w, job);
        break;
    case READ_STATS:
        read_stats(w, job);
        break;
    }
}

/* ------------------------------------------------------------ the workers */

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct reads *rd = w->rd;

    pthread_mutex_lock(&rd->lock);
    for (;;) {
        struct read_job *job;

        while (!rd->head && !rd->stopping)
            pthread_cond_wait(&rd->work, &rd->lock);
        if (rd->stopping)
            break; /* reads_stop answers what is still queued */
        job = rd->head;
        rd->head = job->next;
        if (!rd->head)
            rd->tail = NULL;
        rd->queued--;
        pthread_mutex_unlock(&rd->lock);
        run(w, job);
        job->fn(job);
        pthread_mutex_lock(&rd->lock);
    }
    pthread_mutex_unlock(&rd->lock);
    return NULL;
}

struct reads *reads_new(const struct reads_opts *o, struct metrics *metrics, char *errstr,
                        size_t errsize)
{
    struct reads *rd = xcalloc(1, sizeof(*rd));

    if (o->tallies_top < 1 || !o->stats_group) { /* the options table's defaults set both */
        snprintf(errstr, errsize, "reads: tallies_top and stats_group must be set");
        free(rd);
        return NULL;
    }
    rd->top = (size_t)o->tallies_top;
    rd->stats_group = xstrdup(o->stats_group);
    for (size_t i = 0; o->ballot && i < o->ballot->n; i++)
        rd->ballot[rd->nballot++] =
            (struct store_range){.lo = o->ballot->r[i].lo, .hi = o->ballot->r[i].hi};
    pthread_mutex_init(&rd->lock, NULL);
    pthread_cond_init(&rd->work, NULL);
    pthread_mutex_init(&rd->cache_lock, NULL);
    pthread_mutex_init(&rd->refresh_lock, NULL);
    rd->m_queries = metrics_counter(metrics, "tadak_tallies_queries_total", "",
                                    "Tallies queries sent to PostgreSQL (at most one a second)");
    rd->m_rejected = metrics_counter(metrics, "tadak_status_reads_rejected_total", "",
                                     "Status reads answered 503 because the read queue was full");
    if (o->database_url && *o->database_url)
        rd->database_url = xstrdup(o->database_url);
    if (o->redis_url && *o->redis_url)
        rd->redis_url = xstrdup(o->redis_url);
    for (int i = 0; i < READS_THREADS; i++) {
        struct worker *w = &rd->workers[i];
        w->rd = rd;
        if (rd->database_url)
            w->store = store_new(rd->database_url, READS_STATEMENT_TIMEOUT_MS);
        if (rd->redis_url && !(w->gate = gate_reader(rd->redis_url, o->key_prefix,
                                                     READS_REDIS_COMMAND_MS, errstr, errsize)))
            goto fail;
    }
    for (int i = 0; i < READS_THREADS; i++) {
        if (pthread_create(&rd->workers[i].thread, NULL, worker_main, &rd->workers[i]) != 0) {
            snprintf(errstr, errsize, "cannot start a status read thread");
            goto fail;
        }
        rd->started = i + 1;
    }
    return rd;
fail:
    reads_free(rd);
    return NULL;
}

void reads_stop(struct reads *rd)
{
    struct read_job *rest;

    if (!rd)
        return;
    pthread_mutex_lock(&rd->lock);
    rd->stopping = 1;
    rest = rd->head;
    rd->head = rd->tail = NULL;
    rd->queued = 0;
    pthread_cond_broadcast(&rd->work);
    pthread_mutex_unlock(&rd->lock);
    while (rest) {
        struct read_job *next = rest->next;
        rest->failed = rest->shutting_down = 1;
        rest->fn(rest);
        rest = next;
    }
    for (int i = 0; i < rd->started; i++)
        pthread_join(rd->workers[i].thread, NULL);
    rd->started = 0;
}

void reads_free(struct reads *rd)
{
    if (!rd)
        return;
    reads_stop(rd);
    for (int i = 0; i < READS_THREADS; i++) {
        store_free(rd->workers[i].store);
        gate_free(rd->workers[i].gate);
    }
    pthread_mutex_destroy(&rd->lock);
    pthread_cond_destroy(&rd->work);
    pthread_mutex_destroy(&rd->cache_lock);
    pthread_mutex_destroy(&rd->refresh_lock);
    free(rd->tallies);
    free(rd->database_url);
    free(rd->redis_url);
    free(rd->stats_group);
    free(rd);
}

int reads_has_db(const struct reads *rd)
{
    return rd && rd->database_url != NULL;
}

int reads_has_redis(const struct reads *rd)
{
    return rd && rd->redis_url != NULL;
}

const char *reads_stats_group(const struct reads *rd)
{
    return rd->stats_group;
}

int reads_tallies_cached(struct reads *rd, char **json)
{
    int hit;

    *json = NULL;
    pthread_mutex_lock(&rd->cache_lock);
    hit = cache_lookup_locked(rd, json, NULL);
    pthread_mutex_unlock(&rd->cache_lock);
    return hit > 0;
}

int reads_submit(struct reads *rd, struct read_job *job)
{
    int rc = -1;

    job->next = NULL;
    job->failed = job->shutting_down = 0;
    job->tallies = NULL;
    job->why[0] = '\0';
    pthread_mutex_lock(&rd->lock);
    if (!rd->stopping && rd->queued < READS_QUEUE_MAX) {
        if (rd->tail)
            rd->tail->next = job;
        else
            rd->head = job;
        rd->tail = job;
        rd->queued++;
        pthread_cond_signal(&rd->work);
        rc = 0;
    }
    pthread_mutex_unlock(&rd->lock);
    if (rc != 0)
        metric_add(rd->m_rejected, 1);
    return rc;
}
