/*
 * store.h - the PostgreSQL side: the schema and the batch insert.
 *
 * A batch of votes goes in as ONE statement (so one transaction):
 *
 *   INSERT INTO votes (token, user_id, candidate_id, event_id, kafka_partition, kafka_offset)
 *   SELECT * FROM unnest($1::text[], ..., $6::bigint[])
 *   ON CONFLICT (token) DO NOTHING RETURNING token
 *
 * with the six columns passed as array parameters (never spliced into SQL).
 * The UNIQUE token is the final word on "one row per vote": a row whose
 * token comes back was inserted, any other was already there. An event
 * type from a file (store_use_type) has the same statement on its own
 * table: token, one quoted column per field, event_id, kafka_partition,
 * kafka_offset, each an array parameter (store_insert_sql).
 *
 * The schema (sql/schema.sql) is compiled in as store_schema() and applied
 * under a transaction-scoped advisory lock, so consumers starting together
 * do not race on CREATE ... IF NOT EXISTS. A unit test checks the copy
 * against sql/schema.sql byte for byte. Another type's table comes from
 * store_type_schema under the same lock.
 *
 * The connection is opened lazily and re-opened after it breaks, so a
 * PostgreSQL outage is a failed call (retry later), not a dead handle.
 * Every statement runs under statement_timeout, so a lock wait or a stuck
 * server is a failed call too, never a consumer evicted from its group.
 *
 * A failed call says whether retrying can help (store_last_failure): by
 * SQLSTATE, connection errors and a read-only server (after a failover)
 * reset the connection and are TRANSIENT, as is everything else that may
 * heal by itself; schema errors (class 42: missing table or column, no
 * UNIQUE constraint for ON CONFLICT, no privilege; a DEFERRABLE UNIQUE on
 * token; a NOT NULL column tadak does not fill) are PERMANENT; a row whose
 * data the table refuses (CHECK, foreign key, a trigger's RAISE, class 22)
 * is ROW: the caller isolates it (store_last_sqlstate, store_last_message).
 * Every result of a batch is read, the COMMIT's too: a constraint checked
 * at COMMIT fails the batch like one checked at INSERT.
 *
 * Rows are sent in token order, whatever order the caller has them in, so
 * two consumers inserting overlapping tokens take their row locks in the
 * same order and cannot deadlock.
 *
 * Failover: DATABASE_URL may list several hosts (libpq's multi-host URL,
 * target_session_attrs=read-write), and every new session goes to whichever
 * takes writes. Each new session is held to the database store_identity
 * named (store_same_database), and after a timeline change (a promoted
 * standby) the last rows committed are looked up: one error line when an
 * asynchronous standby lost them.
 *
 *   s = store_new(url, statement_timeout_ms);
 *   store_use_type(s, type);               whose table (the vote's until set)
 *   store_migrate(s, set, err, sizeof err);   apply the schema: every type's table
 *   store_prepare(s, err, sizeof err);     at start: apply it if the table is missing, else verify
 *   store_insert_batch(s, rows, n, err, sizeof err);  rows[i].inserted set
 *   store_insert_send(...) ... store_insert_wait(...)  the same, overlapped
 *   store_insert_ready(s)                1 if store_insert_wait would not block
 *   store_last_failure(s)                TRANSIENT or PERMANENT after a -1
 *   store_ping(s, err, sizeof err)       SELECT 1: is PostgreSQL back?
 *   store_identity(s, id, sizeof id, err, sizeof err)   which database this is
 *   store_new_identity(s, id, sizeof id, err, sizeof err)   re-roll it (a copy)
 *
 * The producer's status routes read through the same module:
 *
 *   store_status(s, type, token, &st, err, sizeof err)  the row of one token, if any
 *   store_tallies(s, ballot, nballot, limit, out, &n, &sum, err, sizeof err)
 *                                  the top `limit` candidates by votes (ties:
 *                                  lower id first), the total of votes and
 *                                  the number of candidates, in one statement;
 *                                  with a ballot (ranges of ids, nballot > 0)
 *                                  all three count only its candidates, and
 *                                  sum.outside the votes for any other
 *   store_connected(s)             1 while a session is open
 *
 * Before any consumer created the table, both read as "no votes".
 */
