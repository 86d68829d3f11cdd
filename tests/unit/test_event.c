/*
 * test_event.c - the event codec: what is a vote (or an event of a type
 * from a file), what is not, and why.
 *
 * Includes the whole JSONTestSuite parsing corpus: none of its files is a
 * valid vote, so each must be rejected with a named error and a detail.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "corpus.h"
#include "event.h"
#include "util.h"

struct case_row {
    const char *json;
    enum event_err want;
};

/* Each row is rejected with its error name, a known one, and a detail. */
/* An empty vote to parse into. */
static struct event *vote_ev(struct event *e)
{
    event_init(e, evtype_vote(), NULL);
    return e;
}

static void expect_rejections(const struct case_row *rows, size_t n)
{
    struct event v;
    enum event_err err;
    char detail[256];

    for (size_t i = 0; i < n; i++) {
        int rc = event_parse(vote_ev(&v), rows[i].json, strlen(rows[i].json), 0, &err, detail,
                             sizeof(detail));
        if (rc != -1 || err != rows[i].want)
            fail_msg("row %zu %s: got rc=%d err=%s want %s", i, rows[i].json, rc,
                     event_err_name(err), event_err_name(rows[i].want));
        if (detail[0] == '\0' || strcmp(event_err_name(err), "unknown") == 0)
            fail_msg("row %zu %s: no detail or an unknown name", i, rows[i].json);
    }
}

static void test_valid_votes(void **state)
{
    static const char *const ok[] = {
        "{\"user_id\":100,\"candidate_id\":1}",
        " {\"candidate_id\":1, \"user_id\":100, \"extra\":[1,2,{}]}\n",
        "{\"user_id\":9223372036854775807,\"candidate_id\":1}",
        "{\"user_id\":100,\"candidate_id\":1,\"token\":\"vote_lock:100:1\","
        "\"event_id\":\"0b7e5d1c-3c1a-4a57-9a6e-2f3c4d5e6f70\",\"ts\":1764410000000}",
    };
    struct event v;
    enum event_err err;
    char detail[256];

    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(ok); i++) {
        assert_int_equal(
            event_parse(vote_ev(&v), ok[i], strlen(ok[i]), 0, &err, detail, sizeof(detail)), 0);
        assert_int_equal(err, EVENT_OK);
    }
    assert_string_equal(v.token, "vote_lock:100:1");
    assert_string_equal(v.event_id, "0b7e5d1c-3c1a-4a57-9a6e-2f3c4d5e6f70");
    assert_int_equal(v.ts_ms, 1764410000000LL);
}

