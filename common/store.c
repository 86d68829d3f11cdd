/*
 * store.c - PostgreSQL through libpq. See store.h.
 *
 * Arrays travel as text literals ('{"a","b"}'), built into buffers the
 * store keeps between batches, so a batch costs no allocation once the
 * buffers have grown to the batch size.
 *
 * statement_timeout is SET right after each connect, not passed as libpq
 * "options": the URL's own ?options= (or PGOPTIONS) would silently replace
 * ours, or ours theirs.
 *
 * Failures are judged by SQLSTATE in one table (failure_table), because the
 * caller only needs "retry later" or "stop, a human must fix this". Class
 * 42 means the table (or a privilege) does not fit the statement and every
 * retry fails alike, so the message says so and keeps PostgreSQL's own
 * words, which name the table or column. Errors whose cure is a new session
 * (connection lost, server shutting down, a standby refusing writes after a
 * failover) close the connection, so the next call reaches whatever the URL
 * leads to by then.
 *
 * Rows go out in token order. ON CONFLICT waits for an uncommitted row with
 * the same token, so two transactions taking overlapping tokens in opposite
 * orders wait for each other (40P01); in one global order the later one
 * only waits. rows[] keeps the caller's order: `order` holds the sorted row
 * indices, used to build the arrays and to match RETURNING back to rows.
 */
#include "store.h"
#include "event.h"
#include "log.h"
#include "strbuf.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Any 64-bit number that no other tadak lock uses: "tadak" + 1. */
#define STORE_SCHEMA_LOCK "7461646101"

/*
 * A copy of sql/schema.sql; tests/unit/test_store.c keeps the two identical.
 * In two parts: a start where votes exists applies only the second (the
 * identity table), which takes no lock on votes.
 */
#define SCHEMA_VOTES                                                                               \
    "-- tadak schema. Applied by `tadak-consumer migrate`, and by a consumer that starts\n"        \
    "-- where table votes does not exist yet (an existing one is only verified); every\n"          \
    "-- statement is idempotent so any number of consumers may run it at once.\n"                  \
    "--\n"                                                                                         \
    "-- The UNIQUE token is the final arbiter of \"one row per vote\": Redis only\n"               \
    "-- stops bursts early, PostgreSQL's ON CONFLICT (token) DO NOTHING decides.\n"                \
    "CREATE TABLE IF NOT EXISTS votes (\n"                                                         \
    "    id              bigserial PRIMARY KEY,\n"                                                 \
    "    token           text        NOT NULL UNIQUE,\n"                                           \
    "    user_id         bigint      NOT NULL,\n"                                                  \
    "    candidate_id    bigint      NOT NULL,\n"                                                  \
    "    event_id        uuid        NOT NULL,\n"                                                  \
    "    kafka_partition int,\n"                                                                   \
    "    kafka_offset    bigint,\n"                                                                \
    "    created_at      timestamptz NOT NULL DEFAULT now()\n"                                     \
    ");\n"                                                                                         \
    "CREATE INDEX IF NOT EXISTS votes_candidate_idx ON votes (candidate_id);\n"                    \
    "\n"
#define SCHEMA_IDENTITY                                                                            \
    "-- Which database this is: a random id made once, when the schema is first\n"                 \
    "-- applied (one row). Consumers claim their Redis key prefix for\n"                           \
    "-- <system identifier>/<database name>#<id> (<prefix>tadak:database), so a\n"                 \
    "-- database dropped and created again under the same name is another one. A\n"                \
    "-- physical copy (a restored base backup, a promoted replica, a disk snapshot)\n"             \
    "-- copies the id too: give the copy its own with `tadak-consumer new-identity`.\n"            \
    "CREATE TABLE IF NOT EXISTS tadak_identity (\n"                                                \
    "    one_row boolean PRIMARY KEY DEFAULT true CHECK (one_row),\n"                              \
    "    id      uuid    NOT NULL DEFAULT gen_random_uuid()\n"                                     \
    ");\n"                                                                                         \
    "INSERT INTO tadak_identity DEFAULT VALUES ON CONFLICT DO NOTHING;\n"
static const char schema_sql[] = SCHEMA_VOTES SCHEMA_IDENTITY;

/*
 * A batch whose connection broke before its result arrived (a primary
 * killed, a failover) has an unknown outcome: it may have committed, and,
 * with the standby that is promoted next, survived. The caller sends the
 * same rows again, to whichever server the URL leads to by then (a
 * multi-host URL with target_session_attrs=read-write: the new primary).
 * That is safe because of ON CONFLICT (token) DO NOTHING: a row that made
 * it comes back as already there (inserted 0), never as a second row.
 *
 * The statement is built from the type (store_insert_sql): the vote's is
 * byte for byte the one tadak always sent (tests/unit/test_store.c), so
 * monitoring that matches on it keeps working.
 */

/* A string literal onto a strbuf, its length counted by the compiler. */
#define PUT_LIT(b, lit) strbuf_append((b), (lit), sizeof(lit) - 1)

/* The columns besides the fields: token first, then event_id, kafka_partition, kafka_offset. */
#define STORE_EXTRA_COLS 4

/*
 * Tokens of the last committed rows, looked up again after the server's
 * timeline changed (a promoted standby); any type's token fits (event.h).
 */
#define STORE_RECENT       32
#define STORE_RECENT_TOKEN EVENT_TOKEN_LEN

struct store {
    char *url;
    int64_t statement_timeout_ms;
    enum store_failure failure;
    PGconn *conn;
    const struct evtype *type; /* whose table: the vote until store_use_type */
    struct strbuf insert_sql;  /* the type's INSERT (store_insert_sql) */
    struct strbuf *cols;       /* the array literals of the batch in the making, one a column */
    size_t ncols;              /* the type's fields + STORE_EXTRA_COLS */
    size_t *order;             /* row indices sorted by token, to match RETURNING */
    size_t sent;               /* rows of the insert in flight (store_insert_send), 0: none */
    size_t order_cap;
    char sqlstate[6];    /* of the last failure, "" when it had none */
    char message[256];   /* PostgreSQL's primary message of the last failure, one line */
    int warned_identity; /* tadak_identity unusable: said once */
    /* The failover check (see "failover" below). */
    char recent[STORE_RECENT][STORE_RECENT_TOKEN];
    size_t nrecent, recent_next;
    uint32_t recent_tl;  /* the timeline those tokens were committed on, 0: unknown */
    uint32_t session_tl; /* the current session's, 0: not read yet */
    /* Of the database store_identity named ("": not known), checked on every new session. */
    char sysid[32], dbuuid[40];
};

const char *store_schema(void)
{
    return schema_sql;
}

/* An array element in double quotes; " and \ escaped as array syntax wants. */
static void put_quoted(struct strbuf *b, const char *s)
{
    strbuf_reserve(b, 2 * strlen(s) + 2);
    b->s[b->len++] = '"';
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            b->s[b->len++] = '\\';
        b->s[b->len++] = *s;
    }
    b->s[b->len++] = '"';
    b->s[b->len] = '\0';
}

static void put_int(struct strbuf *b, int64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%" PRId64, v);
    strbuf_append(b, num, (size_t)n);
}

/*
 * An identifier into SQL. The built-in vote's are written as they always
 * were (plain words of ours); a types file's are quoted, any '"' doubled,
 * although evtype.c admits only [a-z][a-z0-9_]*: a name never becomes SQL
 * syntax, whatever a later loader lets through.
 */
static void put_ident(struct strbuf *b, const struct evtype *t, const char *name)
{
    if (t == evtype_vote()) {
        strbuf_append(b, name, strlen(name));
        return;
    }
    strbuf_putc(b, '"');
    for (; *name; name++) {
        if (*name == '"')
            strbuf_putc(b, '"');
        strbuf_putc(b, *name);
    }
    strbuf_putc(b, '"');
}

/* A string field (or an enum of strings) is a text column, every other kind a bigint one. */
static int field_is_text(const struct evfield *f)
{
    return f->kind == EVF_STRING || f->kind == EVF_ENUM_STRING;
}

