/*
 * status.c - vote status, tallies, consumer counters and the Redis side of
 * Idempotency-Key. See status.h.
 *
 * Both connections are shared by the HTTP worker threads under one mutex
 * each: a status request is a single indexed lookup, so serialising them is
 * cheaper than a pool and keeps the number of server connections fixed.
 */
#include "status.h"
#include "gate.h"
#include "log.h"
#include "strbuf.h"
#include "util.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define STATUS_RETRY_MS         1000
#define STATUS_REDIS_CONNECT_MS 500
#define STATUS_REDIS_COMMAND_MS 1000
#define STATUS_PREFIX_MAX       256
#define STATUS_KEY_MAX          (STATUS_PREFIX_MAX + 512)

const char *const status_stat_names[STATUS_NSTATS] = {"consumed", "inserted", "dup_redis", "dup_db",
                                                      "dead_lettered"};

static const char settle_script[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                    "redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) "
                                    "return 1 end return 0";
static const char release_script[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                     "return redis.call('DEL', KEYS[1]) end return 0";

struct status {
    char prefix[STATUS_PREFIX_MAX];

    pthread_mutex_t db_lock;
    char *db_url; /* NULL: not configured */
    PGconn *pg;
    int db_down;
    int64_t db_next_try;

    pthread_mutex_t redis_lock;
    int has_redis;
    char host[256], password[256];
    int port, db;
    redisContext *rc;
    int redis_down;
    int64_t redis_next_try;
};

/* A detail text fit for a quoted logfmt value and a JSON string. */
static void clean(char *s)
{
    for (; *s; s++)
        if (*s == '"' || *s == '\\' || *s == '\n' || *s == '\r')
            *s = *s == '\n' || *s == '\r' ? ' ' : '\'';
}

/* ------------------------------------------------------------ PostgreSQL */

static void db_drop(struct status *st, const char *why)
{
    char w[256];

    util_strlcpy(w, why, sizeof(w));
    clean(w);
    if (!st->db_down)
        log_warn("postgresql unavailable for status routes", "error=\"%s\"", w);
    st->db_down = 1;
    if (st->pg)
        PQfinish(st->pg);
    st->pg = NULL;
    st->db_next_try = util_now_ms() + STATUS_RETRY_MS;
}

/* Under db_lock: a usable connection, or NULL with the reason in errstr. */
static PGconn *db_conn(struct status *st, char *errstr, size_t errsize)
{
    /* connect_timeout comes before dbname, so a URL that sets its own wins. */
    const char *const keys[] = {"connect_timeout", "tcp_user_timeout", "application_name", "dbname",
                                NULL};
    const char *const vals[] = {"2", "3000", "tadak-producer", st->db_url, NULL};
    PGresult *res;

    if (st->pg && PQstatus(st->pg) == CONNECTION_OK)
        return st->pg;
    if (st->pg)
        db_drop(st, "connection lost");
    if (util_now_ms() < st->db_next_try) {
        snprintf(errstr, errsize, "PostgreSQL is unreachable; retrying");
        return NULL;
    }
    st->pg = PQconnectdbParams(keys, vals, 1);
    if (!st->pg || PQstatus(st->pg) != CONNECTION_OK) {
        snprintf(errstr, errsize, "cannot connect to PostgreSQL: %s",
                 st->pg ? PQerrorMessage(st->pg) : "out of memory");
        clean(errstr);
        db_drop(st, errstr);
        return NULL;
    }
    res = PQexec(st->pg, "SET statement_timeout = 2000");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        snprintf(errstr, errsize, "cannot set statement_timeout: %s", PQerrorMessage(st->pg));
        clean(errstr);
        PQclear(res);
        db_drop(st, errstr);
        return NULL;
    }
    PQclear(res);
    if (st->db_down)
        log_info("postgresql reachable again", "");
    st->db_down = 0;
    return st->pg;
}

/* A failed query: keep the connection unless it broke. */
static void db_failed(struct status *st, PGresult *res, char *errstr, size_t errsize)
{
    snprintf(errstr, errsize, "PostgreSQL: %s",
             res ? PQresultErrorMessage(res) : PQerrorMessage(st->pg));
    clean(errstr);
    if (PQstatus(st->pg) != CONNECTION_OK)
        db_drop(st, errstr);
}

static int undefined_table(PGresult *res)
{
    const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    return state && strcmp(state, "42P01") == 0;
}

/* ------------------------------------------------------------ Redis */

static void redis_drop(struct status *st, const char *why)
{
    char w[256];

    util_strlcpy(w, why, sizeof(w));
    clean(w);
    if (!st->redis_down)
        log_warn("redis unavailable for status routes", "host=%s port=%d error=\"%s\"", st->host,
                 st->port, w);
    st->redis_down = 1;
    if (st->rc)
        redisFree(st->rc);
    st->rc = NULL;
    st->redis_next_try = util_now_ms() + STATUS_RETRY_MS;
}

static int redis_setup(struct status *st, const char *cmd, const char *arg)
{
    redisReply *r = redisCommand(st->rc, cmd, arg);
    int ok = r && r->type != REDIS_REPLY_ERROR;

    if (r)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

/* Under redis_lock: a connected context, or NULL with the reason in errstr. */
static redisContext *redis_conn(struct status *st, char *errstr, size_t errsize)
{
    struct timeval ct = {0, STATUS_REDIS_CONNECT_MS * 1000};
    struct timeval cmd = {STATUS_REDIS_COMMAND_MS / 1000, (STATUS_REDIS_COMMAND_MS % 1000) * 1000};
    char db[16];

    if (st->rc)
        return st->rc;
    if (util_now_ms() < st->redis_next_try) {
        snprintf(errstr, errsize, "Redis is unreachable; retrying");
        return NULL;
    }
    st->rc = redisConnectWithTimeout(st->host, st->port, ct);
    if (!st->rc || st->rc->err) {
        snprintf(errstr, errsize, "cannot connect to Redis: %s",
                 st->rc ? st->rc->errstr : "out of memory");
        goto fail;
    }
    snprintf(db, sizeof(db), "%d", st->db);
    if (redisSetTimeout(st->rc, cmd) != REDIS_OK ||
        (st->password[0] && redis_setup(st, "AUTH %s", st->password) != 0) ||
        (st->db && redis_setup(st, "SELECT %s", db) != 0)) {
        snprintf(errstr, errsize, "Redis setup (timeout, AUTH, SELECT) failed");
        goto fail;
    }
    if (st->redis_down)
        log_info("redis reachable again", "host=%s port=%d", st->host, st->port);
    st->redis_down = 0;
    return st->rc;
fail:
    clean(errstr);
    redis_drop(st, errstr);
    return NULL;
}

/* Run one command under the lock; NULL (connection dropped) on an I/O error. */
static redisReply *redis_run(struct status *st, char *errstr, size_t errsize, const char *fmt, ...)
{
    redisContext *c = redis_conn(st, errstr, errsize);
    redisReply *r;
    va_list ap;

    if (!c)
        return NULL;
    va_start(ap, fmt);
    r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (!r) {
        snprintf(errstr, errsize, "Redis: %s", c->errstr);
        clean(errstr);
        redis_drop(st, errstr);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errsize, "Redis: %s", r->str);
        clean(errstr);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* ------------------------------------------------------------ lifecycle */

struct status *status_new(const struct status_opts *o, char *errstr, size_t errsize)
{
    struct status *st = xcalloc(1, sizeof(*st));
    const char *prefix = o->key_prefix ? o->key_prefix : "";

    pthread_mutex_init(&st->db_lock, NULL);
    pthread_mutex_init(&st->redis_lock, NULL);
    if (strlen(prefix) >= sizeof(st->prefix)) {
        snprintf(errstr, errsize, "key prefix longer than %d bytes", STATUS_PREFIX_MAX - 1);
        goto fail;
    }
    util_strlcpy(st->prefix, prefix, sizeof(st->prefix));
    if (o->database_url && *o->database_url)
        st->db_url = xstrdup(o->database_url);
    if (o->redis_url && *o->redis_url) {
        if (gate_parse_url(o->redis_url, st->host, sizeof(st->host), &st->port, &st->db,
                           st->password, sizeof(st->password), errstr, errsize) != 0)
            goto fail;
        st->has_redis = 1;
    }
    return st;
fail:
    status_free(st);
    return NULL;
}

void status_free(struct status *st)
{
    if (!st)
        return;
    if (st->pg)
        PQfinish(st->pg);
    if (st->rc)
        redisFree(st->rc);
    free(st->db_url);
    pthread_mutex_destroy(&st->db_lock);
    pthread_mutex_destroy(&st->redis_lock);
    free(st);
}

int status_has_db(const struct status *st)
{
    return st && st->db_url != NULL;
}

int status_has_redis(const struct status *st)
{
    return st && st->has_redis;
}

/* ------------------------------------------------------------ queries */

/* 1 when Redis holds an in-flight lock ("P ...") for the token, 0 when not, -1 on error. */
static int token_pending(struct status *st, const char *token, char *errstr, size_t errsize)
{
    redisReply *r;
    int pending;

    pthread_mutex_lock(&st->redis_lock);
    r = redis_run(st, errstr, errsize, "GET %s%s", st->prefix, token);
    pthread_mutex_unlock(&st->redis_lock);
    if (!r)
        return -1;
    pending = r->type == REDIS_REPLY_STRING && r->len >= 2 && r->str[0] == 'P' && r->str[1] == ' ';
    freeReplyObject(r);
    return pending;
}

int status_vote(struct status *st, int64_t user_id, int64_t candidate_id, struct status_vote *res,
                char *errstr, size_t errsize)
{
    static const char sql[] = "SELECT event_id::text, to_char(created_at AT TIME ZONE 'UTC', "
                              "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM votes WHERE token = $1";
    char token[EVENT_TOKEN_LEN];
    const char *params[1] = {token};
    PGconn *c;
    PGresult *q = NULL;
    int rc = -1, p;

    memset(res, 0, sizeof(*res));
    res->state = STATUS_UNKNOWN;
    event_token(user_id, candidate_id, token, sizeof(token));
    pthread_mutex_lock(&st->db_lock);
    if (!(c = db_conn(st, errstr, errsize)))
        goto out;
    q = PQexecParams(c, sql, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(q) != PGRES_TUPLES_OK && !undefined_table(q)) {
        db_failed(st, q, errstr, errsize);
        goto out;
    }
    if (PQresultStatus(q) == PGRES_TUPLES_OK && PQntuples(q) == 1) {
        res->state = STATUS_RECORDED;
        util_strlcpy(res->event_id, PQgetvalue(q, 0, 0), sizeof(res->event_id));
        util_strlcpy(res->created_at, PQgetvalue(q, 0, 1), sizeof(res->created_at));
    }
    rc = 0;
out:
    PQclear(q);
    pthread_mutex_unlock(&st->db_lock);
    if (rc == 0 && res->state == STATUS_UNKNOWN && st->has_redis) {
        if ((p = token_pending(st, token, errstr, errsize)) < 0)
            return -1;
        if (p)
            res->state = STATUS_PENDING;
    }
    return rc;
}

int status_tallies(struct status *st, char **json, char *errstr, size_t errsize)
{
    static const char sql[] =
        "SELECT candidate_id, count(*) FROM votes GROUP BY candidate_id ORDER BY candidate_id";
    struct strbuf b;
    PGconn *c;
    PGresult *q = NULL;
    int64_t total = 0, v;
    int rc = -1, n;

    *json = NULL;
    strbuf_init(&b, 256);
    pthread_mutex_lock(&st->db_lock);
    if (!(c = db_conn(st, errstr, errsize)))
        goto out;
    q = PQexec(c, sql);
    if (PQresultStatus(q) != PGRES_TUPLES_OK && !undefined_table(q)) {
        db_failed(st, q, errstr, errsize);
        goto out;
    }
    strbuf_printf(&b, "{\"tallies\":[");
    n = PQresultStatus(q) == PGRES_TUPLES_OK ? PQntuples(q) : 0; /* no table yet: no votes */
    for (int i = 0; i < n; i++) {
        if (util_parse_i64(PQgetvalue(q, i, 1), &v) != 0)
            v = 0;
        total += v;
        strbuf_printf(&b, "%s{\"candidate_id\":%s,\"votes\":%" PRId64 "}", i ? "," : "",
                      PQgetvalue(q, i, 0), v);
    }
    strbuf_printf(&b, "],\"total\":%" PRId64 "}\n", total);
    *json = b.s;
    b.s = NULL;
    rc = 0;
out:
    PQclear(q);
    pthread_mutex_unlock(&st->db_lock);
    free(b.s);
    return rc;
}

int status_stats(struct status *st, int64_t vals[STATUS_NSTATS], char *errstr, size_t errsize)
{
    redisReply *r;

    memset(vals, 0, sizeof(int64_t) * STATUS_NSTATS);
    pthread_mutex_lock(&st->redis_lock);
    r = redis_run(st, errstr, errsize, "HMGET %stadak:stats %s %s %s %s %s", st->prefix,
                  status_stat_names[0], status_stat_names[1], status_stat_names[2],
                  status_stat_names[3], status_stat_names[4]);
    pthread_mutex_unlock(&st->redis_lock);
    if (!r)
        return -1;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == STATUS_NSTATS)
        for (size_t i = 0; i < STATUS_NSTATS; i++)
            if (r->element[i]->type == REDIS_REPLY_STRING &&
                util_parse_i64(r->element[i]->str, &vals[i]) != 0)
                vals[i] = 0;
    freeReplyObject(r);
    return 0;
}

/* ------------------------------------------------------------ Idempotency-Key */

int status_idem_claim(struct status *st, const char *key, const char *value, int64_t ttl_ms,
                      char *old, size_t oldsize, int *existed, char *errstr, size_t errsize)
{
    redisReply *r;
    char ttl[24];
    int rc = -1;

    *existed = 0;
    old[0] = '\0';
    snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_ms);
    pthread_mutex_lock(&st->redis_lock);
    r = redis_run(st, errstr, errsize, "SET %sidem:%s %s NX PX %s GET", st->prefix, key, value,
                  ttl);
    pthread_mutex_unlock(&st->redis_lock);
    if (!r)
        return -1;
    if (r->type == REDIS_REPLY_STRING) {
        *existed = 1;
        util_strlcpy(old, r->str, oldsize);
        rc = 0;
    } else if (r->type == REDIS_REPLY_NIL) {
        rc = 0;
    } else {
        snprintf(errstr, errsize, "unexpected reply type %d to SET NX GET", r->type);
    }
    freeReplyObject(r);
    return rc;
}

static int idem_script(struct status *st, const char *script, const char *key, int nargs,
                       const char *a1, const char *a2, const char *a3)
{
    char err[256], fullkey[STATUS_KEY_MAX];
    redisReply *r;
    int rc;

    snprintf(fullkey, sizeof(fullkey), "%sidem:%s", st->prefix, key);
    pthread_mutex_lock(&st->redis_lock);
    if (nargs == 3)
        r = redis_run(st, err, sizeof(err), "EVAL %s 1 %s %s %s %s", script, fullkey, a1, a2, a3);
    else
        r = redis_run(st, err, sizeof(err), "EVAL %s 1 %s %s", script, fullkey, a1);
    pthread_mutex_unlock(&st->redis_lock);
    if (!r) {
        log_warn("idempotency marker not updated", "error=\"%s\"", err);
        return -1;
    }
    rc = r->type == REDIS_REPLY_INTEGER && r->integer == 1 ? 0 : -1;
    freeReplyObject(r);
    return rc;
}

int status_idem_settle(struct status *st, const char *key, const char *expect, const char *value,
                       int64_t ttl_ms)
{
    char ttl[24];

    snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_ms);
    return idem_script(st, settle_script, key, 3, expect, value, ttl);
}

int status_idem_release(struct status *st, const char *key, const char *expect)
{
    return idem_script(st, release_script, key, 1, expect, NULL, NULL);
}