static void test_rejections_are_named(void **state)
{
    static const struct case_row rows[] = {
        {"", EVENT_ERR_EMPTY},
        {"{", EVENT_ERR_INVALID_JSON},
        {"{\"user_id\":1,\"candidate_id\":2} x", EVENT_ERR_INVALID_JSON},
        {"{\"user_id\":1,\"candidate_id\":2}{}", EVENT_ERR_INVALID_JSON},
        {"[1,2]", EVENT_ERR_NOT_OBJECT},
        {"42", EVENT_ERR_NOT_OBJECT},
        {"{\"user_id\":1}", EVENT_ERR_MISSING},
        {"{\"candidate_id\":1}", EVENT_ERR_MISSING},
        {"{\"user_id\":null,\"candidate_id\":1}", EVENT_ERR_MISSING},
        {"{\"user_id\":\"1\",\"candidate_id\":1}", EVENT_ERR_TYPE},
        {"{\"user_id\":1.5,\"candidate_id\":1}", EVENT_ERR_TYPE},
        {"{\"user_id\":1e3,\"candidate_id\":1}", EVENT_ERR_TYPE},
        {"{\"user_id\":true,\"candidate_id\":1}", EVENT_ERR_TYPE},
        {"{\"user_id\":0,\"candidate_id\":1}", EVENT_ERR_RANGE},
        {"{\"user_id\":-5,\"candidate_id\":1}", EVENT_ERR_RANGE},
        {"{\"user_id\":9223372036854775808,\"candidate_id\":1}", EVENT_ERR_RANGE},
        {"{\"user_id\":99999999999999999999999,\"candidate_id\":1}", EVENT_ERR_RANGE},
        {"{\"user_id\":1,\"candidate_id\":2,\"event_id\":\"nope\"}", EVENT_ERR_EVENT_ID},
        {"{\"user_id\":1,\"candidate_id\":2,\"event_id\":7}", EVENT_ERR_EVENT_ID},
        {"{\"user_id\":1,\"candidate_id\":2,\"token\":\"vote_lock:1:3\"}", EVENT_ERR_TOKEN},
        {"{\"user_id\":1,\"candidate_id\":2,\"x\":\"\xff\"}", EVENT_ERR_INVALID_JSON},
        {"{'user_id':1,'candidate_id':2}", EVENT_ERR_INVALID_JSON},
        /* Strict votes: what other JSON readers would see differently. */
        {"{\"user_id\":1,\"candidate_id\":2,\"user_id\":3}", EVENT_ERR_DUP_KEY},
        {"{\"user_id\":1,\"candidate_id\":2,\"user\\u005fid\":1}", EVENT_ERR_DUP_KEY},
        {"{\"user_id\":1,\"candidate_id\":2,\"x\":{\"a\":1,\"b\":[{\"a\":1,\"a\":1}]}}",
         EVENT_ERR_DUP_KEY},
        {"{\"user_id\":1,\"candidate_id\":2,\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}",
         EVENT_ERR_DUP_KEY},
        {"{\"user_id\":1,\"candidate_id\":2,\"x\":\"a\\u0000b\"}", EVENT_ERR_NUL},
        {"{\"user_id\":1,\"candidate_id\":2,\"k\\u0000\":1}", EVENT_ERR_NUL},
        {"{\"user_id\\u0000x\":5,\"user_id\":1,\"candidate_id\":2}", EVENT_ERR_NUL},
        {"{\"user_id\":1,\"candidate_id\":2,\"x\":[\"\\u0000\"]}", EVENT_ERR_NUL},
        {"{\"user_id\":1,\"candidate_id\":2,\"ts\":-1}", EVENT_ERR_RANGE},
        {"{\"user_id\":1,\"candidate_id\":2,\"ts\":9223372036854775808}", EVENT_ERR_RANGE},
        {"{\"user_id\":1,\"candidate_id\":2,\"ts\":1.5}", EVENT_ERR_TYPE},
        {"{\"user_id\":1,\"candidate_id\":2,\"ts\":1e12}", EVENT_ERR_TYPE},
        {"{\"user_id\":1,\"candidate_id\":2,\"ts\":\"1764410000000\"}", EVENT_ERR_TYPE},
        {"{\"user_id\":1,\"candidate_id\":2,\"ts\":null}", EVENT_ERR_TYPE},
        {"{\"user_id\":1,\"candidate_id\":2,\"event_id\":"
         "\"0b7e5d1c-3c1a-4a57-9a6e-2f3c4d5e6f70\\u0000junk\"}",
         EVENT_ERR_EVENT_ID},
        {"{\"user_id\":1,\"candidate_id\":2,\"token\":\"vote_lock:1:2\\u0000x\"}", EVENT_ERR_TOKEN},
    };

    (void)state;
    expect_rejections(rows, UTIL_ARRAY_LEN(rows));
}

/* The strict rules only turn acceptances into rejections: what was already
 * rejected keeps its name (dead-letter dashboards count by it). */