static const char *field_sql_type(const struct evfield *f)
{
    return field_is_text(f) ? "text" : "bigint";
}

void store_insert_sql(const struct evtype *t, struct strbuf *out)
{
    size_t i, n = t->nfields + STORE_EXTRA_COLS;

    PUT_LIT(out, "INSERT INTO ");
    put_ident(out, t, t->table);
    PUT_LIT(out, " (token, ");
    for (i = 0; i < t->nfields; i++) {
        put_ident(out, t, t->fields[i].name);
        PUT_LIT(out, ", ");
    }
    strbuf_printf(out, "event_id, kafka_partition, kafka_offset) SELECT * FROM unnest($1::text[]");
    for (i = 0; i < t->nfields; i++)
        strbuf_printf(out, ", $%zu::%s[]", i + 2, field_sql_type(&t->fields[i]));
    strbuf_printf(out, ", $%zu::uuid[], $%zu::int[], $%zu::bigint[]) ", n - 2, n - 1, n);
    strbuf_printf(out, "ON CONFLICT (token) DO NOTHING RETURNING token");
}

void store_use_type(struct store *s, const struct evtype *t)
{
    size_t i;

    for (i = 0; i < s->ncols; i++)
        free(s->cols[i].s);
    free(s->cols);
    s->type = t;
    s->ncols = t->nfields + STORE_EXTRA_COLS;
    s->cols = xcalloc(s->ncols, sizeof(*s->cols));
    s->insert_sql.len = 0;
    store_insert_sql(t, &s->insert_sql);
    /* The failover sample names rows of the table before: not this one's. */
    s->nrecent = s->recent_next = 0;
}

struct store *store_new(const char *url, int64_t statement_timeout_ms)
{
    struct store *s = xcalloc(1, sizeof(*s));
    s->url = xstrdup(url);
    /* PostgreSQL takes an int of milliseconds; 0 turns the timeout off. */
    if (statement_timeout_ms < 0)
        statement_timeout_ms = 0;
    if (statement_timeout_ms > INT32_MAX)
        statement_timeout_ms = INT32_MAX;
    s->statement_timeout_ms = statement_timeout_ms;
    store_use_type(s, evtype_vote());
    return s;
}

enum store_failure store_last_failure(const struct store *s)
{
    return s->failure;
}

const char *store_last_sqlstate(const struct store *s)
{
    return s->sqlstate;
}

const char *store_last_message(const struct store *s)
{
    return s->message;
}

/* A SQLSTATE (five characters) or a class (its first two), and what it means for us. */
struct failure_rule {
    const char *sqlstate;
    enum store_failure failure;
    int reconnect;
    /* PERMANENT: what a human must change (NULL: the general advice); '@' is the table. */
    const char *fix;
};

/*
 * First match wins; anything not listed may heal by itself: TRANSIENT, same
 * session. ROW: PostgreSQL refused the data of some row (a CHECK, a foreign
 * key, a trigger's RAISE, a value out of a column's range); the batch's
 * other rows are fine, so the caller finds that row rather than retrying.
 * A NOT NULL violation is the schema's, not a row's: every column tadak
 * writes has a value, so the table has one tadak does not fill.
 */
static const struct failure_rule failure_table[] = {
    {"08", STORE_FAIL_TRANSIENT, 1, NULL},    /* connection exception */
    {"57P01", STORE_FAIL_TRANSIENT, 1, NULL}, /* admin_shutdown (also pg_terminate_backend) */
    {"57P02", STORE_FAIL_TRANSIENT, 1, NULL}, /* crash_shutdown */
    {"57P03", STORE_FAIL_TRANSIENT, 1, NULL}, /* cannot_connect_now: starting up, recovering */
    {"25006", STORE_FAIL_TRANSIENT, 1, NULL}, /* read_only_sql_transaction: a standby now */
    {"42", STORE_FAIL_PERMANENT, 0, NULL},    /* no such table/column, no UNIQUE, no privilege */
    /* ON CONFLICT on a DEFERRABLE unique token */
    {"55000", STORE_FAIL_PERMANENT, 0,
     "the UNIQUE constraint on @.token must not be DEFERRABLE, ON CONFLICT cannot use it "
     "(drop it and add it again without DEFERRABLE)"},
    {"0A", STORE_FAIL_PERMANENT, 0, NULL}, /* feature_not_supported by this table */
    /* NOT NULL on a column tadak does not write */
    {"23502", STORE_FAIL_PERMANENT, 0,
     "a NOT NULL column of @ that tadak does not write needs a DEFAULT"},
    {"23", STORE_FAIL_ROW, 0, NULL},    /* CHECK, foreign key, another UNIQUE, exclusion */
    {"22", STORE_FAIL_ROW, 0, NULL},    /* data exception: a value the column refuses */
    {"P0001", STORE_FAIL_ROW, 0, NULL}, /* RAISE EXCEPTION in the table's trigger */
};

/* The rule a SQLSTATE falls under, or NULL: TRANSIENT, same session. */
static const struct failure_rule *failure_rule_of(const char *sqlstate)
{
    for (size_t i = 0; i < UTIL_ARRAY_LEN(failure_table); i++) {
        const struct failure_rule *f = &failure_table[i];
        if (strncmp(sqlstate, f->sqlstate, strlen(f->sqlstate)) == 0)
            return f;
    }
    return NULL;
}

enum store_failure store_classify_sqlstate(const char *sqlstate, int *reconnect)
{
    const struct failure_rule *f;

    *reconnect = 1;
    if (!sqlstate)
        return STORE_FAIL_TRANSIENT; /* no answer from the server: the session is gone */
    f = failure_rule_of(sqlstate);
    *reconnect = f ? f->reconnect : 0;
    return f ? f->failure : STORE_FAIL_TRANSIENT;
}

void store_free(struct store *s)
{
    if (!s)
        return;
    if (s->conn)
        PQfinish(s->conn);
    for (size_t i = 0; i < s->ncols; i++)
        free(s->cols[i].s);
    free(s->cols);
    free(s->insert_sql.s);
    free(s->order);
    free(s->url);
    free(s);
}

/* One line: libpq's messages end in (and may contain) newlines, tabs, runs of spaces. */
static void set_err(char *errstr, size_t errsize, const char *what, const char *msg)
{
    size_t i, n = 0;

    if (errsize == 0)
        return;
    snprintf(errstr, errsize, "%s%s%s", what, what[0] ? ": " : "", msg);
    for (i = 0; errstr[i]; i++) {
        char c = errstr[i] == '\n' || errstr[i] == '\r' || errstr[i] == '\t' ? ' ' : errstr[i];
        if (c != ' ' || (n > 0 && errstr[n - 1] != ' '))
            errstr[n++] = c;
    }
    while (n && errstr[n - 1] == ' ')
        n--;
    errstr[n] = '\0';
}

static void store_disconnect(struct store *s)
{
    if (s->conn)
        PQfinish(s->conn);
    s->conn = NULL;
}

/*
 * Judge the result of a statement: 0 when it succeeded. Otherwise -1 with
 * s->failure set, the reason in errstr, and the connection closed when only
 * a new session can help. r may be NULL (libpq: out of memory, not sent).
 */
/* A rule's fix with '@' replaced by the store's table. */
static void fix_for(const struct store *s, const char *fix, char *out, size_t size)
{
    size_t n = 0;

    for (; *fix && n + 1 < size; fix++) {
        if (*fix != '@') {
            out[n++] = *fix;
            continue;
        }
        n += util_strlcpy(out + n, s->type->table, size - n);
        if (n >= size)
            n = size - 1;
    }
    out[n] = '\0';
}

