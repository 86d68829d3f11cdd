/*
 * test_store.c - the schema compiled into the consumer is sql/schema.sql,
 * byte for byte (the SQL file is what people read and review), and each
 * SQLSTATE class means what the consumer does about it: wait, reconnect
 * or stop. A ballot reaches the tallies query as two array literals. Each
 * type's INSERT and DDL come from the type (the vote's exactly today's),
 * identifiers of a types file quoted.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "event.h"
#include "store.h"
#include "strbuf.h"
#include "testtypes.h"
#include "util.h"

/* tests/run starts unit tests in tests/unit; make may start them at the root. */
static FILE *open_schema(void)
{
    static const char *const paths[] = {"../../sql/schema.sql", "sql/schema.sql"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        FILE *f = fopen(paths[i], "rb");
        if (f)
            return f;
    }
    return NULL;
}

static void test_embedded_schema_matches_file(void **state)
{
    static char file[64 * 1024];
    FILE *f = open_schema();
    size_t n;

    (void)state;
    assert_non_null(f);
    n = fread(file, 1, sizeof(file) - 1, f);
    fclose(f);
    file[n] = '\0';
    assert_true(n > 0);
    assert_string_equal(store_schema(), file);
}

static void test_schema_is_idempotent_and_unique(void **state)
{
    const char *s = store_schema();

    (void)state;
    assert_non_null(strstr(s, "CREATE TABLE IF NOT EXISTS votes"));
    assert_non_null(strstr(s, "token           text        NOT NULL UNIQUE"));
    assert_null(strstr(s, "CREATE TABLE votes"));
    /* The database's id: one row, made once, kept by every later run. */
    assert_non_null(strstr(s, "CREATE TABLE IF NOT EXISTS tadak_identity"));
    assert_non_null(strstr(s, "INSERT INTO tadak_identity DEFAULT VALUES ON CONFLICT DO NOTHING"));
}

static void test_sqlstate_classes(void **state)
{
    static const struct {
        const char *sqlstate;
        enum store_failure failure;
        int reconnect;
    } cases[] = {
        {NULL, STORE_FAIL_TRANSIENT, 1},    /* no answer: connection failed or lost */
        {"08006", STORE_FAIL_TRANSIENT, 1}, /* connection_failure */
        {"08001", STORE_FAIL_TRANSIENT, 1}, /* sqlclient_unable_to_establish_sqlconnection */
        {"08P01", STORE_FAIL_TRANSIENT, 1}, /* protocol_violation: still class 08 */
        {"57P01", STORE_FAIL_TRANSIENT, 1}, /* admin_shutdown, pg_terminate_backend */
        {"57P02", STORE_FAIL_TRANSIENT, 1}, /* crash_shutdown */
        {"57P03", STORE_FAIL_TRANSIENT, 1}, /* cannot_connect_now */
        {"25006", STORE_FAIL_TRANSIENT, 1}, /* read_only_sql_transaction: a standby */
        {"42P01", STORE_FAIL_PERMANENT, 0}, /* undefined_table */
        {"42703", STORE_FAIL_PERMANENT, 0}, /* undefined_column */
        {"42P10", STORE_FAIL_PERMANENT, 0}, /* no UNIQUE matching ON CONFLICT */
        {"42501", STORE_FAIL_PERMANENT, 0}, /* insufficient_privilege */
        {"57014", STORE_FAIL_TRANSIENT, 0}, /* statement timeout: same session, later */
        {"57P04", STORE_FAIL_TRANSIENT, 0}, /* only 57P01..57P03 mean a new session */
        {"25P02", STORE_FAIL_TRANSIENT, 0}, /* only 25006 of class 25 reconnects */
        {"40001", STORE_FAIL_TRANSIENT, 0}, /* serialization_failure */
        {"40P01", STORE_FAIL_TRANSIENT, 0}, /* deadlock_detected */
        {"53100", STORE_FAIL_TRANSIENT, 0}, /* disk_full */
        {"53300", STORE_FAIL_TRANSIENT, 0}, /* too_many_connections */
        {"23505", STORE_FAIL_ROW, 0},       /* unique_violation of another UNIQUE */
        {"23514", STORE_FAIL_ROW, 0},       /* check_violation */
        {"23503", STORE_FAIL_ROW, 0},       /* foreign_key_violation */
        {"23P01", STORE_FAIL_ROW, 0},       /* exclusion_violation */
        {"22P02", STORE_FAIL_ROW, 0},       /* invalid_text_representation */
        {"22003", STORE_FAIL_ROW, 0},       /* numeric_value_out_of_range */
        {"P0001", STORE_FAIL_ROW, 0},       /* raise_exception in a trigger */
        {"P0002", STORE_FAIL_TRANSIENT, 0}, /* only RAISE's own code is a row's */
        {"23502", STORE_FAIL_PERMANENT, 0}, /* not_null: a column tadak does not fill */
        {"55000", STORE_FAIL_PERMANENT, 0}, /* ON CONFLICT on a DEFERRABLE unique */
        {"55P03", STORE_FAIL_TRANSIENT, 0}, /* lock_not_available: not 55000 */
        {"0A000", STORE_FAIL_PERMANENT, 0}, /* feature_not_supported */
        {"XX000", STORE_FAIL_TRANSIENT, 0}, /* internal_error */
        {"04200", STORE_FAIL_TRANSIENT, 0}, /* "42" in the wrong place is not class 42 */
        {"00801", STORE_FAIL_TRANSIENT, 0}, /* nor is "08" */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int reconnect = -1;
        enum store_failure got = store_classify_sqlstate(cases[i].sqlstate, &reconnect);
        if (got != cases[i].failure || reconnect != cases[i].reconnect)
            fail_msg("SQLSTATE %s: got failure %d reconnect %d, want %d %d",
                     cases[i].sqlstate ? cases[i].sqlstate : "(null)", (int)got, reconnect,
                     (int)cases[i].failure, cases[i].reconnect);
    }
}