static void test_strict_rules_keep_older_names(void **state)
{
    static const struct case_row rows[] = {
        {"{\"a\":\"b\",\"a\":\"c\"}", EVENT_ERR_MISSING},
        {"{\"foo\\u0000bar\": 42}", EVENT_ERR_MISSING},
        {"[\"\\u0000\"]", EVENT_ERR_NOT_OBJECT},
        {"{\"user_id\":1,\"user_id\":\"x\",\"candidate_id\":2}", EVENT_ERR_TYPE},
    };
    static const char *const ok[] = {
        "{\"user_id\":1,\"candidate_id\":2,\"a\":1,\"b\":{\"a\":1},\"c\":[{\"a\":1},{\"a\":1}]}",
        "{\"user_id\":1,\"candidate_id\":2,\"ts\":0,\"ab\":1,\"a\":1,\"a\\u0000\\u0001\":0}",
    };
    struct event v;
    enum event_err err;
    char detail[256];

    (void)state;
    expect_rejections(rows, UTIL_ARRAY_LEN(rows));
    assert_string_equal(event_err_name(EVENT_ERR_DUP_KEY), "duplicate_key");
    assert_string_equal(event_err_name(EVENT_ERR_NUL), "nul_in_string");
    assert_int_equal(
        event_parse(vote_ev(&v), ok[0], strlen(ok[0]), 0, &err, detail, sizeof(detail)), 0);
    /* ok[1] holds a \u0000: rejected, but no duplicate ("a" and "a\0\1" differ). */
    assert_int_equal(
        event_parse(vote_ev(&v), ok[1], strlen(ok[1]), 0, &err, detail, sizeof(detail)), -1);
    assert_int_equal(err, EVENT_ERR_NUL);
}

static void test_nul_and_oversize(void **state)
{
    const char withnul[] = "{\"user_id\":1,\"candidate_id\":2}\0garbage";
    char *big;
    struct event v;
    enum event_err err;
    char detail[128];

    (void)state;
    assert_int_equal(
        event_parse(vote_ev(&v), withnul, sizeof(withnul) - 1, 0, &err, detail, sizeof(detail)),
        -1);
    assert_int_equal(err, EVENT_ERR_INVALID_JSON);

    big = xmalloc(EVENT_MAX_BYTES + 1);
    memset(big, ' ', EVENT_MAX_BYTES + 1);
    assert_int_equal(
        event_parse(vote_ev(&v), big, EVENT_MAX_BYTES + 1, 0, &err, detail, sizeof(detail)), -1);
    assert_int_equal(err, EVENT_ERR_TOO_LARGE);
    free(big);
}

static void test_deep_nesting_is_rejected(void **state)
{
    enum { DEPTH = 10000 };
    char *deep = xmalloc(2 * DEPTH + 1);
    struct event v;
    enum event_err err;
    char detail[128];

    (void)state;
    memset(deep, '[', DEPTH);
    memset(deep + DEPTH, ']', DEPTH);
    assert_int_equal(event_parse(vote_ev(&v), deep, 2 * DEPTH, 0, &err, detail, sizeof(detail)),
                     -1);
    assert_int_equal(err, EVENT_ERR_INVALID_JSON);
    free(deep);
}