static int check(struct store *s, const PGresult *r, const char *what, char *errstr, size_t errsize)
{
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *primary = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const struct failure_rule *rule = state ? failure_rule_of(state) : NULL;
    char msg[1024], fix[256];
    int reconnect;

    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        s->failure = STORE_FAIL_NONE;
        s->sqlstate[0] = s->message[0] = '\0';
        return 0;
    }
    s->failure = store_classify_sqlstate(state, &reconnect);
    util_strlcpy(s->sqlstate, state ? state : "", sizeof(s->sqlstate));
    set_err(s->message, sizeof(s->message), "", primary ? primary : PQerrorMessage(s->conn));
    if (!state || !primary)
        set_err(errstr, errsize, what, PQerrorMessage(s->conn));
    else if (s->failure == STORE_FAIL_PERMANENT) {
        fix_for(s,
                rule && rule->fix ? rule->fix
                                  : "the table or privileges do not fit what tadak writes",
                fix, sizeof(fix));
        snprintf(msg, sizeof(msg),
                 "%s (SQLSTATE %s: %s; retrying cannot help until the database "
                 "is fixed)",
                 primary, state, fix);
        set_err(errstr, errsize, what, msg);
    } else {
        snprintf(msg, sizeof(msg), "%s (SQLSTATE %s)", primary, state);
        set_err(errstr, errsize, what, msg);
    }
    if (reconnect || PQstatus(s->conn) != CONNECTION_OK)
        store_disconnect(s);
    return -1;
}

/* Server notices ("relation votes already exists, skipping") are debug lines, not stderr noise. */
static void on_notice(void *arg, const char *message)
{
    char line[512];

    (void)arg;
    set_err(line, sizeof(line), "notice", message);
    log_debug("postgresql notice", "detail=\"%s\"", line);
}

static void failover_check(struct store *s);
static int same_database(struct store *s, char *errstr, size_t errsize);
static void failover_remember(struct store *s, const struct store_row *rows, size_t n);

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
    /* The program's name (tadak-consumer, tadak-producer) in pg_stat_activity. */
    const char *vals[] = {"2", "5", "2", "3", "10000", program_invocation_short_name, s->url, NULL};
    char sql[64];
    PGresult *r;
    int rc;

    if (s->conn && PQstatus(s->conn) == CONNECTION_OK)
        return 0;
    store_disconnect(s);
    s->conn = PQconnectdbParams(keys, vals, 1);
    if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) {
        s->failure = STORE_FAIL_TRANSIENT;
        set_err(errstr, errsize, "cannot connect to PostgreSQL",
                s->conn ? PQerrorMessage(s->conn) : "out of memory");
        store_disconnect(s);
        return -1;
    }
    PQsetNoticeProcessor(s->conn, on_notice, NULL);
    /* A lock wait or a stuck server then fails a call instead of blocking the consumer. */
    snprintf(sql, sizeof(sql), "SET statement_timeout = %" PRId64, s->statement_timeout_ms);
    r = PQexec(s->conn, sql);
    rc = check(s, r, "cannot set statement_timeout", errstr, errsize);
    PQclear(r);
    if (rc != 0) {
        store_disconnect(s); /* never run a statement without the timeout */
        return rc;
    }
    if (same_database(s, errstr, errsize) != 0)
        return -1;
    s->session_tl = 0;
    failover_check(s);
    return 0;
}

/* Run one statement without parameters; 0 when it succeeded. */
static int exec_simple(struct store *s, const char *sql, const char *what, char *errstr,
                       size_t errsize)
{
    PGresult *r = PQexec(s->conn, sql);
    int rc = check(s, r, what, errstr, errsize);

    PQclear(r);
    return rc;
}

/* ------------------------------------------------------------ start-up */

/*
 * Refusals at connect that no retry cures, by the server's (English)
 * message: libpq keeps no SQLSTATE for a failed connection. Anything else
 * (refused, unreachable, starting up, too many clients) may heal.
 */
static const struct connect_refusal {
    const char *text, *and_text, *sqlstate, *fix;
} connect_refusals[] = {
    {"password authentication failed", NULL, "28P01",
     "the password in DATABASE_URL (or ~/.pgpass) is wrong for this role"},
    {"no password supplied", NULL, "28P01", "the server wants a password: put it in DATABASE_URL"},
    {"database \"", "does not exist", "3D000",
     "create the database (createdb) or fix its name in DATABASE_URL"},
    {"role \"", "does not exist", "28000", "create the role or fix the user in DATABASE_URL"},
    {"no pg_hba.conf entry", NULL, "28000", "allow this host and role in the server's pg_hba.conf"},
};

/* A failed connect whose message errstr holds: PERMANENT when no retry can cure it. */
static void connect_refused(struct store *s, char *errstr, size_t errsize)
{
    char msg[1024];

    for (size_t i = 0; i < UTIL_ARRAY_LEN(connect_refusals); i++) {
        const struct connect_refusal *c = &connect_refusals[i];
        if (!strstr(errstr, c->text) || (c->and_text && !strstr(errstr, c->and_text)))
            continue;
        snprintf(msg, sizeof(msg), "%s (SQLSTATE %s; retrying cannot help: %s)", errstr,
                 c->sqlstate, c->fix);
        util_strlcpy(errstr, msg, errsize);
        s->failure = STORE_FAIL_PERMANENT;
        return;
    }
}

/* Connect, BEGIN and take the schema lock: DDL from here on is ours alone. */
static int schema_begin(struct store *s, char *errstr, size_t errsize)
{
    static const char what[] = "PostgreSQL";

    if (store_connect(s, errstr, errsize) != 0) {
        connect_refused(s, errstr, errsize);
        return -1;
    }
    if (exec_simple(s, "BEGIN", what, errstr, errsize) != 0)
        return -1;
    return exec_simple(s, "SELECT pg_advisory_xact_lock(" STORE_SCHEMA_LOCK ")", what, errstr,
                       errsize);
}

/* COMMIT after rc 0, else ROLLBACK keeping the failure that caused it. */
static int schema_end(struct store *s, int rc, char *errstr, size_t errsize)
{
    static const char what[] = "PostgreSQL";
    enum store_failure failure = s->failure;
    char ignore[64];

    if (rc == 0)
        return exec_simple(s, "COMMIT", what, errstr, errsize);
    if (s->conn)
        exec_simple(s, "ROLLBACK", what, ignore, sizeof(ignore));
    s->failure = failure; /* the ROLLBACK's success is not the answer */
    return -1;
}

/* Run sql (idempotent DDL) in one transaction under the schema lock. */
static int apply_schema(struct store *s, const char *sql, char *errstr, size_t errsize)
{
    if (schema_begin(s, errstr, errsize) != 0)
        return schema_end(s, -1, errstr, errsize);
    return schema_end(s, exec_simple(s, sql, "PostgreSQL", errstr, errsize), errstr, errsize);
}

/*
 * An index name: "<table>_<field>_idx", which PostgreSQL would cut at 63
 * bytes (and two long tables' names could then meet). When it does not
 * fit, the table part is cut and 8 hex digits of its hash keep the name
 * the table's own.
 */
static void put_index_name(struct strbuf *out, const struct evtype *t, const char *field)
{
    struct strbuf name = {0};
    size_t tlen = strlen(t->table), room = EVTYPE_TABLE_MAX - strlen(field) - (sizeof("__idx") - 1);

    if (tlen <= room) {
        strbuf_printf(&name, "%s_%s_idx", t->table, field);
    } else {
        strbuf_append(&name, t->table, room - 9); /* room for "_" and the hash */
        strbuf_printf(&name, "_%08" PRIx32 "_%s_idx", (uint32_t)util_fnv1a64(t->table, tlen),
                      field);
    }
    put_ident(out, t, name.s);
    free(name.s);
}

void store_type_schema(const struct evtype *t, struct strbuf *out)
{
    if (t == evtype_vote()) {
        PUT_LIT(out, SCHEMA_VOTES);
        return;
    }
    PUT_LIT(out, "CREATE TABLE IF NOT EXISTS ");
    put_ident(out, t, t->table);
    PUT_LIT(out, " (\n    id bigserial PRIMARY KEY,\n    token text NOT NULL UNIQUE,\n");
    for (size_t i = 0; i < t->nfields; i++) {
        PUT_LIT(out, "    ");
        put_ident(out, t, t->fields[i].name);
        strbuf_printf(out, " %s NOT NULL,\n", field_sql_type(&t->fields[i]));
    }
    PUT_LIT(out, "    event_id uuid NOT NULL,\n    kafka_partition int,\n    kafka_offset bigint,\n"
                 "    created_at timestamptz NOT NULL DEFAULT now()\n);\n");
    for (size_t i = 0; i < t->ncounts; i++) {
        const char *field = t->fields[t->counts[i]].name;
        PUT_LIT(out, "CREATE INDEX IF NOT EXISTS ");
        put_index_name(out, t, field);
        PUT_LIT(out, " ON ");
        put_ident(out, t, t->table);
        PUT_LIT(out, " (");
        put_ident(out, t, field);
        PUT_LIT(out, ");\n");
    }
    PUT_LIT(out, "\n");
}