/* Without a server every call fails TRANSIENT (retry later), never PERMANENT. */
static void test_unreachable_server_is_transient(void **state)
{
    struct store *s = store_new("postgresql://127.0.0.1:1/none?connect_timeout=2", 1000);
    struct event ev;
    struct store_row row = {.ev = &ev};
    char err[256], id[128];

    (void)state;
    event_vote(&ev, 1, 2);
    util_strlcpy(ev.event_id, "00000000-0000-0000-0000-000000000000", sizeof(ev.event_id));
    assert_int_equal(store_insert_batch(s, &row, 1, err, sizeof(err)), -1);
    assert_int_equal(store_last_failure(s), STORE_FAIL_TRANSIENT);
    assert_non_null(strstr(err, "cannot connect to PostgreSQL"));
    assert_null(strchr(err, '\n'));
    assert_int_equal(store_ping(s, err, sizeof(err)), -1);
    assert_int_equal(store_last_failure(s), STORE_FAIL_TRANSIENT);
    assert_int_equal(store_identity(s, id, sizeof(id), err, sizeof(err)), -1);
    assert_int_equal(store_insert_batch(s, &row, 0, err, sizeof(err)), 0);
    assert_int_equal(store_last_failure(s), STORE_FAIL_NONE);
    store_free(s);
}

/* RETURNING hands back tokens in no particular order: each must mark exactly its own row. */
static void test_returned_tokens_mark_their_rows(void **state)
{
    static const int64_t uc[][2] = {{2, 1}, {1, 10}, {1, 1}, {10, 1}, {1, 2}};
    struct event evs[5];
    struct store_row rows[5];
    size_t n = sizeof(rows) / sizeof(rows[0]), order[sizeof(rows) / sizeof(rows[0])];
    /* Byte order (strcmp), the same in every consumer: '0' < ':', so 10:1 < 1:1. */
    static const size_t sorted[] = {3, 2, 1, 4, 0}; /* 10:1 1:1 1:10 1:2 2:1 */

    (void)state;
    for (size_t i = 0; i < n; i++) {
        event_vote(&evs[i], uc[i][0], uc[i][1]);
        rows[i] = (struct store_row){.ev = &evs[i]};
    }
    store_sort_rows(rows, n, order);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(order[i], sorted[i]);
    assert_int_equal(store_mark_returned(rows, order, n, "vote_lock:1:10"), 0);
    assert_int_equal(store_mark_returned(rows, order, n, "vote_lock:2:1"), 0);
    assert_int_equal(store_mark_returned(rows, order, n, "vote_lock:1:"), -1); /* a prefix */
    assert_int_equal(store_mark_returned(rows, order, n, "vote_lock:3:1"), -1);
    assert_int_equal(rows[0].inserted, 1);
    assert_int_equal(rows[1].inserted, 1);
    assert_int_equal(rows[2].inserted, 0);
    assert_int_equal(rows[3].inserted, 0);
    assert_int_equal(rows[4].inserted, 0);
    /* Every row of a batch marks: the first, the last and the middle of the order. */
    for (size_t i = 0; i < n; i++)
        assert_int_equal(store_mark_returned(rows, order, n, rows[i].ev->token), 0);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(rows[i].inserted, 1);
}

