/*
 * store.c - PostgreSQL through libpq. See store.h.
 *
 * Arrays travel as text literals ('{"a","b"}'), built into buffers the
 * store keeps between batches, so a batch costs no allocation once the
 * buffers have grown to the batch size.
 */
#include "store.h"
#include "log.h"
#include "util.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Any 64-bit number that no other tadak lock uses: "tadak" + 1. */
#define STORE_SCHEMA_LOCK "7461646101"

/* A copy of sql/schema.sql; tests/unit/test_store.c keeps the two identical. */
static const char schema_sql[] =
    "-- tadak schema. Applied by the consumer at start and by `tadak-consumer migrate`;\n"
    "-- every statement is idempotent so any number of consumers may run it at once.\n"
    "--\n"
    "-- The UNIQUE token is the final arbiter of \"one row per vote\": Redis only\n"
    "-- stops bursts early, PostgreSQL's ON CONFLICT (token) DO NOTHING decides.\n"
    "CREATE TABLE IF NOT EXISTS votes (\n"
    "    id              bigserial PRIMARY KEY,\n"
    "    token           text        NOT NULL UNIQUE,\n"
    "    user_id         bigint      NOT NULL,\n"
    "    candidate_id    bigint      NOT NULL,\n"
    "    event_id        uuid        NOT NULL,\n"
    "    kafka_partition int,\n"
    "    kafka_offset    bigint,\n"
    "    created_at      timestamptz NOT NULL DEFAULT now()\n"
    ");\n"
    "CREATE INDEX IF NOT EXISTS votes_candidate_idx ON votes (candidate_id);\n";

static const char insert_sql[] =
    "INSERT INTO votes (token, user_id, candidate_id, event_id, kafka_partition, kafka_offset) "
    "SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::uuid[], $5::int[], "
    "$6::bigint[]) ON CONFLICT (token) DO NOTHING RETURNING token";

struct buf {
    char *p;
    size_t len, cap;
};

struct store {
    char *url;
    PGconn *conn;
    struct buf cols[6];
    size_t *order; /* row indices sorted by token, to match RETURNING */
    size_t order_cap;
};

const char *store_schema(void)
{
    return schema_sql;
}

static void buf_reserve(struct buf *b, size_t more)
{
    if (b->len + more + 1 > b->cap) {
        b->cap = (b->len + more + 1) * 2;
        b->p = xrealloc(b->p, b->cap);
    }
}

static void buf_putc(struct buf *b, char c)
{
    buf_reserve(b, 1);
    b->p[b->len++] = c;
    b->p[b->len] = '\0';
}

/* An array element in double quotes; " and \ escaped as array syntax wants. */
static void buf_quoted(struct buf *b, const char *s)
{
    buf_reserve(b, 2 * strlen(s) + 2);
    b->p[b->len++] = '"';
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            b->p[b->len++] = '\\';
        b->p[b->len++] = *s;
    }
    b->p[b->len++] = '"';
    b->p[b->len] = '\0';
}

static void buf_int(struct buf *b, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%" PRId64, v);
    buf_reserve(b, (size_t)n);
    memcpy(b->p + b->len, num, (size_t)n + 1);
    b->len += (size_t)n;
}

struct store *store_new(const char *url)
{
    struct store *s = xcalloc(1, sizeof(*s));
    s->url = xstrdup(url);
    return s;
}

void store_free(struct store *s)
{
    if (!s)
        return;
    if (s->conn)
        PQfinish(s->conn);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(s->cols); i++)
        free(s->cols[i].p);
    free(s->order);
    free(s->url);
    free(s);
}

/* Trim libpq's trailing newline so the message fits on one log line. */
static void set_err(char *errstr, size_t errsize, const char *what, const char *msg)
{
    size_t n;

    snprintf(errstr, errsize, "%s: %s", what, msg);
    n = strlen(errstr);
    while (n && (errstr[n - 1] == '\n' || errstr[n - 1] == ' '))
        errstr[--n] = '\0';
}