#ifndef TADAK_STORE_H
#define TADAK_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "evtype.h"
#include "ranges.h"

struct event;

struct store_row {
    const struct event *ev; /* of the store's type (store_use_type); tokens unique in a batch */
    int32_t partition;
    int64_t offset;
    int inserted; /* out: 1 when this call inserted the row, 0 when the token existed */
};

enum store_failure {
    STORE_FAIL_NONE,      /* the last call succeeded */
    STORE_FAIL_TRANSIENT, /* retry later: outage, timeout, read-only server, ... */
    STORE_FAIL_PERMANENT, /* retrying cannot help: the schema does not fit */
    STORE_FAIL_ROW,       /* the data of a row was refused (CHECK, foreign key, a trigger):
                             the other rows would go in without it */
};

struct store;

/* statement_timeout_ms 0: no statement timeout. */
struct store *store_new(const char *url, int64_t statement_timeout_ms);
void store_free(struct store *s);
const char *store_schema(void);
/*
 * The type whose table store_prepare, store_verify and the inserts use: the
 * vote until set. t must outlive the store.
 */
void store_use_type(struct store *s, const struct evtype *t);
/*
 * Create every type's table (set NULL: the vote's only): the vote's from
 * store_schema(), another's from store_type_schema(); a file type's table
 * that exists is verified (the vote's is checked at the consumer's start,
 * as before), never altered, and one whose columns disagree with its type
 * (missing, or another type than bigint/text) fails PERMANENT naming the
 * table, the column, its type and the type's, and the fix; nothing of the
 * migration is committed then. One transaction, under the advisory lock.
 */
int store_migrate(struct store *s, const struct evtypes *set, char *errstr, size_t errsize);
/*
 * The DDL of type t's table and its counts indexes, appended to out (quoted
 * identifiers; the vote's: the votes part of sql/schema.sql). An index is
 * "<table>_<field>_idx", its table part cut (and hashed) to keep the name
 * within PostgreSQL's 63 bytes.
 */
struct strbuf;
void store_type_schema(const struct evtype *t, struct strbuf *out);
/*
 * The consumer's start: apply the schema only when the type's table (votes
 * for the vote) is missing: the vote's is sql/schema.sql, another type's
 * store_type_schema and the identity table. When it exists, store_verify
 * checks it from the catalogs (a type from a file: also that each field's
 * column is bigint or text as the field needs), without DDL and
 * without a lock on it (CREATE INDEX IF NOT EXISTS on every start took a
 * SHARE lock, so a migration holding votes made every start fail). -1 with
 * store_last_failure: TRANSIENT (unreachable, a timeout: try again) or
 * PERMANENT (password refused, no such database or role, a table without
 * the columns, without a UNIQUE (token) ON CONFLICT can use, or with a
 * DEFERRABLE one), with the table and the fix in errstr.
 */
int store_prepare(struct store *s, char *errstr, size_t errsize);
int store_verify(struct store *s, int *exists, char *errstr, size_t errsize);
int store_insert_batch(struct store *s, struct store_row *rows, size_t n, char *errstr,
                       size_t errsize);
/*
 * The same in two halves, so the caller works while PostgreSQL inserts:
 * send returns once the statement is written; wait blocks for its result
 * and fills rows[i].inserted. rows (and the tokens they point to) must stay
 * as they are in between, and no other call may use the store meanwhile.
 */
int store_insert_send(struct store *s, struct store_row *rows, size_t n, char *errstr,
                      size_t errsize);
int store_insert_ready(struct store *s);
int store_insert_wait(struct store *s, struct store_row *rows, size_t n, char *errstr,
                      size_t errsize);
enum store_failure store_last_failure(const struct store *s);
/* Of the last failure: its SQLSTATE ("" without a server answer) and PostgreSQL's message. */
const char *store_last_sqlstate(const struct store *s);
const char *store_last_message(const struct store *s);
int store_ping(struct store *s, char *errstr, size_t errsize);