static int verify_type(struct store *s, const struct evtype *t, int columns_only, int *exists,
                       char *errstr, size_t errsize);

/*
 * One transaction under the schema lock: every type's table that exists
 * is checked first (its columns against the type: tadak never ALTERs a
 * table), then the DDL of all of them and of the identity table runs. The
 * vote's table is created, never checked, as it always was; the consumer's
 * start checks it (store_prepare).
 */
int store_migrate(struct store *s, const struct evtypes *set, char *errstr, size_t errsize)
{
    const struct evtype *keep = s->type;
    struct strbuf ddl = {0};
    size_t n = set ? evtypes_count(set) : 1;
    int rc = schema_begin(s, errstr, errsize), exists;

    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct evtype *t = set ? evtypes_at(set, i) : evtype_vote();
        s->type = t; /* a failure's message names its table */
        if (t != evtype_vote())
            rc = verify_type(s, t, 1, &exists, errstr, errsize);
        store_type_schema(t, &ddl);
    }
    PUT_LIT(&ddl, SCHEMA_IDENTITY);
    if (rc == 0)
        rc = exec_simple(s, ddl.s, "PostgreSQL", errstr, errsize);
    rc = schema_end(s, rc, errstr, errsize);
    s->type = keep;
    free(ddl.s);
    return rc;
}

/*
 * What a type's table has, read from the catalogs only (no lock on the
 * table: a migration holding one does not stop us). One row: the table
 * exists; the columns we write that it lacks; the fields' columns of
 * another type than the field needs ("option_id is integer, the type wants
 * bigint"); how many UNIQUE indexes ON CONFLICT (token) could use (on
 * token alone, valid, not partial), how many of those are DEFERRABLE (ON
 * CONFLICT refuses them: 55000) and their names; NOT NULL columns without
 * a default that we never write; whether we may INSERT and read token back
 * (RETURNING). Parameters: $1 the table's name as to_regclass reads it (a
 * file's quoted), $2 the columns we write, $3 and $4 the columns whose
 * type is checked and the types they need (the vote's: none, as before).
 * to_regclass() looks the name up in the newest catalog state, the joins
 * read the statement's snapshot: a table another consumer committed in
 * between would be a table without columns. Its pg_class row, read in the
 * same snapshot, decides whether it exists (not yet: apply the schema,
 * which waits on the advisory lock and finds the table there).
 */
static const char verify_sql[] =
    "WITH t AS (SELECT (SELECT c.oid FROM pg_class c WHERE c.oid = to_regclass($1)) AS oid), "
    "tok AS (SELECT a.attnum FROM pg_attribute a, t WHERE a.attrelid = t.oid "
    "  AND a.attname = 'token' AND a.attnum > 0 AND NOT a.attisdropped), "
    "u AS (SELECT i.indimmediate, i.indexrelid::regclass::text AS name FROM pg_index i, t, tok "
    "  WHERE i.indrelid = t.oid AND i.indisunique AND i.indisvalid AND i.indpred IS NULL "
    "  AND i.indexprs IS NULL AND i.indnkeyatts = 1 AND i.indkey[0] = tok.attnum) "
    "SELECT t.oid IS NOT NULL, "
    "coalesce((SELECT string_agg(c, ',' ORDER BY c) FROM unnest($2::text[]) c "
    "  WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t.oid "
    "  AND a.attname = c AND a.attnum > 0 AND NOT a.attisdropped)), ''), "
    "coalesce((SELECT string_agg(x.c || ' is ' || format_type(a.atttypid, a.atttypmod) || "
    "  ', the type wants ' || x.w, '; ' ORDER BY a.attnum) "
    "  FROM unnest($3::text[], $4::text[]) x(c, w) JOIN pg_attribute a ON a.attrelid = t.oid "
    "  AND a.attname = x.c AND a.attnum > 0 AND NOT a.attisdropped "
    "  WHERE a.atttypid <> x.w::regtype), ''), "
    "(SELECT count(*) FROM u WHERE u.indimmediate), "
    "(SELECT count(*) FROM u WHERE NOT u.indimmediate), "
    "coalesce((SELECT string_agg(u.name, ',') FROM u WHERE NOT u.indimmediate), ''), "
    "coalesce((SELECT string_agg(a.attname, ',' ORDER BY a.attnum) FROM pg_attribute a "
    "  WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attnotnull "
    "  AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = '' "
    "  AND a.attname <> ALL ($2::text[])), ''), "
    "coalesce(has_table_privilege(t.oid, 'INSERT'), true), "
    "coalesce((SELECT has_column_privilege(t.oid, tok.attnum, 'SELECT') FROM tok), true) "
    "FROM t";

enum {
    V_EXISTS,
    V_MISSING,
    V_TYPES,
    V_UNIQUE,
    V_DEFERRABLE,
    V_DEFERRABLE_NAMES,
    V_NOTNULL,
    V_INSERT,
    V_READ
};

/* verify_sql's four parameters for type t, as array literals into p[]. */
static void verify_params(const struct evtype *t, struct strbuf p[4])
{
    size_t i;

    put_ident(&p[0], t, t->table);
    PUT_LIT(&p[1], "{token");
    PUT_LIT(&p[2], "{");
    PUT_LIT(&p[3], "{");
    for (i = 0; i < t->nfields; i++) {
        strbuf_putc(&p[1], ',');
        put_quoted(&p[1], t->fields[i].name);
        if (t == evtype_vote())
            continue; /* its columns' types were never checked: keep every table that worked */
        if (p[2].len > 1) {
            strbuf_putc(&p[2], ',');
            strbuf_putc(&p[3], ',');
        }
        put_quoted(&p[2], t->fields[i].name);
        put_quoted(&p[3], field_sql_type(&t->fields[i]));
    }
    PUT_LIT(&p[1], ",event_id,kafka_partition,kafka_offset}");
    PUT_LIT(&p[2], "}");
    PUT_LIT(&p[3], "}");
}

/* A table that does not fit: PERMANENT, with what is wrong and the fix. */
static int unfit(struct store *s, const struct evtype *t, char *errstr, size_t errsize,
                 const char *why, const char *fix)
{
    snprintf(errstr, errsize, "table %s does not fit: %s; %s", t->table, why, fix);
    s->failure = STORE_FAIL_PERMANENT;
    return -1;
}

/* The fix for columns that disagree with a type from a file: never ours to make. */
static int unfit_columns(struct store *s, const struct evtype *t, char *errstr, size_t errsize,
                         const char *why)
{
    char fix[512];

    if (t == evtype_vote())
        return unfit(s, t, errstr, errsize, why,
                     "add them (see sql/schema.sql) or point DATABASE_URL at the right database");
    snprintf(fix, sizeof(fix),
             "tadak never alters an existing table: change it yourself (ALTER TABLE %s ...), drop "
             "it and run `tadak-consumer migrate --types FILE` again, or give type %s another "
             "\"table\" in the types file",
             t->table, t->name);
    return unfit(s, t, errstr, errsize, why, fix);
}

/* Judge verify_sql's row: 0 when the table fits (or does not exist). */
static int judge_columns(struct store *s, const struct evtype *t, const PGresult *r, char *errstr,
                         size_t errsize)
{
    char why[768];

    if (*PQgetvalue(r, 0, V_MISSING)) {
        snprintf(why, sizeof(why), "it lacks column(s) %s that tadak writes",
                 PQgetvalue(r, 0, V_MISSING));
        return unfit_columns(s, t, errstr, errsize, why);
    }
    if (*PQgetvalue(r, 0, V_TYPES)) {
        snprintf(why, sizeof(why), "column %s (type %s in the types file)",
                 PQgetvalue(r, 0, V_TYPES), t->name);
        return unfit_columns(s, t, errstr, errsize, why);
    }
    return 0;
}