static void test_encode_roundtrip(void **state)
{
    struct event in, out;
    char buf[512];
    enum event_err err;
    int n;

    (void)state;
    event_vote(&in, 100, 1);
    event_new_id(in.event_id);
    assert_true(event_id_valid(in.event_id));
    in.ts_ms = 1764410000123LL;
    n = event_encode(&in, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(event_parse(vote_ev(&out), buf, (size_t)n, 0, &err, NULL, 0), 0);
    assert_int_equal(out.v[EVENT_VOTE_USER], 100);
    assert_int_equal(out.v[EVENT_VOTE_CANDIDATE], 1);
    assert_string_equal(out.event_id, in.event_id);
    assert_string_equal(out.token, "vote_lock:100:1");
    assert_int_equal(out.ts_ms, in.ts_ms);
    assert_int_equal(event_encode(&in, buf, 10), -1);
}

/* event_encode's shape, with the parts the near misses below vary. */
#define UUID_LOWER "3000e370-2202-5a5c-8e6f-874e518ef9a8"
#define SHAPE(id, user, cand, token, tail)                                                         \
    "{\"event_id\":\"" id "\",\"user_id\":" user ",\"candidate_id\":" cand ",\"token\":\"" token   \
    "\"" tail

/* The fast path takes exactly event_encode's bytes and agrees with the strict parse. */
static void test_canonical_fast_path(void **state)
{
    static const char canonical[] = SHAPE(UUID_LOWER, "1", "2", "vote_lock:1:2", ",\"ts\":5}");
    static const char *const near_misses[] = {
        /* each is one small step from canonical: the fast path declines, strict decides */
        SHAPE("3000E370-2202-5A5C-8E6F-874E518EF9A8", "1", "2", "vote_lock:1:2", ",\"ts\":5}"),
        SHAPE(UUID_LOWER, "01", "2", "vote_lock:1:2", ",\"ts\":5}"),
        SHAPE(UUID_LOWER, "1", "2", "vote_lock:1:3", ",\"ts\":5}"),
        SHAPE(UUID_LOWER, "0", "2", "vote_lock:0:2", ",\"ts\":5}"),
        SHAPE(UUID_LOWER, "9223372036854775808", "2", "vote_lock:9223372036854775808:2",
              ",\"ts\":5}"),
        SHAPE(UUID_LOWER, "1", "2", "vote_lock:1:2", ",\"ts\":5} "),
        SHAPE(UUID_LOWER, "1", "2", "vote_lock:1:2", ",\"ts\":-5}"),
        SHAPE(UUID_LOWER, "1", "2", "vote_lock:1:2", "}"),
        "{\"user_id\":1,\"candidate_id\":2}",
    };
    struct event fast, strict, v;
    enum event_err err;
    char buf[512], detail[128];
    int n;

    (void)state;
    event_vote(&v, 9223372036854775807LL, 7);
    event_new_id(v.event_id);
    n = event_encode(&v, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(event_parse_canonical(vote_ev(&fast), buf, (size_t)n), 1);
    assert_int_equal(
        event_parse_strict(vote_ev(&strict), buf, (size_t)n, 0, &err, detail, sizeof(detail)), 0);
    assert_true(fast.v[EVENT_VOTE_USER] == strict.v[EVENT_VOTE_USER] &&
                fast.v[EVENT_VOTE_CANDIDATE] == strict.v[EVENT_VOTE_CANDIDATE] &&
                fast.ts_ms == strict.ts_ms);
    assert_string_equal(fast.event_id, strict.event_id);
    assert_string_equal(fast.token, strict.token);
    /* One byte short of the end is not canonical (nor valid). */
    assert_int_equal(event_parse_canonical(vote_ev(&fast), buf, (size_t)n - 1), 0);
    /* The shape the near misses start from is canonical itself. */
    assert_int_equal(event_parse_canonical(vote_ev(&fast), canonical, sizeof(canonical) - 1), 1);
    assert_true(fast.v[EVENT_VOTE_USER] == 1 && fast.v[EVENT_VOTE_CANDIDATE] == 2 &&
                fast.ts_ms == 5);
    assert_string_equal(fast.event_id, UUID_LOWER);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(near_misses); i++)
        assert_int_equal(
            event_parse_canonical(vote_ev(&fast), near_misses[i], strlen(near_misses[i])), 0);
}

/* A known voter: "user_id" may be left out; present, it is read (the caller compares). */
static void test_parse_for_known_user(void **state)
{
    static const char omitted[] = "{\"candidate_id\":3}";
    static const char given[] = "{\"user_id\":9,\"candidate_id\":3}";
    static const char bad_type[] = "{\"user_id\":\"x\",\"candidate_id\":3}";
    struct event v;
    enum event_err err;
    char detail[128];

    (void)state;
    assert_int_equal(
        event_parse(vote_ev(&v), omitted, strlen(omitted), 42, &err, detail, sizeof(detail)), 0);
    assert_int_equal(v.v[EVENT_VOTE_USER], 42);
    assert_string_equal(v.token, "vote_lock:42:3");
    assert_int_equal(
        event_parse(vote_ev(&v), given, strlen(given), 42, &err, detail, sizeof(detail)), 0);
    assert_int_equal(v.v[EVENT_VOTE_USER], 9);
    assert_int_equal(
        event_parse(vote_ev(&v), bad_type, strlen(bad_type), 42, &err, detail, sizeof(detail)), -1);
    assert_int_equal(err, EVENT_ERR_TYPE);
    /* Without a known voter the field stays required. */
    assert_int_equal(
        event_parse(vote_ev(&v), omitted, strlen(omitted), 0, &err, detail, sizeof(detail)), -1);
    assert_int_equal(err, EVENT_ERR_MISSING);
    assert_int_equal(
        event_parse(vote_ev(&v), omitted, strlen(omitted), 0, &err, detail, sizeof(detail)), -1);
    assert_int_equal(err, EVENT_ERR_MISSING);
}

static void test_ids(void **state)
{
    char a[EVENT_ID_LEN], b[EVENT_ID_LEN], c[EVENT_ID_LEN];

    (void)state;
    event_new_id(a);
    event_new_id(b);
    assert_string_not_equal(a, b);
    event_derive_id("votes", 3, 42, a);
    event_derive_id("votes", 3, 42, b);
    event_derive_id("votes", 3, 43, c);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    assert_true(event_id_valid(a));
}

static void check_not_a_vote(const struct corpus_file *f, void *arg)
{
    struct event v;
    enum event_err err;
    char detail[256];

    (void)arg;
    if (event_parse(vote_ev(&v), f->buf, f->len, 0, &err, detail, sizeof(detail)) != -1)
        fail_msg("%s was accepted as a vote", f->name);
    assert_true(err != EVENT_OK && detail[0] != '\0');
}

/* Every JSONTestSuite file is rejected as a vote, with a reason. */
static void test_json_test_suite_corpus(void **state)
{
    (void)state;
    assert_true(corpus_each(check_not_a_vote, NULL) >= 300);
}

/* ---- types from a file: every kind through both paths ------------------- */

static const char types_json[] =
    "{\"types\": {"
    " \"poll_answer\": {\"fields\": {\"poll_id\": \"id\", \"user_id\": \"id\","
    "   \"option_id\": {\"kind\": \"int\", \"min\": -5, \"max\": 64}},"
    "   \"key\": [\"poll_id\", \"user_id\"], \"identity\": \"user_id\"},"
    " \"tag\": {\"fields\": {\"slug\": {\"kind\": \"string\", \"max_length\": 8, \"chars\": "
    "\"a-z-\"},"
    "   \"mood\": {\"kind\": \"enum\", \"values\": [\"up\", \"down\"]},"
    "   \"level\": {\"kind\": \"enum\", \"values\": [-1, 0, 7]},"
    "   \"note\": {\"kind\": \"string\", \"chars\": \"a-z :\"}},"
    "   \"key\": [\"slug\", \"mood\", \"level\"]}}}";

static struct evtypes *types(void)
{
    char err[256];
    struct evtypes *set =
        evtypes_parse(types_json, sizeof(types_json) - 1, "test", err, sizeof(err));
    if (!set)
        fail_msg("types: %s", err);
    return set;
}

/* Encode, then both paths parse it back to the same event. */
static void roundtrip(struct event *in, char *text)
{
    char buf[EVENT_ENCODED_MAX], detail[256], text2[EVTYPE_TEXT_MAX];
    struct event fast, strict;
    enum event_err err;
    int n = event_encode(in, buf, sizeof(buf));

    assert_true(n > 0);
    event_init(&fast, in->type, text);
    assert_int_equal(event_parse_canonical(&fast, buf, (size_t)n), 1);
    event_init(&strict, in->type, text2);
    assert_int_equal(event_parse_strict(&strict, buf, (size_t)n, 0, &err, detail, sizeof(detail)),
                     0);
    assert_string_equal(fast.token, in->token);
    assert_string_equal(strict.token, in->token);
    for (size_t i = 0; i < in->type->nfields; i++) {
        const char *a = event_str(&fast, i), *b = event_str(&strict, i);
        assert_true(fast.v[i] == strict.v[i]);
        if (a)
            assert_string_equal(a, b);
    }
}

static void test_type_every_kind(void **state)
{
    struct evtypes *set = types();
    const struct evtype *t = evtypes_find(set, "tag");
    static const char body[] =
        "{\"slug\":\"a-b\",\"mood\":\"down\",\"level\":-1,\"note\":\"hi: x\"}";
    char text[EVTYPE_TEXT_MAX], text2[EVTYPE_TEXT_MAX], detail[256];
    struct event ev;
    enum event_err err;

    (void)state;
    event_init(&ev, t, text);
    assert_int_equal(event_parse(&ev, body, sizeof(body) - 1, 0, &err, detail, sizeof(detail)), 0);
    assert_string_equal(ev.token, "tag:a-b:down:-1");
    assert_string_equal(event_str(&ev, 0), "a-b");
    assert_string_equal(event_str(&ev, 1), "down");
    assert_int_equal(event_int(&ev, 2), -1);
    assert_string_equal(event_str(&ev, 3), "hi: x");
    event_new_id(ev.event_id);
    ev.ts_ms = 12;
    roundtrip(&ev, text2);
    evtypes_free(set);
}

static void test_type_rejections_name_the_field(void **state)
{
    static const struct {
        const char *json, *type, *detail;
        enum event_err want;
    } rows[] = {
        {"{\"poll_id\":1,\"user_id\":2}", "poll_answer", "\"option_id\"", EVENT_ERR_MISSING},
        {"{\"poll_id\":1,\"user_id\":2,\"option_id\":65}", "poll_answer", "\"option_id\"",
         EVENT_ERR_RANGE},
        {"{\"poll_id\":1,\"user_id\":2,\"option_id\":-6}", "poll_answer", "\"option_id\"",
         EVENT_ERR_RANGE},
        {"{\"poll_id\":1,\"user_id\":2,\"option_id\":\"3\"}", "poll_answer", "\"option_id\"",
         EVENT_ERR_TYPE},
        {"{\"poll_id\":0,\"user_id\":2,\"option_id\":3}", "poll_answer", "\"poll_id\"",
         EVENT_ERR_RANGE},
        {"{\"poll_id\":1,\"user_id\":2,\"option_id\":3,\"x\":1}", "poll_answer", "\"x\"",
         EVENT_ERR_UNKNOWN},
        {"{\"slug\":\"A\",\"mood\":\"up\",\"level\":0,\"note\":\"n\"}", "tag", "\"slug\"",
         EVENT_ERR_VALUE},
        {"{\"slug\":\"abcdefghi\",\"mood\":\"up\",\"level\":0,\"note\":\"n\"}", "tag", "\"slug\"",
         EVENT_ERR_VALUE},
        {"{\"slug\":\"\",\"mood\":\"up\",\"level\":0,\"note\":\"n\"}", "tag", "\"slug\"",
         EVENT_ERR_VALUE},
        {"{\"slug\":\"a\",\"mood\":\"sideways\",\"level\":0,\"note\":\"n\"}", "tag", "\"mood\"",
         EVENT_ERR_VALUE},
        {"{\"slug\":\"a\",\"mood\":\"up\",\"level\":1,\"note\":\"n\"}", "tag", "\"level\"",
         EVENT_ERR_VALUE},
        {"{\"slug\":\"a\",\"mood\":1,\"level\":0,\"note\":\"n\"}", "tag", "\"mood\"",
         EVENT_ERR_TYPE},
        {"{\"slug\":\"a\\u0000\",\"mood\":\"up\",\"level\":0,\"note\":\"n\"}", "tag", "\"slug\"",
         EVENT_ERR_NUL},
    };
    struct evtypes *set = types();
    char text[EVTYPE_TEXT_MAX], detail[256];
    enum event_err err;
    struct event ev;

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        event_init(&ev, evtypes_find(set, rows[i].type), text);
        if (event_parse(&ev, rows[i].json, strlen(rows[i].json), 0, &err, detail, sizeof(detail)) !=
                -1 ||
            err != rows[i].want || !strstr(detail, rows[i].detail))
            fail_msg("row %zu (%s): got %s \"%s\"", i, rows[i].json, event_err_name(err), detail);
    }
    evtypes_free(set);
}