/* The ranges' ends, in order, as PostgreSQL bigint[] literals; the extremes print in full. */
static void test_ballot_params(void **state)
{
    static const struct range one[] = {{7, 7}};
    static const struct range many[] = {{1, 4}, {7, 7}, {100, INT64_MAX}};
    struct strbuf lo = {0}, hi = {0};

    (void)state;
    store_ballot_params(one, 1, &lo, &hi);
    assert_string_equal(lo.s, "{7}");
    assert_string_equal(hi.s, "{7}");
    lo.len = hi.len = 0;
    store_ballot_params(many, 3, &lo, &hi);
    assert_string_equal(lo.s, "{1,7,100}");
    assert_string_equal(hi.s, "{4,7,9223372036854775807}");
    free(lo.s);
    free(hi.s);
}

/* The vote's INSERT, as tadak has always sent it (monitoring may match on it). */
static const char vote_insert[] =
    "INSERT INTO votes (token, user_id, candidate_id, event_id, kafka_partition, kafka_offset) "
    "SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::uuid[], $5::int[], "
    "$6::bigint[]) ON CONFLICT (token) DO NOTHING RETURNING token";

static char yes[] = "yes", no[] = "no", maybe[] = "maybe";
static char *rsvp_answers[] = {yes, no, maybe};
static const int64_t rsvp_seats[] = {1, 2, 4};

/* Every kind of field: strings and enums of strings are text, the rest bigint. */
static const struct evtype rsvp = {
    .name = "rsvp",
    .token_prefix = "rsvp",
    .topic = "rsvps",
    .table = "rsvps",
    .nfields = 5,
    .fields =
        {{.name = "event_id_", .kind = EVF_ID, .min = 1, .max = INT64_MAX},
         {.name = "user_id", .kind = EVF_ID, .min = 1, .max = INT64_MAX},
         {.name = "answer", .kind = EVF_ENUM_STRING, .nenum = 3, .enum_str = rsvp_answers},
         {.name = "seats", .kind = EVF_ENUM_INT, .nenum = 3, .enum_int = (int64_t *)rsvp_seats},
         {.name = "note", .kind = EVF_STRING, .max_length = 64, .text_off = 0}},
    .nkey = 2,
    .key = {0, 1},
    .identity = -1,
    .ballot_field = -1,
    .text_size = 65,
};

static void test_vote_insert_is_todays(void **state)
{
    struct strbuf b = {0};

    (void)state;
    store_insert_sql(evtype_vote(), &b);
    assert_string_equal(b.s, vote_insert);
    free(b.s);
}

static void test_type_insert_from_its_fields(void **state)
{
    struct evtype poll_answer = testtypes_poll_answer();
    struct strbuf b = {0};

    (void)state;
    store_insert_sql(&poll_answer, &b);
    assert_string_equal(b.s, "INSERT INTO \"poll_answers\" (token, \"poll_id\", \"user_id\", "
                             "\"option_id\", event_id, kafka_partition, kafka_offset) SELECT * "
                             "FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], "
                             "$5::uuid[], $6::int[], $7::bigint[]) ON CONFLICT (token) DO "
                             "NOTHING RETURNING token");
    b.len = 0;
    store_insert_sql(&rsvp, &b);
    assert_string_equal(b.s, "INSERT INTO \"rsvps\" (token, \"event_id_\", \"user_id\", "
                             "\"answer\", \"seats\", \"note\", event_id, kafka_partition, "
                             "kafka_offset) SELECT * FROM unnest($1::text[], $2::bigint[], "
                             "$3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::uuid[], "
                             "$8::int[], $9::bigint[]) ON CONFLICT (token) DO NOTHING RETURNING "
                             "token");
    free(b.s);
}