/* Judge verify_sql's row: 0 when the table fits (or does not exist). */
static int judge_table(struct store *s, const struct evtype *t, const PGresult *r, char *errstr,
                       size_t errsize)
{
    char why[512], fix[256];

    if (strcmp(PQgetvalue(r, 0, V_EXISTS), "t") != 0)
        return 0;
    if (judge_columns(s, t, r, errstr, errsize) != 0)
        return -1;
    if (strcmp(PQgetvalue(r, 0, V_DEFERRABLE), "0") != 0) {
        snprintf(why, sizeof(why),
                 "its UNIQUE on token (index %s) is DEFERRABLE, which ON CONFLICT (token) cannot "
                 "use (SQLSTATE 55000)",
                 PQgetvalue(r, 0, V_DEFERRABLE_NAMES));
        snprintf(fix, sizeof(fix),
                 "re-create it NOT DEFERRABLE: ALTER TABLE %s DROP CONSTRAINT <it>, ADD "
                 "UNIQUE (token)",
                 t->table);
        return unfit(s, t, errstr, errsize, why, fix);
    }
    if (strcmp(PQgetvalue(r, 0, V_UNIQUE), "0") == 0) {
        snprintf(why, sizeof(why),
                 "it has no UNIQUE constraint on (token), which ON CONFLICT (token) needs "
                 "and which keeps one row per %s",
                 t->name);
        snprintf(fix, sizeof(fix), "add one: ALTER TABLE %s ADD UNIQUE (token)", t->table);
        return unfit(s, t, errstr, errsize, why, fix);
    }
    if (*PQgetvalue(r, 0, V_NOTNULL)) {
        snprintf(why, sizeof(why),
                 "column(s) %s are NOT NULL without a default, and tadak does not write them",
                 PQgetvalue(r, 0, V_NOTNULL));
        return unfit(s, t, errstr, errsize, why, "give them a default or drop NOT NULL");
    }
    if (strcmp(PQgetvalue(r, 0, V_INSERT), "t") != 0 ||
        strcmp(PQgetvalue(r, 0, V_READ), "t") != 0) {
        snprintf(fix, sizeof(fix), "GRANT INSERT, SELECT ON %s TO <the role in DATABASE_URL>",
                 t->table);
        return unfit(s, t, errstr, errsize,
                     "this role may not INSERT into it or read its token back (RETURNING)", fix);
    }
    return 0;
}

/*
 * Type t's table from the catalogs: 0 when it fits or does not exist
 * (*exists says which). columns_only (migrate): only its columns are
 * judged, the rest is the consumer's start to check.
 */
static int verify_type(struct store *s, const struct evtype *t, int columns_only, int *exists,
                       char *errstr, size_t errsize)
{
    struct strbuf p[4] = {{0}};
    const char *params[4];
    char what[128];
    PGresult *r = NULL;
    int rc = -1;

    *exists = 0;
    snprintf(what, sizeof(what), "cannot read the schema of table %s", t->table);
    verify_params(t, p);
    for (int i = 0; i < 4; i++)
        params[i] = p[i].s;
    r = PQexecParams(s->conn, verify_sql, 4, NULL, params, NULL, NULL, 0);
    if (check(s, r, what, errstr, errsize) != 0)
        goto out;
    if (PQntuples(r) != 1 || PQnfields(r) != V_READ + 1) {
        set_err(errstr, errsize, what, "unexpected answer");
        s->failure = STORE_FAIL_TRANSIENT;
        goto out;
    }
    *exists = strcmp(PQgetvalue(r, 0, V_EXISTS), "t") == 0;
    rc = columns_only ? (*exists ? judge_columns(s, t, r, errstr, errsize) : 0)
                      : judge_table(s, t, r, errstr, errsize);
    if (rc == 0)
        s->failure = STORE_FAIL_NONE;
out:
    PQclear(r);
    for (int i = 0; i < 4; i++)
        free(p[i].s);
    return rc;
}

int store_verify(struct store *s, int *exists, char *errstr, size_t errsize)
{
    *exists = 0;
    if (store_connect(s, errstr, errsize) != 0) {
        connect_refused(s, errstr, errsize);
        return -1;
    }
    return verify_type(s, s->type, 0, exists, errstr, errsize);
}

/* The DDL a start applies where the type's table is missing: the vote's schema, or the type's. */
static int prepare_schema(struct store *s, char *errstr, size_t errsize)
{
    struct strbuf ddl = {0};
    int rc;

    if (s->type == evtype_vote())
        return store_migrate(s, NULL, errstr, errsize);
    store_type_schema(s->type, &ddl);
    PUT_LIT(&ddl, SCHEMA_IDENTITY);
    rc = apply_schema(s, ddl.s, errstr, errsize);
    free(ddl.s);
    return rc;
}

int store_prepare(struct store *s, char *errstr, size_t errsize)
{
    int exists;

    if (store_verify(s, &exists, errstr, errsize) != 0)
        return -1;
    if (exists)
        return 0;
    if (s->type == evtype_vote())
        log_info("table votes missing, applying the schema");
    else
        log_info("table missing, applying the type's schema", "table=%s type=%s", s->type->table,
                 s->type->name);
    if (prepare_schema(s, errstr, errsize) != 0)
        return -1;
    if (store_verify(s, &exists, errstr, errsize) != 0)
        return -1;
    if (!exists) { /* created under another search_path entry than the one we read? */
        snprintf(errstr, errsize, "table %s still missing after applying the schema",
                 s->type->table);
        s->failure = STORE_FAIL_PERMANENT;
        return -1;
    }
    return 0;
}

/*
 * PostgreSQL answers AND takes writes: a standby (or a session forced
 * read-only) is not the end of an outage, so it counts as a failure that
 * needs a new connection (the next one may reach the new primary).
 */
int store_ping(struct store *s, char *errstr, size_t errsize)
{
    PGresult *r;
    int rc;

    if (store_connect(s, errstr, errsize) != 0)
        return -1;
    r = PQexec(s->conn, "SELECT 1 WHERE NOT pg_is_in_recovery() AND "
                        "current_setting('transaction_read_only') = 'off'");
    rc = check(s, r, "PostgreSQL", errstr, errsize);
    if (rc == 0 && PQntuples(r) != 1) {
        set_err(errstr, errsize, "PostgreSQL", "the server is read-only (a standby?)");
        s->failure = STORE_FAIL_TRANSIENT;
        store_disconnect(s);
        rc = -1;
    }
    PQclear(r);
    return rc;
}

/* Append src, %XX-escaping all but a safe set: the identity is one word, unambiguous. */
static int id_append(char *out, size_t size, size_t *len, const char *src)
{
    static const char hex[] = "0123456789ABCDEF";

    for (const unsigned char *c = (const unsigned char *)src; *c; c++) {
        int safe = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                   (*c >= '0' && *c <= '9') || strchr("-._:/[]", *c);
        size_t need = safe ? 1 : 3;
        if (*len + need >= size)
            return -1;
        if (safe) {
            out[(*len)++] = (char)*c;
        } else {
            out[(*len)++] = '%';
            out[(*len)++] = hex[*c >> 4];
            out[(*len)++] = hex[*c & 15];
        }
    }
    out[*len] = '\0';
    return 0;
}

/*
 * The database's random id (table tadak_identity) into id: 0. The table is
 * made here when missing (the users' own schema, or one an older tadak
 * applied): DDL on that table only, never on votes. 1 when this role may
 * neither read nor make it: the identity is then the system identifier and
 * the name alone (logged once). -1 on a failure worth retrying.
 */