/* The identity field may be left out for a known user; the fast path checks it too. */
static void test_type_identity_and_paths(void **state)
{
    struct evtypes *set = types();
    const struct evtype *t = evtypes_find(set, "poll_answer"), *tag = evtypes_find(set, "tag");
    static const char omitted[] = "{\"poll_id\":7,\"option_id\":3}";
    const char *good[] = {"7", "42"}, *bad[] = {"7", "x"}, *tagp[] = {"a-b", "up", "7"};
    char token[EVENT_TOKEN_LEN], detail[256], buf[EVENT_ENCODED_MAX], line[EVENT_ENCODED_MAX + 64];
    enum event_err err;
    struct event ev, ev2;
    int n;

    (void)state;
    event_init(&ev, t, NULL);
    assert_int_equal(
        event_parse(&ev, omitted, sizeof(omitted) - 1, 42, &err, detail, sizeof(detail)), 0);
    assert_string_equal(ev.token, "poll_answer:7:42");
    event_new_id(ev.event_id);
    n = event_encode(&ev, buf, sizeof(buf));
    event_init(&ev2, t, NULL);
    assert_int_equal(event_parse(&ev2, buf, (size_t)n, 43, &err, detail, sizeof(detail)), 0);
    assert_int_equal(ev2.v[1], 42); /* given: kept, for the caller to refuse */

    /* A line of the producer's ack log: the event plus partition and offset. */
    n = snprintf(line, sizeof(line), "%.*s,\"partition\":3,\"offset\":9}", n - 1, buf);
    assert_int_equal(event_parse(&ev2, line, (size_t)n, 0, &err, detail, sizeof(detail)), 0);
    assert_string_equal(ev2.token, "poll_answer:7:42");

    assert_int_equal(event_path_token(t, good, 2, token, sizeof(token), detail, sizeof(detail)), 0);
    assert_string_equal(token, "poll_answer:7:42");
    assert_int_equal(event_path_token(t, bad, 2, token, sizeof(token), detail, sizeof(detail)), -1);
    assert_non_null(strstr(detail, "\"user_id\""));
    assert_int_equal(event_path_token(t, good, 1, token, sizeof(token), detail, sizeof(detail)),
                     -1);
    assert_int_equal(event_path_token(tag, tagp, 3, token, sizeof(token), detail, sizeof(detail)),
                     0);
    assert_string_equal(token, "tag:a-b:up:7");
    evtypes_free(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_votes),
        cmocka_unit_test(test_rejections_are_named),
        cmocka_unit_test(test_strict_rules_keep_older_names),
        cmocka_unit_test(test_nul_and_oversize),
        cmocka_unit_test(test_deep_nesting_is_rejected),
        cmocka_unit_test(test_encode_roundtrip),
        cmocka_unit_test(test_canonical_fast_path),
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_parse_for_known_user),
        cmocka_unit_test(test_json_test_suite_corpus),
        cmocka_unit_test(test_type_every_kind),
        cmocka_unit_test(test_type_rejections_name_the_field),
        cmocka_unit_test(test_type_identity_and_paths),
    };
    return cmocka_run_group_tests_name("event", tests, NULL, NULL);
}
