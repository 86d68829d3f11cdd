/*
 * reads.c - status reads on their own threads and connections. See reads.h.
 *
 * The job queue is a FIFO under one lock. Each worker owns its store and
 * gate reader outright (no locks around them). The cache of aggregate
 * answers (/tallies, counts) has two locks: cache_lock only guards its
 * slots (held for a copy, so the HTTP threads never wait on a query),
 * refresh_lock makes refreshes one at a time (held across the query, only
 * by workers). A slot is keyed by its question: "tallies", or
 * "counts/<type>/<by>?<field>=<value>\x1f..." with field indices.
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
    struct range ballot[API_CANDIDATE_RANGES];
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

    pthread_mutex_t cache_lock; /* cache[] */
    struct cached {
        char *key;    /* the question, NULL: a free slot */
        char *json;   /* the last answer, or NULL */
        int64_t at;   /* when it (or the failure) was read, monotonic ms */
        int failed;   /* the last refresh failed: fail fast until the TTL passed */
        int64_t used; /* last looked up: the least recently used slot goes first */
        char why[256];
    } cache[READS_CACHE_SLOTS];
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
    util_strlcpy(token, job->token, sizeof(token));
    job->what = "database unavailable; retry";
    if (!(s = db(w, job)) ||
        store_status(s, job->type, token, &job->vote, job->why, sizeof(job->why)) != 0) {
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

/* Under cache_lock: key's slot, or NULL. */
static struct cached *cache_find_locked(struct reads *rd, const char *key)
{
    for (size_t i = 0; i < READS_CACHE_SLOTS; i++)
        if (rd->cache[i].key && strcmp(rd->cache[i].key, key) == 0)
            return &rd->cache[i];
    return NULL;
}

/* Under cache_lock: a copy of a fresh answer (1), a fresh failure (-1), or stale (0). */
static int cache_lookup_locked(struct reads *rd, const char *key, char **json, struct read_job *job)
{
    struct cached *c = cache_find_locked(rd, key);
    int64_t now = util_now_ms();

    if (!c || c->at == 0 || now - c->at >= READS_TALLIES_TTL_MS)
        return 0;
    c->used = now;
    if (c->failed) {
        if (job)
            util_strlcpy(job->why, c->why, sizeof(job->why));
        return -1;
    }
    *json = xstrdup(c->json);
    return 1;
}

/* Under cache_lock: keep an answer (json NULL: a failure, why) in key's slot, or the LRU one. */
static void cache_store_locked(struct reads *rd, const char *key, const char *json, const char *why)
{
    struct cached *c = cache_find_locked(rd, key);
    int64_t now = util_now_ms();

    for (size_t i = 0; !c && i < READS_CACHE_SLOTS; i++)
        if (!rd->cache[i].key)
            c = &rd->cache[i];
    if (!c) {
        c = &rd->cache[0];
        for (size_t i = 1; i < READS_CACHE_SLOTS; i++)
            if (rd->cache[i].used < c->used)
                c = &rd->cache[i];
    }
    if (!c->key || strcmp(c->key, key) != 0) {
        free(c->key);
        c->key = xstrdup(key);
    }
    free(c->json);
    c->json = json ? xstrdup(json) : NULL;
    c->failed = json == NULL;
    util_strlcpy(c->why, why, sizeof(c->why));
    c->at = c->used = now;
}

/* A refresh: into job->json (0), or -1 with job->why set. */
typedef int (*query_fn)(struct worker *w, struct store *s, struct read_job *job);

/*
 * An aggregate read through the cache: a fresh answer (another worker may
 * just have read it) or a query, one at a time, its result kept for the TTL.
 */
static void read_cached(struct worker *w, struct read_job *job, const char *key, query_fn query)
{
    struct reads *rd = w->rd;
    struct store *s;
    int hit;

    job->what = "database unavailable; retry";
    pthread_mutex_lock(&rd->refresh_lock);
    pthread_mutex_lock(&rd->cache_lock);
    hit = cache_lookup_locked(rd, key, &job->json, job);
    pthread_mutex_unlock(&rd->cache_lock);
    if (hit == 0) {
        if ((s = db(w, job)) != NULL)
            metric_add(rd->m_queries, 1);
        if (!s || query(w, s, job) != 0) {
            db_failed(w);
            hit = -1;
        }
        pthread_mutex_lock(&rd->cache_lock);
        cache_store_locked(rd, key, job->json, job->why);
        pthread_mutex_unlock(&rd->cache_lock);
    }
    pthread_mutex_unlock(&rd->refresh_lock);
    job->failed = hit < 0;
}

static int query_tallies(struct worker *w, struct store *s, struct read_job *job)
{
    struct reads *rd = w->rd;
    struct store_tally *t = xcalloc(rd->top, sizeof(*t));
    struct store_tallies_sum sum;
    size_t n;
    int rc =
        store_tallies(s, rd->ballot, rd->nballot, rd->top, t, &n, &sum, job->why, sizeof(job->why));

    if (rc == 0)
        job->json = tallies_json(t, n, &sum, rd->nballot > 0);
    free(t);
    return rc;
}

/* A value of field f as JSON: a number, or a string. */
static void put_value(struct strbuf *b, const struct evtype *t, int f, const char *text)
{
    char esc[EVTYPE_STRING_MAX * 6 + 1];
    enum evfield_kind k = t->fields[f].kind;

    if (k == EVF_STRING || k == EVF_ENUM_STRING) {
        api_json_escape(text, esc, sizeof(esc));
        strbuf_printf(b, "\"%s\"", esc);
    } else {
        strbuf_printf(b, "%s", text);
    }
}

/* {"type":..,"by":..,"where":{..},"total":N,"values":M,"counts":[{"<by>":v,"rows":n},...]} */
static char *counts_json(const struct read_job *job, const struct store_count *c, size_t n,
                         int64_t total, int64_t values)
{
    const struct evtype *t = job->type;
    const char *by = t->fields[job->by].name;
    struct strbuf b;

    strbuf_init(&b, 128 + 64 * n);
    strbuf_printf(&b, "{\"type\":\"%s\",\"by\":\"%s\",\"where\":{", t->name, by);
    for (size_t i = 0; i < job->nwhere; i++) {
        strbuf_printf(&b, "%s\"%s\":", i ? "," : "", t->fields[job->where[i].field].name);
        put_value(&b, t, job->where[i].field, job->where[i].value);
    }
    strbuf_printf(&b, "},\"total\":%" PRId64 ",\"values\":%" PRId64 ",\"counts\":[", total, values);
    for (size_t i = 0; i < n; i++) {
        strbuf_printf(&b, "%s{\"%s\":", i ? "," : "", by);
        put_value(&b, t, job->by, c[i].value);
        strbuf_printf(&b, ",\"rows\":%" PRId64 "}", c[i].rows);
    }
    strbuf_printf(&b, "]}\n");
    return b.s;
}

static size_t counts_limit(const struct reads *rd)
{
    return rd->top < READS_COUNTS_MAX ? rd->top : READS_COUNTS_MAX;
}

static int query_counts(struct worker *w, struct store *s, struct read_job *job)
{
    size_t limit = counts_limit(w->rd), n;
    struct store_count *c = xcalloc(limit, sizeof(*c));
    int64_t total, values;
    int rc = store_counts(s, job->type, job->by, job->where, job->nwhere, limit, c, &n, &total,
                          &values, job->why, sizeof(job->why));

    if (rc == 0)
        job->json = counts_json(job, c, n, total, values);
    free(c);
    return rc;
}

/* The cache key of a counts question: its type, by and filters (in field order). */
static char *counts_key(const struct read_job *job)
{
    struct strbuf b;

    strbuf_init(&b, 64);
    /* Each filter ends in \x1f, which no value holds (printable ASCII): one key, one question. */
    strbuf_printf(&b, "counts/%s/%d?", job->type->name, job->by);
    for (size_t i = 0; i < job->nwhere; i++)
        strbuf_printf(&b, "%d=%s\x1f", job->where[i].field, job->where[i].value);
    return b.s;
}

static void read_counts(struct worker *w, struct read_job *job)
{
    char *key = counts_key(job);

    read_cached(w, job, key, query_counts);
    free(key);
}

static void run(struct worker *w, struct read_job *job)
{
    switch (job->kind) {
    case READ_VOTE:
        read_vote(w, job);
        break;
    case READ_TALLIES:
        read_cached(w, job, "tallies", query_tallies);
        break;
    case READ_STATS:
        read_stats(w, job);
        break;
    case READ_COUNTS:
        read_counts(w, job);
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
            (struct range){.lo = o->ballot->r[i].lo, .hi = o->ballot->r[i].hi};
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
    for (size_t i = 0; i < READS_CACHE_SLOTS; i++) {
        free(rd->cache[i].key);
        free(rd->cache[i].json);
    }
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

static int cached(struct reads *rd, const char *key, char **json)
{
    int hit;

    *json = NULL;
    pthread_mutex_lock(&rd->cache_lock);
    hit = cache_lookup_locked(rd, key, json, NULL);
    pthread_mutex_unlock(&rd->cache_lock);
    return hit > 0;
}

int reads_tallies_cached(struct reads *rd, char **json)
{
    return cached(rd, "tallies", json);
}

int reads_counts_cached(struct reads *rd, const struct read_job *job, char **json)
{
    char *key = counts_key(job);
    int hit = cached(rd, key, json);

    free(key);
    return hit;
}

int reads_submit(struct reads *rd, struct read_job *job)
{
    int rc = -1;

    job->next = NULL;
    job->failed = job->shutting_down = 0;
    job->json = NULL;
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