static void test_type_schema(void **state)
{
    struct evtype poll_answer = testtypes_poll_answer();
    struct strbuf b = {0};

    (void)state;
    store_type_schema(&poll_answer, &b);
    assert_string_equal(b.s, "CREATE TABLE IF NOT EXISTS \"poll_answers\" (\n"
                             "    id bigserial PRIMARY KEY,\n"
                             "    token text NOT NULL UNIQUE,\n"
                             "    \"poll_id\" bigint NOT NULL,\n"
                             "    \"user_id\" bigint NOT NULL,\n"
                             "    \"option_id\" bigint NOT NULL,\n"
                             "    event_id uuid NOT NULL,\n"
                             "    kafka_partition int,\n"
                             "    kafka_offset bigint,\n"
                             "    created_at timestamptz NOT NULL DEFAULT now()\n"
                             ");\n"
                             "CREATE INDEX IF NOT EXISTS \"poll_answers_option_id_idx\" ON "
                             "\"poll_answers\" (\"option_id\");\n"
                             "CREATE INDEX IF NOT EXISTS \"poll_answers_poll_id_idx\" ON "
                             "\"poll_answers\" (\"poll_id\");\n\n");
    b.len = 0;
    store_type_schema(&rsvp, &b);
    assert_non_null(strstr(b.s, "    \"answer\" text NOT NULL,\n"
                                "    \"seats\" bigint NOT NULL,\n"
                                "    \"note\" text NOT NULL,\n"));
    assert_null(strstr(b.s, "CREATE INDEX")); /* no counts field, no index */
    /* The vote's is the first part of sql/schema.sql, the identity table being the rest. */
    b.len = 0;
    store_type_schema(evtype_vote(), &b);
    assert_true(b.len > 0);
    assert_memory_equal(b.s, store_schema(), b.len);
    assert_non_null(strstr(b.s, "CREATE INDEX IF NOT EXISTS votes_candidate_idx ON votes"));
    assert_null(strstr(b.s, "tadak_identity ("));
    free(b.s);
}

/* An index name longer than PostgreSQL keeps (63) is cut in its table part, hashed apart. */
static void test_index_names_fit(void **state)
{
    struct evtype a = testtypes_poll_answer(), b = a;
    struct strbuf da = {0}, db = {0};
    const char *na, *nb, *end;

    (void)state;
    memset(a.table, 'a', EVTYPE_TABLE_MAX);
    a.table[EVTYPE_TABLE_MAX] = '\0';
    b = a;
    b.table[EVTYPE_TABLE_MAX - 1] = 'b'; /* the same first 62 bytes */
    a.ncounts = b.ncounts = 1;
    store_type_schema(&a, &da);
    store_type_schema(&b, &db);
    assert_non_null(na = strstr(da.s, "CREATE INDEX IF NOT EXISTS \""));
    assert_non_null(nb = strstr(db.s, "CREATE INDEX IF NOT EXISTS \""));
    na += strlen("CREATE INDEX IF NOT EXISTS \"");
    nb += strlen("CREATE INDEX IF NOT EXISTS \"");
    end = strchr(na, '"');
    assert_int_equal(end - na, EVTYPE_TABLE_MAX);
    assert_memory_equal(end - strlen("_option_id_idx"), "_option_id_idx", strlen("_option_id_idx"));
    assert_int_equal(strchr(nb, '"') - nb, EVTYPE_TABLE_MAX);
    assert_memory_not_equal(na, nb, EVTYPE_TABLE_MAX);
    free(da.s);
    free(db.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ballot_params),
        cmocka_unit_test(test_embedded_schema_matches_file),
        cmocka_unit_test(test_index_names_fit),
        cmocka_unit_test(test_returned_tokens_mark_their_rows),
        cmocka_unit_test(test_schema_is_idempotent_and_unique),
        cmocka_unit_test(test_sqlstate_classes),
        cmocka_unit_test(test_type_insert_from_its_fields),
        cmocka_unit_test(test_type_schema),
        cmocka_unit_test(test_unreachable_server_is_transient),
        cmocka_unit_test(test_vote_insert_is_todays),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