static int store_connect(struct store *s, char *errstr, size_t errsize)
{
    /*
     * Defaults first: the URL (expand_dbname) overrides them. Keepalives and
     * tcp_user_timeout turn a PostgreSQL that vanished into an error within
     * seconds instead of a call that hangs until the group evicts us.
     */
    static const char *const keys[] = {"connect_timeout",
                                       "keepalives_idle",
                                       "keepalives_interval",
                                       "keepalives_count",
                                       "tcp_user_timeout",
                                       "application_name",
                                       "dbname",
                                       NULL};
    const char *vals[] = {"2", "5", "2", "3", "10000", "tadak-consumer", s->url, NULL};

    if (s->conn && PQstatus(s->conn) == CONNECTION_OK)
        return 0;
    if (s->conn)
        PQfinish(s->conn);
    s->conn = PQconnectdbParams(keys, vals, 1);
    if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) {
        set_err(errstr, errsize, "cannot connect to PostgreSQL",
                s->conn ? PQerrorMessage(s->conn) : "out of memory");
        if (s->conn)
            PQfinish(s->conn);
        s->conn = NULL;
        return -1;
    }
    return 0;
}

/* Run one statement without parameters; 0 when it succeeded. */
static int exec_simple(struct store *s, const char *sql, char *errstr, size_t errsize)
{
    PGresult *r = PQexec(s->conn, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        set_err(errstr, errsize, "PostgreSQL", PQerrorMessage(s->conn));
        rc = -1;
    }
    PQclear(r);
    return rc;
}

int store_migrate(struct store *s, char *errstr, size_t errsize)
{
    char ignore[64];

    if (store_connect(s, errstr, errsize) != 0)
        return -1;
    if (exec_simple(s, "BEGIN", errstr, errsize) != 0)
        return -1;
    if (exec_simple(s, "SELECT pg_advisory_xact_lock(" STORE_SCHEMA_LOCK ")", errstr, errsize) !=
            0 ||
        exec_simple(s, schema_sql, errstr, errsize) != 0) {
        exec_simple(s, "ROLLBACK", ignore, sizeof(ignore));
        return -1;
    }
    return exec_simple(s, "COMMIT", errstr, errsize);
}

static int cmp_token(const void *a, const void *b, void *ctx)
{
    const struct store_row *rows = ctx;
    return strcmp(rows[*(const size_t *)a].token, rows[*(const size_t *)b].token);
}

int store_insert_batch(struct store *s, struct store_row *rows, size_t n, char *errstr,
                       size_t errsize)
{
    const char *params[6];
    PGresult *r = NULL;
    size_t i, c;
    int rc = -1;

    for (i = 0; i < n; i++)
        rows[i].inserted = 0;
    if (n == 0)
        return 0;
    if (store_connect(s, errstr, errsize) != 0)
        return -1;

    for (c = 0; c < 6; c++) {
        s->cols[c].len = 0;
        buf_putc(&s->cols[c], '{');
    }
    for (i = 0; i < n; i++) {
        if (i > 0)
            for (c = 0; c < 6; c++)
                buf_putc(&s->cols[c], ',');
        buf_quoted(&s->cols[0], rows[i].token);
        buf_int(&s->cols[1], rows[i].user_id);
        buf_int(&s->cols[2], rows[i].candidate_id);
        buf_quoted(&s->cols[3], rows[i].event_id);
        buf_int(&s->cols[4], rows[i].partition);
        buf_int(&s->cols[5], rows[i].offset);
    }
    for (c = 0; c < 6; c++) {
        buf_putc(&s->cols[c], '}');
        params[c] = s->cols[c].p;
    }

    r = PQexecParams(s->conn, insert_sql, 6, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        set_err(errstr, errsize, "batch insert failed", PQerrorMessage(s->conn));
        goto out;
    }

    /* Match the returned tokens to rows: sort row indices by token, then bsearch. */
    if (n > s->order_cap) {
        s->order_cap = n;
        s->order = xrealloc(s->order, n * sizeof(*s->order));
    }
    for (i = 0; i < n; i++)
        s->order[i] = i;
    qsort_r(s->order, n, sizeof(*s->order), cmp_token, rows);
    for (int t = 0; t < PQntuples(r); t++) {
        const char *tok = PQgetvalue(r, t, 0);
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int d = strcmp(rows[s->order[mid]].token, tok);
            if (d == 0) {
                rows[s->order[mid]].inserted = 1;
                break;
            }
            if (d < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
    }
    rc = 0;
out:
    PQclear(r);
    /* A broken connection is re-opened by the next call. */
    if (rc != 0 && PQstatus(s->conn) != CONNECTION_OK) {
        PQfinish(s->conn);
        s->conn = NULL;
    }
    return rc;
}