static int identity_uuid(struct store *s, char *id, size_t size, char *errstr, size_t errsize)
{
    static const char what[] = "PostgreSQL";

    for (int made = 0;; made = 1) {
        PGresult *r = PQexec(s->conn, "SELECT id::text FROM tadak_identity");
        int rc = check(s, r, what, errstr, errsize);

        if (rc == 0 && PQntuples(r) == 1)
            util_strlcpy(id, PQgetvalue(r, 0, 0), size);
        PQclear(r);
        if (rc == 0 && id[0])
            return 0;
        if (rc != 0 && s->failure != STORE_FAIL_PERMANENT)
            return -1;
        /* No table (42P01), no row, or not ours to read: make them, once. */
        if (made || apply_schema(s, SCHEMA_IDENTITY, errstr, errsize) != 0)
            break;
    }
    if (s->failure == STORE_FAIL_NONE) { /* made, yet no row: someone deletes it; retry */
        snprintf(errstr, errsize, "%s: table tadak_identity has no row", what);
        s->failure = STORE_FAIL_TRANSIENT;
    }
    if (s->failure != STORE_FAIL_PERMANENT)
        return -1;
    if (!s->warned_identity)
        log_warn("cannot read or make table tadak_identity: the database's identity is its "
                 "system identifier and name only; run `tadak-consumer migrate` as a role "
                 "that may create it",
                 "error=\"%s\"", errstr);
    s->warned_identity = 1;
    return 1;
}

/* "/<database name>", then "#<id>" when there is one: -1 when it does not fit. */
static int identity_tail(char *out, size_t size, size_t *len, const char *dbname, const char *id)
{
    if (id_append(out, size, len, "/") != 0 || id_append(out, size, len, dbname) != 0)
        return -1;
    if (!id)
        return 0;
    /* '#' is escaped in the name above, so the id's part is unambiguous. */
    if (*len + 1 >= size)
        return -1;
    out[(*len)++] = '#';
    out[*len] = '\0';
    return id_append(out, size, len, id);
}

int store_identity(struct store *s, char *out, size_t size, char *errstr, size_t errsize)
{
    static const char what[] = "PostgreSQL";
    PGresult *db = NULL, *sys = NULL;
    char id[64] = "";
    size_t len = 0;
    int rc = -1, got;

    if (size)
        out[0] = '\0';
    if (store_connect(s, errstr, errsize) != 0) {
        connect_refused(s, errstr, errsize);
        return -1;
    }
    if ((got = identity_uuid(s, id, sizeof(id), errstr, errsize)) < 0)
        return -1;
    db = PQexec(s->conn, "SELECT current_database()");
    if (check(s, db, what, errstr, errsize) != 0)
        goto out;
    /*
     * A statement of its own (autocommit): when pg_control_system() is not
     * ours to call, the failure ends only that statement, not the session.
     */
    sys = PQexec(s->conn, "SELECT system_identifier FROM pg_control_system()");
    s->sysid[0] = '\0';
    util_strlcpy(s->dbuuid, got == 0 ? id : "", sizeof(s->dbuuid));
    if (PQresultStatus(sys) == PGRES_TUPLES_OK && PQntuples(sys) == 1 && !PQgetisnull(sys, 0, 0)) {
        util_strlcpy(s->sysid, PQgetvalue(sys, 0, 0), sizeof(s->sysid));
        if (id_append(out, size, &len, PQgetvalue(sys, 0, 0)) != 0)
            goto too_long;
    } else if (check(s, sys, what, errstr, errsize) != 0 && s->failure != STORE_FAIL_PERMANENT) {
        goto out; /* unreachable, timed out, ...: a fallback now would be a different id */
    } else {
        /* Not ours to read (a privilege, class 42): the address we reached. */
        const char *host = PQhost(s->conn), *port = PQport(s->conn);
        if (id_append(out, size, &len, host ? host : "") != 0 ||
            id_append(out, size, &len, ":") != 0 ||
            id_append(out, size, &len, port ? port : "") != 0)
            goto too_long;
    }
    if (identity_tail(out, size, &len, PQgetvalue(db, 0, 0), got == 0 ? id : NULL) != 0)
        goto too_long;
    s->failure = STORE_FAIL_NONE;
    rc = 0;
    goto out;
too_long:
    snprintf(errstr, errsize, "%s: the identity does not fit in %zu bytes", what, size);
out:
    PQclear(db);
    PQclear(sys);
    return rc;
}

int store_new_identity(struct store *s, char *out, size_t size, char *errstr, size_t errsize)
{
    if (apply_schema(s, SCHEMA_IDENTITY, errstr, errsize) != 0 ||
        exec_simple(s, "UPDATE tadak_identity SET id = gen_random_uuid()", "PostgreSQL", errstr,
                    errsize) != 0)
        return -1;
    return store_identity(s, out, size, errstr, errsize);
}

static int cmp_token(const void *a, const void *b, void *ctx)
{
    const struct store_row *rows = ctx;
    return strcmp(rows[*(const size_t *)a].ev->token, rows[*(const size_t *)b].ev->token);
}

void store_sort_rows(const struct store_row *rows, size_t n, size_t *order)
{
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    qsort_r(order, n, sizeof(*order), cmp_token, (void *)rows);
}