/*
 * Which database this is, for the Redis namespace (gate.h):
 * "<system_identifier>/<database name>#<id>", the cluster's id from
 * pg_control_system() (host:port when that is not readable), the name, and
 * the random id in table tadak_identity (made by the schema, or here when
 * missing; without it, when this role may neither read nor create it, the
 * "#<id>" part is left out and a warning logged). The name tells apart
 * databases cloned with CREATE DATABASE ... TEMPLATE, the id a database
 * dropped and created again under its name. A physical copy (base backup,
 * promoted replica, snapshot) copies all three: store_new_identity, run on
 * the copy (`tadak-consumer new-identity`), gives it an id of its own and
 * returns the new identity.
 */
int store_identity(struct store *s, char *out, size_t size, char *errstr, size_t errsize);
int store_new_identity(struct store *s, char *out, size_t size, char *errstr, size_t errsize);
/*
 * Every new session (after a failover: another server) must reach the
 * database store_identity named; one that leads elsewhere fails PERMANENT
 * and writes nothing. store_same_database gives a second store of the same
 * URL the identity that `like` read, so its sessions are held to it too.
 */
void store_same_database(struct store *s, const struct store *like);

struct store_status {
    int found;
    char event_id[40];   /* the row's event id (a UUID) */
    char created_at[40]; /* ISO 8601 UTC, microseconds */
};

struct store_tally {
    int64_t candidate_id;
    int64_t votes;
};

struct store_tallies_sum {
    int64_t total;      /* votes for the (ballot's) candidates */
    int64_t candidates; /* how many of them have a vote */
    int64_t outside;    /* votes for candidates not on the ballot; 0 without one */
};

int store_status(struct store *s, const struct evtype *t, const char *token,
                 struct store_status *st, char *errstr, size_t errsize);
/* out holds at least limit entries; *n of them are filled. nballot == 0: no ballot. */
int store_tallies(struct store *s, const struct range *ballot, size_t nballot, size_t limit,
                  struct store_tally *out, size_t *n, struct store_tallies_sum *sum, char *errstr,
                  size_t errsize);
int store_connected(const struct store *s);

/*
 * GET /events/{type}/counts: rows of type t per value of field `by`, the
 * top `limit` (ties: lower value first), among the rows whose fields equal
 * the filters (values as text, already checked against their fields by the
 * caller; sent as parameters), with the total of those rows and the number
 * of distinct values. One statement.
 */
struct store_filter {
    int field;         /* index in t->fields */
    const char *value; /* its value as text ("7", "yes") */
};
struct store_count {
    char value[EVTYPE_STRING_MAX + 1]; /* as text; the caller knows the field's kind */
    int64_t rows;
};
int store_counts(struct store *s, const struct evtype *t, int by, const struct store_filter *f,
                 size_t nf, size_t limit, struct store_count *out, size_t *n, int64_t *total,
                 int64_t *values, char *errstr, size_t errsize);

/*
 * The two halves of matching RETURNING to rows, exposed for the tests:
 * order[] (n entries) gets the row indices in token order; a returned
 * token then marks its row inserted (0), or matches none (-1).
 */
void store_sort_rows(const struct store_row *rows, size_t n, size_t *order);

/*
 * The batch INSERT of type t, appended to out, exposed for the tests: the
 * vote's is the statement at the top of this file, byte for byte; another
 * type's names its table and fields quoted, one array parameter a column
 * (bigint[] for id, int and enum-of-integers fields, text[] for strings).
 */
void store_insert_sql(const struct evtype *t, struct strbuf *out);

/*
 * The ballot as the tallies query takes it, exposed for the tests: two
 * PostgreSQL array literals, the ranges' lower ends into lo ("{1,7}") and
 * their upper ends into hi ("{4,7}"), appended to the buffers.
 */
struct strbuf;
void store_ballot_params(const struct range *ballot, size_t n, struct strbuf *lo,
                         struct strbuf *hi);
int store_mark_returned(struct store_row *rows, const size_t *order, size_t n, const char *token);

/* The failure class of a SQLSTATE (five characters, or NULL: no server answer). */
enum store_failure store_classify_sqlstate(const char *sqlstate, int *reconnect);

#endif