/* Match a returned token to its row: bsearch the indices sorted at send. */
int store_mark_returned(struct store_row *rows, const size_t *order, size_t n, const char *token)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = strcmp(rows[order[mid]].ev->token, token);
        if (d == 0) {
            rows[order[mid]].inserted = 1;
            return 0;
        }
        if (d < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/*
 * One row's values onto the column literals: the token, each field (a
 * number, or a string quoted as an array element: event_str gives an
 * enum's text), the event id, the partition and the offset.
 */
static void put_row(struct store *s, const struct store_row *row)
{
    const struct event *ev = row->ev;
    const struct evtype *t = s->type;
    size_t f;

    put_quoted(&s->cols[0], ev->token);
    for (f = 0; f < t->nfields; f++) {
        if (field_is_text(&t->fields[f]))
            put_quoted(&s->cols[1 + f], event_str(ev, f));
        else
            put_int(&s->cols[1 + f], ev->v[f]);
    }
    put_quoted(&s->cols[1 + f], ev->event_id);
    put_int(&s->cols[2 + f], row->partition);
    put_int(&s->cols[3 + f], row->offset);
}

int store_insert_send(struct store *s, struct store_row *rows, size_t n, char *errstr,
                      size_t errsize)
{
    const char *params[EVTYPE_MAX_FIELDS + STORE_EXTRA_COLS];
    size_t i, c;

    for (i = 0; i < n; i++)
        rows[i].inserted = 0;
    s->sent = 0;
    if (n == 0) {
        s->failure = STORE_FAIL_NONE;
        return 0;
    }
    if (store_connect(s, errstr, errsize) != 0)
        return -1;

    /* Row indices in token order: the order the rows are sent (and locked) in. */
    if (n > s->order_cap) {
        s->order_cap = n;
        s->order = xrealloc(s->order, n * sizeof(*s->order));
    }
    store_sort_rows(rows, n, s->order);

    for (c = 0; c < s->ncols; c++) {
        s->cols[c].len = 0;
        strbuf_putc(&s->cols[c], '{');
    }
    for (i = 0; i < n; i++) {
        const struct store_row *row = &rows[s->order[i]];
        if (i > 0)
            for (c = 0; c < s->ncols; c++)
                strbuf_putc(&s->cols[c], ',');
        put_row(s, row);
    }
    for (c = 0; c < s->ncols; c++) {
        strbuf_putc(&s->cols[c], '}');
        params[c] = s->cols[c].s;
    }
    if (!PQsendQueryParams(s->conn, s->insert_sql.s, (int)s->ncols, NULL, params, NULL, NULL, 0)) {
        check(s, NULL, "batch insert not sent", errstr, errsize);
        return -1;
    }
    s->sent = n;
    return 0;
}

static int failed(const PGresult *r)
{
    return !r || (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK);
}

int store_insert_wait(struct store *s, struct store_row *rows, size_t n, char *errstr,
                      size_t errsize)
{
    PGresult *r, *extra;
    int rc = -1;

    if (n == 0 || s->sent != n) {
        s->failure = n == 0 ? STORE_FAIL_NONE : STORE_FAIL_TRANSIENT;
        if (n)
            snprintf(errstr, errsize, "batch insert failed: not sent");
        return n == 0 ? 0 : -1;
    }
    s->sent = 0;
    /*
     * Every result, to the end: the INSERT's, then, at Sync, the implicit
     * transaction's COMMIT, whose error (a DEFERRABLE INITIALLY DEFERRED
     * constraint, a serialization failure at commit) is a result of its
     * own, after rows that were never committed. Any error fails the batch.
     */
    r = PQgetResult(s->conn);
    while ((extra = PQgetResult(s->conn)) != NULL) {
        if (!failed(r) && failed(extra)) {
            PQclear(r);
            r = extra;
        } else {
            PQclear(extra);
        }
    }
    if (check(s, r, "batch insert failed", errstr, errsize) != 0)
        goto out;

    for (int t = 0; t < PQntuples(r); t++)
        store_mark_returned(rows, s->order, n, PQgetvalue(r, t, 0));
    failover_remember(s, rows, n);
    rc = 0;
out:
    PQclear(r);
    return rc;
}

int store_insert_ready(struct store *s)
{
    if (!s->sent || !s->conn)
        return 1;
    /* Whatever arrived is read; a broken connection is "ready": the wait reports it. */
    return !PQconsumeInput(s->conn) || !PQisBusy(s->conn);
}

int store_insert_batch(struct store *s, struct store_row *rows, size_t n, char *errstr,
                       size_t errsize)
{
    if (store_insert_send(s, rows, n, errstr, errsize) != 0)
        return -1;
    return store_insert_wait(s, rows, n, errstr, errsize);
}

/* ------------------------------------------------------------ failover */

void store_same_database(struct store *s, const struct store *like)
{
    if (!s || !like)
        return;
    util_strlcpy(s->sysid, like->sysid, sizeof(s->sysid));
    util_strlcpy(s->dbuuid, like->dbuuid, sizeof(s->dbuuid));
}

/* One value of the server's (NULL: not readable); the result to PQclear in *r. */
static const char *value_of(struct store *s, const char *sql, PGresult **r)
{
    *r = PQexec(s->conn, sql);
    if (PQresultStatus(*r) != PGRES_TUPLES_OK || PQntuples(*r) != 1 || PQgetisnull(*r, 0, 0))
        return NULL;
    return PQgetvalue(*r, 0, 0);
}

/*
 * A new session must reach the database store_identity named: the same
 * cluster (a promoted standby has the primary's system identifier) and the
 * same tadak_identity id. A URL that now leads elsewhere (a host that is
 * another cluster, a database made again) would have us write where our
 * Redis prefix and recorded rows do not belong: PERMANENT, nothing more is
 * written. What cannot be read (no privilege) is not compared.
 */
static int same_database(struct store *s, char *errstr, size_t errsize)
{
    PGresult *r1 = NULL, *r2 = NULL;
    const char *sysid = NULL, *uuid = NULL;
    int rc = 0;

    if (!s->sysid[0] && !s->dbuuid[0])
        return 0;
    if (s->sysid[0])
        sysid = value_of(s, "SELECT system_identifier::text FROM pg_control_system()", &r1);
    if (s->dbuuid[0])
        uuid = value_of(s, "SELECT id::text FROM tadak_identity", &r2);
    if ((sysid && strcmp(sysid, s->sysid) != 0) || (uuid && strcmp(uuid, s->dbuuid) != 0)) {
        snprintf(errstr, errsize,
                 "DATABASE_URL now leads to another database (system identifier %s, id %s; "
                 "tadak started on %s, %s): its Redis key prefix and recorded rows belong to "
                 "the first; nothing is written here (restart to start over on this one)",
                 sysid ? sysid : "?", uuid ? uuid : "?", s->sysid[0] ? s->sysid : "?",
                 s->dbuuid[0] ? s->dbuuid : "?");
        s->failure = STORE_FAIL_PERMANENT;
        store_disconnect(s);
        rc = -1;
    }
    PQclear(r1);
    PQclear(r2);
    return rc;
}

/*
 * A batch acknowledged by an asynchronous primary may never have reached
 * the standby that is promoted when that primary dies: the rows are gone,
 * while our done markers and stored offsets say they are recorded. Nothing
 * fails, so tadak looks: the last rows committed are remembered with the
 * timeline of the server that committed them, and a new session on another
 * timeline (a promoted standby: promotion starts one) looks them up. One
 * error line names the loss and the cure; the check is a sample (the last
 * STORE_RECENT rows), not a count of everything lost.
 */

/* The current timeline of a primary, from its WAL file name; 0 when not readable. */
static uint32_t read_timeline(struct store *s)
{
    PGresult *r = PQexec(s->conn, "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)");
    unsigned long tl = 0;
    char *end = NULL;

    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        tl = strtoul(PQgetvalue(r, 0, 0), &end, 16);
    if (!end || *end)
        tl = 0;
    PQclear(r);
    return (uint32_t)tl;
}

/* Rows of a committed batch: the last STORE_RECENT of them join the sample. */
static void failover_remember(struct store *s, const struct store_row *rows, size_t n)
{
    if (!s->session_tl && !(s->session_tl = read_timeline(s)))
        return; /* a timeline we cannot read: nothing to compare with later */
    if (s->recent_tl != s->session_tl)
        s->nrecent = s->recent_next = 0;
    s->recent_tl = s->session_tl;
    for (size_t i = n > STORE_RECENT ? n - STORE_RECENT : 0; i < n; i++) {
        if (strlen(rows[i].ev->token) >= STORE_RECENT_TOKEN)
            continue;
        util_strlcpy(s->recent[s->recent_next], rows[i].ev->token, STORE_RECENT_TOKEN);
        s->recent_next = (s->recent_next + 1) % STORE_RECENT;
        if (s->nrecent < STORE_RECENT)
            s->nrecent++;
    }
}

/* A new session: on another timeline than the sample's, are its rows there? */
static void failover_check(struct store *s)
{
    struct strbuf tokens = {0}, sql = {0};
    const char *params[1];
    PGresult *r = NULL;
    uint32_t tl;
    int64_t found = -1;

    if (!s->nrecent || !(tl = read_timeline(s)) || tl == s->recent_tl)
        return;
    strbuf_putc(&tokens, '{');
    for (size_t i = 0; i < s->nrecent; i++) {
        if (i)
            strbuf_putc(&tokens, ',');
        put_quoted(&tokens, s->recent[i]);
    }
    strbuf_putc(&tokens, '}');
    params[0] = tokens.s;
    PUT_LIT(&sql, "SELECT count(*) FROM ");
    put_ident(&sql, s->type, s->type->table);
    PUT_LIT(&sql, " WHERE token = ANY($1::text[])");
    r = PQexecParams(s->conn, sql.s, 1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1 ||
        util_parse_i64(PQgetvalue(r, 0, 0), &found) != 0)
        goto out; /* not answered: the next session asks again */
    if (found < (int64_t)s->nrecent)
        log_error("rows recorded before the failover are missing on the new primary",
                  "missing=%" PRId64 " timeline_before=%" PRIu32 " timeline_after=%" PRIu32
                  " hint=\"asynchronous replication lost acknowledged votes; use synchronous "
                  "replication\" checked=%zu",
                  (int64_t)s->nrecent - found, s->recent_tl, tl, s->nrecent);
    else
        log_info("postgresql timeline changed, the rows recorded before it are there",
                 "checked=%zu timeline_before=%" PRIu32 " timeline_after=%" PRIu32, s->nrecent,
                 s->recent_tl, tl);
    s->nrecent = s->recent_next = 0;
    s->recent_tl = tl;
out:
    PQclear(r);
    free(tokens.s);
    free(sql.s);
}

/* ------------------------------------------------------------ reads */

/* A statement that may find no table yet (no consumer ran): that is "no votes", not a failure. */
static PGresult *read_query(struct store *s, const char *sql, int nparams,
                            const char *const *params, char *errstr, size_t errsize)
{
    PGresult *r;
    const char *state;

    if (store_connect(s, errstr, errsize) != 0)
        return NULL;
    r = PQexecParams(s->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    if (state && strcmp(state, "42P01") == 0) { /* undefined_table */
        s->failure = STORE_FAIL_NONE;
        return r;
    }
    if (check(s, r, "PostgreSQL", errstr, errsize) != 0) {
        PQclear(r);
        return NULL;
    }
    return r;
}

static int rows_of(const PGresult *r)
{
    return PQresultStatus(r) == PGRES_TUPLES_OK ? PQntuples(r) : 0;
}

int store_status(struct store *s, const struct evtype *t, const char *token, struct store_status *v,
                 char *errstr, size_t errsize)
{
    const char *params[1] = {token};
    struct strbuf sql;
    PGresult *r;

    memset(v, 0, sizeof(*v));
    strbuf_init(&sql, 160);
    strbuf_printf(&sql, "SELECT event_id::text, to_char(created_at AT TIME ZONE 'UTC', "
                        "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM ");
    put_ident(&sql, t ? t : evtype_vote(), t ? t->table : "votes");
    strbuf_printf(&sql, " WHERE token = $1");
    r = read_query(s, sql.s, 1, params, errstr, errsize);
    free(sql.s);
    if (!r)
        return -1;
    if (rows_of(r) == 1) {
        v->found = 1;
        util_strlcpy(v->event_id, PQgetvalue(r, 0, 0), sizeof(v->event_id));
        util_strlcpy(v->created_at, PQgetvalue(r, 0, 1), sizeof(v->created_at));
    }
    PQclear(r);
    return 0;
}

/*
 * One statement: the rows per value of `by` among those the filters keep,
 * ranked, and over all groups (the window runs before the LIMIT) the total
 * of rows and the number of values. $1 the limit, $2... the filters' values,
 * typed by their columns.
 */
static char *counts_sql(const struct evtype *t, int by, const struct store_filter *f, size_t nf)
{
    struct strbuf b;

    strbuf_init(&b, 256);
    strbuf_printf(&b, "SELECT ");
    put_ident(&b, t, t->fields[by].name);
    strbuf_printf(&b, "::text, count(*), sum(count(*)) OVER (), count(*) OVER () FROM ");
    put_ident(&b, t, t->table);
    for (size_t i = 0; i < nf; i++) {
        strbuf_printf(&b, i ? " AND " : " WHERE ");
        put_ident(&b, t, t->fields[f[i].field].name);
        strbuf_printf(&b, " = $%zu", i + 2);
    }
    strbuf_printf(&b, " GROUP BY 1, ");
    put_ident(&b, t, t->fields[by].name);
    strbuf_printf(&b, " ORDER BY 2 DESC, ");
    put_ident(&b, t, t->fields[by].name);
    strbuf_printf(&b, " LIMIT $1");
    return b.s;
}

int store_counts(struct store *s, const struct evtype *t, int by, const struct store_filter *f,
                 size_t nf, size_t limit, struct store_count *out, size_t *n, int64_t *total,
                 int64_t *values, char *errstr, size_t errsize)
{
    const char *params[1 + EVTYPE_MAX_FIELDS];
    char lim[24], *sql;
    PGresult *r;
    int rows;

    *n = 0;
    *total = *values = 0;
    if (nf > EVTYPE_MAX_FIELDS) {
        snprintf(errstr, errsize, "counts: more than %d filters", EVTYPE_MAX_FIELDS);
        return -1;
    }
    snprintf(lim, sizeof(lim), "%zu", limit);
    params[0] = lim;
    for (size_t i = 0; i < nf; i++)
        params[i + 1] = f[i].value;
    sql = counts_sql(t, by, f, nf);
    r = read_query(s, sql, (int)nf + 1, params, errstr, errsize);
    free(sql);
    if (!r)
        return -1;
    rows = rows_of(r);
    for (int i = 0; i < rows && *n < limit; i++) {
        if (PQgetisnull(r, i, 0) || util_parse_i64(PQgetvalue(r, i, 1), &out[*n].rows) != 0)
            continue;
        util_strlcpy(out[*n].value, PQgetvalue(r, i, 0), sizeof(out[*n].value));
        (*n)++;
    }
    if (rows > 0 && (util_parse_i64(PQgetvalue(r, 0, 2), total) != 0 ||
                     util_parse_i64(PQgetvalue(r, 0, 3), values) != 0))
        *total = *values = 0;
    PQclear(r);
    return 0;
}

void store_ballot_params(const struct range *ballot, size_t n, struct strbuf *lo, struct strbuf *hi)
{
    strbuf_putc(lo, '{');
    strbuf_putc(hi, '{');
    for (size_t i = 0; i < n; i++) {
        strbuf_printf(lo, "%s%" PRId64, i ? "," : "", ballot[i].lo);
        strbuf_printf(hi, "%s%" PRId64, i ? "," : "", ballot[i].hi);
    }
    strbuf_putc(lo, '}');
    strbuf_putc(hi, '}');
}

int store_tallies(struct store *s, const struct range *ballot, size_t nballot, size_t limit,
                  struct store_tally *out, size_t *n, struct store_tallies_sum *sum, char *errstr,
                  size_t errsize)
{
    /*
     * One scan: the per-candidate counts, each marked on the ballot or not
     * (no ballot, $2 NULL: all are), then the sums over both kinds and the
     * ranked top of the ballot's. The LEFT JOIN keeps the sums' row when no
     * ballot candidate has a vote. The ballot is two arrays of range bounds.
     */
    static const char sql[] =
        "WITH c AS (SELECT candidate_id, count(*) AS n, $2::bigint[] IS NULL OR EXISTS "
        "(SELECT 1 FROM unnest($2::bigint[], $3::bigint[]) b(lo, hi) "
        "WHERE candidate_id BETWEEN b.lo AND b.hi) AS listed FROM votes GROUP BY candidate_id), "
        "s AS (SELECT coalesce(sum(n) FILTER (WHERE listed), 0) AS total, "
        "count(*) FILTER (WHERE listed) AS candidates, "
        "coalesce(sum(n) FILTER (WHERE NOT listed), 0) AS outside FROM c) "
        "SELECT t.candidate_id, t.n, s.total, s.candidates, s.outside FROM s LEFT JOIN LATERAL "
        "(SELECT candidate_id, n FROM c WHERE listed ORDER BY n DESC, candidate_id LIMIT $1) t "
        "ON true ORDER BY t.n DESC, t.candidate_id";
    struct strbuf lo = {0}, hi = {0};
    char lim[24];
    const char *params[3] = {lim, NULL, NULL};
    PGresult *r;
    int rows, rc = -1;

    *n = 0;
    memset(sum, 0, sizeof(*sum));
    snprintf(lim, sizeof(lim), "%zu", limit);
    if (nballot > 0) {
        store_ballot_params(ballot, nballot, &lo, &hi);
        params[1] = lo.s;
        params[2] = hi.s;
    }
    if (!(r = read_query(s, sql, 3, params, errstr, errsize)))
        goto out;
    rows = rows_of(r);
    for (int i = 0; i < rows && *n < limit; i++) {
        if (PQgetisnull(r, i, 0) || /* no ballot candidate has a vote */
            util_parse_i64(PQgetvalue(r, i, 0), &out[*n].candidate_id) != 0 ||
            util_parse_i64(PQgetvalue(r, i, 1), &out[*n].votes) != 0)
            continue;
        (*n)++;
    }
    if (rows > 0 && (util_parse_i64(PQgetvalue(r, 0, 2), &sum->total) != 0 ||
                     util_parse_i64(PQgetvalue(r, 0, 3), &sum->candidates) != 0 ||
                     util_parse_i64(PQgetvalue(r, 0, 4), &sum->outside) != 0))
        memset(sum, 0, sizeof(*sum));
    PQclear(r);
    rc = 0;
out:
    free(lo.s);
    free(hi.s);
    return rc;
}

int store_connected(const struct store *s)
{
    return s->conn && PQstatus(s->conn) == CONNECTION_OK;
}
