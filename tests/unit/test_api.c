/*
 * test_api.c - the HTTP API's decisions without a socket: routing, header
 * checks, vote validation and the JSON bodies of every answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <json-c/json.h>

#include "api.h"
#include "testtypes.h"
#include "util.h"

#define VOTE_BODY "{\"user_id\":100,\"candidate_id\":1}"

/* The body must be a JSON object whose "error" is want_error. */
static void assert_error_body(const char *body, const char *want_error)
{
    json_object *o = json_tokener_parse(body), *e, *d;

    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "error", &e));
    assert_string_equal(json_object_get_string(e), want_error);
    assert_true(json_object_object_get_ex(o, "detail", &d));
    assert_true(strlen(json_object_get_string(d)) > 0);
    json_object_put(o);
}

static void test_routes(void **state)
{
    static const struct {
        const char *method, *path;
        int final, status;
        enum api_action action;
        const char *allow;
    } rows[] = {
        {"POST", "/votes", 0, 0, API_VOTE, ""},
        {"POST", "/votes/", 0, 0, API_VOTE, ""},
        {"GET", "/healthz", 0, 0, API_HEALTH, ""},
        {"GET", "/readyz", 0, 0, API_READY, ""},
        {"GET", "/metrics", 0, 0, API_METRICS, ""},
        {"GET", "/votes", 1, 405, API_RESPOND, "POST"},
        {"PUT", "/votes/", 1, 405, API_RESPOND, "POST"},
        {"POST", "/healthz", 1, 405, API_RESPOND, "GET"},
        {"GET", "/", 0, 0, API_PAGE, ""},
        {"GET", "/tallies", 0, 0, API_TALLIES, ""},
        {"GET", "/stats", 0, 0, API_STATS, ""},
        {"GET", "/votes/1/2", 0, 0, API_STATUS, ""},
        {"POST", "/votes/1/2", 1, 405, API_RESPOND, "GET"},
        {"POST", "/", 1, 405, API_RESPOND, "GET"},
        {"GET", "/votes/1", 1, 404, API_RESPOND, ""},
        {"GET", "/votes/1/2/", 1, 404, API_RESPOND, ""},
        {"GET", "/votes//2", 1, 404, API_RESPOND, ""},
        {"GET", "/index.html", 1, 404, API_RESPOND, ""},
        {"POST", "/votes//", 1, 404, API_RESPOND, ""},
        {"POST", "/VOTES", 1, 404, API_RESPOND, ""},
    };
    struct api_reply r;

    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(rows); i++) {
        int final = api_begin(rows[i].method, rows[i].path, "application/json", NULL, 4096, &r);
        assert_int_equal(final, rows[i].final);
        assert_int_equal(r.action, rows[i].action);
        assert_string_equal(r.allow, rows[i].allow);
        if (final) {
            assert_int_equal(r.status, rows[i].status);
            assert_error_body(r.body, rows[i].status == 404 ? "not_found" : "method_not_allowed");
        }
    }
}

static void test_content_type_and_length(void **state)
{
    static const char *const ok_types[] = {"application/json", "Application/JSON",
                                           "application/json; charset=utf-8",
                                           " application/json ;charset=UTF-8"};
    static const char *const bad_types[] = {"text/plain", "application/x-www-form-urlencoded",
                                            "application/jsonx", "", "multipart/form-data"};
    struct api_reply r;

    (void)state;
    /* No Content-Type is no JSON: also what a cross-site no-cors form post sends. */
    assert_int_equal(api_begin("POST", "/votes", NULL, NULL, 4096, &r), 1);
    assert_int_equal(r.status, 415);
    assert_error_body(r.body, "unsupported_media_type");
    assert_int_equal(api_begin("POST", "/votes/", NULL, "30", 4096, &r), 1);
    assert_int_equal(r.status, 415);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(ok_types); i++)
        assert_int_equal(api_begin("POST", "/votes", ok_types[i], "30", 4096, &r), 0);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bad_types); i++) {
        assert_int_equal(api_begin("POST", "/votes", bad_types[i], "30", 4096, &r), 1);
        assert_int_equal(r.status, 415);
        assert_error_body(r.body, "unsupported_media_type");
    }
    assert_int_equal(api_begin("POST", "/votes", "application/json", "4096", 4096, &r), 0);
    assert_int_equal(api_begin("POST", "/votes", "application/json", "4097", 4096, &r), 1);
    assert_int_equal(r.status, 413);
    assert_error_body(r.body, "too_large");
    /* Content type and length only matter where a body is read. */
    assert_int_equal(api_begin("GET", "/healthz", "text/plain", "99999", 4096, &r), 0);
}

static void test_vote_bodies(void **state)
{
    static const struct {
        const char *body;
        int status; /* 0 = a vote */
        const char *error;
    } rows[] = {
        {"{\"user_id\":100,\"candidate_id\":1}", 0, NULL},
        {"{\"user_id\":100,\"candidate_id\":1,\"extra\":{\"x\":[1]}}", 0, NULL},
        {"{\"user_id\":100,\"candidate_id\":1,\"event_id\":\"0b7e5d1c-3c1a-4a57-9a6e-"
         "2f3c4d5e6f70\"}",
         0, NULL},
        {"", 400, "empty_body"},
        {"{\"user_id\":100", 400, "invalid_json"},
        {"[100,1]", 400, "not_an_object"},
        {"{\"user_id\":100}", 400, "missing_field"},
        {"{\"user_id\":\"100\",\"candidate_id\":1}", 400, "wrong_type"},
        {"{\"user_id\":1.5,\"candidate_id\":1}", 400, "wrong_type"},
        {"{\"user_id\":0,\"candidate_id\":1}", 400, "out_of_range"},
        {"{\"user_id\":9223372036854775808,\"candidate_id\":1}", 400, "out_of_range"},
        {"{\"user_id\":1,\"candidate_id\":1,\"token\":\"vote_lock:1:2\"}", 400, "token_mismatch"},
        {"{\"user_id\":1,\"candidate_id\":2,\"user_id\":3}", 400, "duplicate_key"},
        {"{\"user_id\":1,\"candidate_id\":2,\"note\":\"a\\u0000b\"}", 400, "nul_in_string"},
        {"{\"user_id\":1,\"candidate_id\":2,\"ts\":-5}", 400, "out_of_range"},
        {"{\"user_id\":1,\"candidate_id\":2,\"ts\":\"now\"}", 400, "wrong_type"},
    };
    struct api_reply r;

    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(rows); i++) {
        const char *b = rows[i].body;
        assert_int_equal(api_begin("POST", "/votes", "application/json", NULL, 4096, &r), 0);
        int final = api_vote(b, strlen(b), 0, 4096, NULL, 0, &r);
        if (rows[i].status == 0) {
            assert_int_equal(final, 0);
            assert_int_equal(r.action, API_VOTE);
            /* The server, not the client, names the event. */
            assert_string_equal(r.ev.event_id, "");
            assert_true(r.ev.v[EVENT_VOTE_USER] > 0);
            continue;
        }
        assert_int_equal(final, 1);
        assert_int_equal(r.status, rows[i].status);
        assert_error_body(r.body, rows[i].error);
    }
    assert_int_equal(r.action, API_RESPOND); /* last row failed: nothing to publish */
}

static void test_streamed_overflow(void **state)
{
    const char *b = "{\"user_id\":100,\"candidate_id\":1}";
    struct api_reply r;

    (void)state;
    api_begin("POST", "/votes", "application/json", NULL, 16, &r);
    assert_int_equal(api_vote(b, strlen(b), 0, 16, NULL, 0, &r), 1);
    assert_int_equal(r.status, 413);
    api_begin("POST", "/votes", "application/json", NULL, 4096, &r);
    assert_int_equal(api_vote(b, 10, 1, 4096, NULL, 0, &r), 1);
    assert_int_equal(r.status, 413);
    assert_error_body(r.body, "too_large");
}

static void test_accepted_body(void **state)
{
    struct event v;
    char buf[512];
    json_object *o, *f;

    (void)state;
    event_vote(&v, 100, 1);
    util_strlcpy(v.event_id, "0b7e5d1c-3c1a-4a57-9a6e-2f3c4d5e6f70", sizeof(v.event_id));
    assert_true(api_accepted(&v, 3, 42, buf, sizeof(buf)) > 0);
    o = json_tokener_parse(buf);
    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "status", &f));
    assert_string_equal(json_object_get_string(f), "accepted");
    assert_true(json_object_object_get_ex(o, "event_id", &f));
    assert_string_equal(json_object_get_string(f), v.event_id);
    assert_true(json_object_object_get_ex(o, "token", &f));
    assert_string_equal(json_object_get_string(f), "vote_lock:100:1");
    assert_true(json_object_object_get_ex(o, "partition", &f));
    assert_int_equal(json_object_get_int(f), 3);
    assert_true(json_object_object_get_ex(o, "offset", &f));
    assert_int_equal(json_object_get_int64(f), 42);
    json_object_put(o);
    assert_int_equal(api_accepted(&v, 3, 42, buf, 20), -1);
}

static void test_accepted_body_exact(void **state)
{
    struct event v;

    event_vote(&v, 100, 1);
    util_strlcpy(v.event_id, "0b7e5d1c-3c1a-4a57-9a6e-2f3c4d5e6f70", sizeof(v.event_id));
    char buf[512];
    int n;

    (void)state;
    n = api_accepted(&v, 3, 42, buf, sizeof(buf));
    assert_int_equal(n, (int)strlen(buf));
    assert_string_equal(buf, "{\"status\":\"accepted\",\"event_id\":"
                             "\"0b7e5d1c-3c1a-4a57-9a6e-2f3c4d5e6f70\",\"token\":"
                             "\"vote_lock:100:1\",\"partition\":3,\"offset\":42}\n");
}

static void test_health_and_ready_bodies(void **state)
{
    struct api_reply r;

    (void)state;
    memset(&r, 0, sizeof(r));
    r.action = API_HEALTH;
    api_health(&r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ok\"}\n");
    assert_int_equal(r.action, API_HEALTH); /* a 2xx builder leaves the action alone */

    r.action = API_READY;
    api_ready(&r, 1);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"ready\"}\n");
    assert_int_equal(r.action, API_READY);
    api_ready(&r, 0);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "{\"error\":\"not_ready\",\"detail\":\"Kafka is not reachable, "
                                "or the producer is being rebuilt; retry\"}\n");
}

static void test_vote_status_bodies(void **state)
{
    struct api_reply r;

    (void)state;
    memset(&r, 0, sizeof(r));
    r.action = API_STATUS;
    assert_int_equal(api_vote_status(&r, API_RECORDED, "vote_lock:100:1",
                                     "0b7e5d1c-3c1a-4a57-9a6e-2f3c4d5e6f70",
                                     "2026-11-29T10:50:45.884797Z"),
                     0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"status\":\"recorded\",\"token\":\"vote_lock:100:1\","
                                "\"event_id\":\"0b7e5d1c-3c1a-4a57-9a6e-2f3c4d5e6f70\","
                                "\"created_at\":\"2026-11-29T10:50:45.884797Z\"}\n");
    assert_int_equal(r.action, API_STATUS);

    /* Only recorded votes have an event id and a time: the others ignore them. */
    assert_int_equal(api_vote_status(&r, API_PENDING, "vote_lock:7:2", "x", "y"), 0);
    assert_int_equal(r.status, 202);
    assert_string_equal(r.body, "{\"status\":\"pending\",\"token\":\"vote_lock:7:2\"}\n");
    assert_int_equal(api_vote_status(&r, API_UNKNOWN, "vote_lock:7:3", NULL, NULL), 0);
    assert_int_equal(r.status, 404);
    assert_string_equal(r.body, "{\"status\":\"unknown\",\"token\":\"vote_lock:7:3\"}\n");

    /* Whatever a row holds stays inside its string. */
    assert_int_equal(api_vote_status(&r, API_RECORDED, "t", "a\"b", "c\\d\n"), 0);
    assert_string_equal(r.body, "{\"status\":\"recorded\",\"token\":\"t\",\"event_id\":"
                                "\"a\\\"b\",\"created_at\":\"c\\\\d\\u000a\"}\n");
}

static void test_stats_body(void **state)
{
    static const char *const names[] = {"consumed", "inserted", "dup_redis"};
    static const int64_t values[] = {10010, 2002, -1};
    char longname[700];
    const char *const many[] = {longname};
    struct api_reply r;

    (void)state;
    memset(&r, 0, sizeof(r));
    r.action = API_STATS;
    assert_int_equal(api_stats(&r, "tadak", names, values, 3, 10005), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "{\"group\":\"tadak\",\"consumed\":10010,\"inserted\":2002,"
                                "\"dup_redis\":-1,\"accepted\":10005}\n");
    assert_int_equal(r.action, API_STATS);
    assert_int_equal(api_stats(&r, "g.1-x_y", names, values, 0, 0), 0);
    assert_string_equal(r.body, "{\"group\":\"g.1-x_y\",\"accepted\":0}\n");

    /* Too long for the reply: an error, never a cut-off body. */
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    r.status = 0;
    assert_int_equal(api_stats(&r, "tadak", many, values, 1, 0), -1);
    assert_int_equal(r.status, 0);
}

static void test_error_detail_is_escaped(void **state)
{
    struct api_reply r;
    char esc[16];
    json_object *o, *d;

    (void)state;
    api_error(&r, 400, "invalid_json", "a \"quoted\" \\ back\nslash\x01");
    o = json_tokener_parse(r.body);
    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "detail", &d));
    assert_string_equal(json_object_get_string(d), "a \"quoted\" \\ back\nslash\x01");
    json_object_put(o);
    assert_int_equal(api_json_escape("abcdefghijklmnopqrstuvwxyz", esc, sizeof(esc)), -1);
    assert_int_equal(strlen(esc), sizeof(esc) - 1);
}

static void test_error_with_request_id(void **state)
{
    struct api_reply r;
    json_object *o, *f;

    (void)state;
    api_error_id(&r, 503, "unavailable", "database unavailable; retry", "0123456789abcdef");
    assert_int_equal(r.status, 503);
    assert_error_body(r.body, "unavailable");
    o = json_tokener_parse(r.body);
    assert_true(json_object_object_get_ex(o, "request_id", &f));
    assert_string_equal(json_object_get_string(f), "0123456789abcdef");
    json_object_put(o);
    api_error(&r, 400, "invalid_json", "x");
    assert_null(strstr(r.body, "request_id"));
}

static void test_vote_path(void **state)
{
    static const struct {
        const char *path;
        int rc;
        int64_t user, cand;
        const char *error;
    } rows[] = {
        {"/votes/1/2", 1, 1, 2, NULL},
        {"/votes/9223372036854775807/4", 1, INT64_MAX, 4, NULL},
        {"/votes/007/08", 1, 7, 8, NULL},
        {"/votes/0/1", -1, 0, 0, "out_of_range"},
        {"/votes/1/9223372036854775808", -1, 0, 0, "out_of_range"},
        {"/votes/123456789012345678901234/1", -1, 0, 0, "out_of_range"},
        {"/votes/a/1", -1, 0, 0, "wrong_type"},
        {"/votes/-1/1", -1, 0, 0, "wrong_type"},
        {"/votes/+1/1", -1, 0, 0, "wrong_type"},
        {"/votes/ 1/1", -1, 0, 0, "wrong_type"},
        {"/votes/1/2x", -1, 0, 0, "wrong_type"},
        {"/votes/1", 0, 0, 0, NULL},
        {"/votes/1/", 0, 0, 0, NULL},
        {"/votes//1", 0, 0, 0, NULL},
        {"/votes/1/2/3", 0, 0, 0, NULL},
        {"/votes/", 0, 0, 0, NULL},
        {"/votesx/1/2", 0, 0, 0, NULL},
    };
    struct api_reply r;
    int64_t u, c;

    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(rows); i++) {
        memset(&r, 0, sizeof(r));
        u = c = 0;
        assert_int_equal(api_vote_path(rows[i].path, &u, &c, &r), rows[i].rc);
        if (rows[i].rc == 1) {
            assert_true(u == rows[i].user && c == rows[i].cand);
        } else if (rows[i].rc == -1) {
            assert_int_equal(r.status, 400);
            assert_error_body(r.body, rows[i].error);
            assert_int_equal(api_begin("GET", rows[i].path, NULL, NULL, 4096, &r), 1);
            assert_int_equal(r.status, 400);
        }
    }
}

static void test_idempotency_key_header(void **state)
{
    static const char *const ok[] = {"a", "order-1", "\"quoted key\"", "with space", "~!#$%&'()*"};
    /* Anonymous keys live in their own namespace, "a:": never a user's "u42:...". */
    static const char *const want[] = {"a:a", "a:order-1", "a:quoted key", "a:with space",
                                       "a:~!#$%&'()*"};
    static const char *const bad[] = {"", "\"\"", "a\"b", "tab\there", "caf\xc3\xa9", "\x7f"};
    struct api_reply r;
    char longkey[API_IDEM_KEY_MAX + 2];

    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(ok); i++) {
        memset(&r, 0, sizeof(r));
        assert_int_equal(api_idempotency_key(ok[i], 0, &r), 0);
        assert_string_equal(r.idem_key, want[i]);
    }
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bad); i++) {
        memset(&r, 0, sizeof(r));
        assert_int_equal(api_idempotency_key(bad[i], 0, &r), 1);
        assert_int_equal(r.status, 400);
        assert_error_body(r.body, "invalid_idempotency_key");
    }
    memset(longkey, 'k', API_IDEM_KEY_MAX);
    longkey[API_IDEM_KEY_MAX] = '\0';
    assert_int_equal(api_idempotency_key(longkey, 0, &r), 0);
    assert_int_equal(strlen(r.idem_key), API_IDEM_KEY_MAX + 2);
    assert_int_equal(api_idempotency_key(longkey, INT64_MAX, &r), 0);
    assert_int_equal(strlen(r.idem_key), API_IDEM_KEY_MAX + 1 + 19 + 1);
    longkey[API_IDEM_KEY_MAX] = 'k';
    longkey[API_IDEM_KEY_MAX + 1] = '\0';
    assert_int_equal(api_idempotency_key(longkey, 0, &r), 1);
}

/* A verified voter: user_id may be left out, must match if given; keys are per user. */
static void test_verified_user(void **state)
{
    static const char omitted[] = "{\"candidate_id\":3}";
    static const char same[] = "{\"user_id\":42,\"candidate_id\":3}";
    static const char other[] = "{\"user_id\":43,\"candidate_id\":3}";
    struct api_reply r;

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(api_vote(omitted, strlen(omitted), 0, 4096, NULL, 42, &r), 0);
    assert_string_equal(r.ev.token, "vote_lock:42:3");
    assert_int_equal(api_vote(same, strlen(same), 0, 4096, NULL, 42, &r), 0);
    assert_int_equal(api_vote(other, strlen(other), 0, 4096, NULL, 42, &r), 1);
    assert_int_equal(r.status, 403);
    assert_non_null(strstr(r.body, "\"user_mismatch\""));
    assert_int_equal(api_vote(omitted, strlen(omitted), 0, 4096, NULL, 0, &r), 1);
    assert_int_equal(r.status, 400);

    assert_int_equal(api_idempotency_key("k-1", 42, &r), 0);
    assert_string_equal(r.idem_key, "u42:k-1");
    assert_int_equal(api_idempotency_key("k-1", 0, &r), 0);
    assert_string_equal(r.idem_key, "a:k-1");
    /* An anonymous client naming a user's key gets a key of its own. */
    assert_int_equal(api_idempotency_key("u42:k-1", 0, &r), 0);
    assert_string_equal(r.idem_key, "a:u42:k-1");
}

static void test_candidates_parse(void **state)
{
    static const struct {
        const char *spec;
        int ok;
    } rows[] = {
        {"1-4,7", 1},
        {"7", 1},
        {" 1 - 4 , 9223372036854775807 ", 1},
        {"3-3", 1},
        {"", 0},
        {",", 0},
        {"1,,2", 0},
        {"1-", 0},
        {"-4", 0},
        {"4-1", 0},
        {"0", 0},
        {"0-3", 0},
        {"1-9223372036854775808", 0},
        {"a", 0},
        {"1-4;7", 0},
        {"1 2", 0},
        {"1-2-3", 0},
        {"+1", 0},
    };
    struct api_candidates c;
    char err[128];

    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(rows); i++) {
        int rc = api_candidates_parse(rows[i].spec, &c, err, sizeof(err));
        if (rc != (rows[i].ok ? 0 : -1))
            fail_msg("\"%s\": rc=%d (%s)", rows[i].spec, rc, rows[i].ok ? "" : err);
        if (!rows[i].ok)
            assert_true(strlen(err) > 0);
    }
    assert_int_equal(api_candidates_parse("1-4,7", &c, err, sizeof(err)), 0);
    for (int64_t id = 0; id <= 9; id++)
        assert_int_equal(api_candidate_known(&c, id), (id >= 1 && id <= 4) || id == 7);
    assert_false(api_candidate_known(&c, INT64_MAX));
    /* Without a list every id in range is a candidate. */
    assert_true(api_candidate_known(NULL, INT64_MAX));

    /* Listed ascending, once each; a list too long for a button each is cut
     * for the page, never for votes. */
    int64_t ids[8];
    assert_int_equal(api_candidates_parse("2,1-3,100-1000000,4", &c, err, sizeof(err)), 0);
    assert_int_equal(api_candidates_list(&c, ids, 8), 8);
    assert_true(ids[0] == 1 && ids[1] == 2 && ids[3] == 4 && ids[4] == 100 && ids[7] == 103);
    assert_true(api_candidate_known(&c, 1000000));
    assert_false(api_candidate_known(&c, 5));
    assert_int_equal(api_candidates_parse("9,3", &c, err, sizeof(err)), 0);
    assert_int_equal(api_candidates_list(&c, ids, 8), 2);
    assert_true(ids[0] == 3 && ids[1] == 9);
}

static void test_unknown_candidate(void **state)
{
    struct api_candidates c;
    struct api_reply r;
    char err[128];
    const char *ok = "{\"user_id\":5,\"candidate_id\":7}";
    const char *no = "{\"user_id\":5,\"candidate_id\":5}";
    const char *bad = "{\"user_id\":5,\"candidate_id\":0}";

    (void)state;
    assert_int_equal(api_candidates_parse("1-4,7", &c, err, sizeof(err)), 0);
    api_begin("POST", "/votes", "application/json", NULL, 4096, &r);
    assert_int_equal(api_vote(ok, strlen(ok), 0, 4096, &c, 0, &r), 0);
    api_begin("POST", "/votes", "application/json", NULL, 4096, &r);
    assert_int_equal(api_vote(no, strlen(no), 0, 4096, &c, 0, &r), 1);
    assert_int_equal(r.status, 400);
    assert_error_body(r.body, "unknown_candidate");
    /* A vote that is not a vote at all says so first. */
    api_begin("POST", "/votes", "application/json", NULL, 4096, &r);
    assert_int_equal(api_vote(bad, strlen(bad), 0, 4096, &c, 0, &r), 1);
    assert_error_body(r.body, "out_of_range");
    api_begin("POST", "/votes", "application/json", NULL, 4096, &r);
    assert_int_equal(api_vote(no, strlen(no), 0, 4096, NULL, 0, &r), 0);
}

/* ---- event types ------------------------------------------------------------ */

/* A type with a string key field: like, post "a-z0-9" up to 16, user_id. */
static struct evtype like(void)
{
    struct evtype t = {
        .name = "like",
        .token_prefix = "like",
        .topic = "likes",
        .table = "likes",
        .nfields = 2,
        .fields = {{.name = "post", .kind = EVF_STRING, .max_length = 16, .text_off = 0},
                   {.name = "user_id", .kind = EVF_ID, .min = 1, .max = INT64_MAX}},
        .nkey = 2,
        .key = {0, 1},
        .identity = -1,
        .ncounts = 1,
        .counts = {0},
        .ballot_field = -1,
        .text_size = 17,
    };
    for (int c = 'a'; c <= 'z'; c++)
        t.fields[0].chars[c >> 3] |= (uint8_t)(1 << (c & 7));
    for (int c = '0'; c <= '9'; c++)
        t.fields[0].chars[c >> 3] |= (uint8_t)(1 << (c & 7));
    return t;
}

/* The body's "detail" holds want. */
static void assert_detail_has(const char *body, const char *want)
{
    json_object *o = json_tokener_parse(body), *d;

    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "detail", &d));
    if (!strstr(json_object_get_string(d), want))
        fail_msg("detail \"%s\" does not name %s", json_object_get_string(d), want);
    json_object_put(o);
}

/* /events/{type}... with the vote only (no --types): every shape of path. */
static void test_event_routes(void **state)
{
    static const struct {
        const char *method, *path;
        int final, status;
        enum api_action action;
        const char *allow, *error;
    } rows[] = {
        {"POST", "/events/vote", 0, 0, API_VOTE, "", NULL},
        {"POST", "/events/vote/", 0, 0, API_VOTE, "", NULL},
        {"GET", "/events/vote", 1, 405, API_RESPOND, "POST", "method_not_allowed"},
        {"OPTIONS", "/events/vote", 1, 405, API_RESPOND, "POST", "method_not_allowed"},
        {"GET", "/events/vote/7/2", 0, 0, API_STATUS, "", NULL},
        {"POST", "/events/vote/7/2", 1, 405, API_RESPOND, "GET", "method_not_allowed"},
        {"GET", "/events/vote/counts", 0, 0, API_COUNTS, "", NULL},
        {"POST", "/events/vote/counts", 1, 405, API_RESPOND, "GET", "method_not_allowed"},
        {"GET", "/events/vote/7", 1, 400, API_RESPOND, "", "wrong_key_length"},
        {"GET", "/events/vote/7/2/3", 1, 400, API_RESPOND, "", "wrong_key_length"},
        {"GET", "/events/vote/x/2", 1, 400, API_RESPOND, "", "invalid_key"},
        {"GET", "/events/vote/7/0", 1, 400, API_RESPOND, "", "invalid_key"},
        {"POST", "/events/poll_answer", 1, 404, API_RESPOND, "", "unknown_type"},
        {"GET", "/events/nope/1/2", 1, 404, API_RESPOND, "", "unknown_type"},
        {"GET", "/events/nope/counts", 1, 404, API_RESPOND, "", "unknown_type"},
        {"POST", "/events/", 1, 404, API_RESPOND, "", "not_found"},
        {"POST", "/events", 1, 404, API_RESPOND, "", "not_found"},
        {"GET", "/events/vote/7//2", 1, 404, API_RESPOND, "", "not_found"},
        {"GET", "/events//7/2", 1, 404, API_RESPOND, "", "not_found"},
    };
    struct api_reply r;

    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(rows); i++) {
        int final =
            api_route(NULL, rows[i].method, rows[i].path, "application/json", NULL, 4096, &r);
        assert_int_equal(final, rows[i].final);
        assert_int_equal(r.action, rows[i].action);
        assert_string_equal(r.allow, rows[i].allow);
        if (final) {
            assert_int_equal(r.status, rows[i].status);
            assert_error_body(r.body, rows[i].error);
        } else {
            assert_ptr_equal(r.type, evtype_vote());
        }
    }
    /* The key's token and the identity the edge compares with a verified user. */
    assert_int_equal(api_route(NULL, "GET", "/events/vote/7/2", NULL, NULL, 4096, &r), 0);
    assert_string_equal(r.token, "vote_lock:7:2");
    assert_int_equal(r.user_id, 7);
    assert_string_equal(r.route, "/events/{type}/{key}");
    /* A bad key part names its field. */
    assert_int_equal(api_route(NULL, "GET", "/events/vote/7/x", NULL, NULL, 4096, &r), 1);
    assert_detail_has(r.body, "candidate_id");
    /* POST /events/vote checks its headers as POST /votes does. */
    assert_int_equal(api_route(NULL, "POST", "/events/vote", "text/plain", NULL, 4096, &r), 1);
    assert_int_equal(r.status, 415);
    assert_int_equal(api_route(NULL, "POST", "/events/vote", "application/json", "5000", 4096, &r),
                     1);
    assert_int_equal(r.status, 413);
    /* The vote's own routes are the vote type's. */
    assert_int_equal(api_route(NULL, "POST", "/votes", "application/json", NULL, 4096, &r), 0);
    assert_ptr_equal(r.type, evtype_vote());
    assert_int_equal(api_route(NULL, "GET", "/votes/7/2", NULL, NULL, 4096, &r), 0);
    assert_string_equal(r.token, "vote_lock:7:2");
}

/* An unknown type's 404 lists the known ones, in the detail and as "types". */
static void test_unknown_type_lists_the_types(void **state)
{
    struct api_reply r;
    json_object *o, *types;

    (void)state;
    assert_int_equal(api_route(NULL, "POST", "/events/polls", "application/json", NULL, 4096, &r),
                     1);
    assert_int_equal(r.status, 404);
    assert_detail_has(r.body, "\"polls\"");
    assert_detail_has(r.body, "vote");
    o = json_tokener_parse(r.body);
    assert_non_null(o);
    assert_true(json_object_object_get_ex(o, "types", &types));
    assert_int_equal(json_object_array_length(types), 1);
    assert_string_equal(json_object_get_string(json_object_array_get_idx(types, 0)), "vote");
    json_object_put(o);
}

static void test_event_bodies(void **state)
{
    static const struct {
        const char *body;
        int64_t user;
        int status; /* 0: an event */
        const char *error, *names;
    } rows[] = {
        {"{\"poll_id\":7,\"user_id\":3,\"option_id\":2}", 0, 0, NULL, NULL},
        {"{\"poll_id\":7,\"option_id\":2}", 3, 0, NULL, NULL},
        {"{\"poll_id\":7,\"user_id\":3,\"option_id\":2}", 3, 0, NULL, NULL},
        {"{\"poll_id\":7,\"user_id\":4,\"option_id\":2}", 3, 403, "user_mismatch", "user_id"},
        {"{\"poll_id\":7,\"option_id\":2}", 0, 400, "missing_field", "user_id"},
        {"{\"poll_id\":7,\"user_id\":3,\"option_id\":65}", 0, 400, "out_of_range", "option_id"},
        {"{\"poll_id\":0,\"user_id\":3,\"option_id\":2}", 0, 400, "out_of_range", "poll_id"},
        {"{\"poll_id\":\"7\",\"user_id\":3,\"option_id\":2}", 0, 400, "wrong_type", "poll_id"},
        {"{\"poll_id\":7,\"user_id\":3,\"option_id\":2,\"x\":1}", 0, 400, "unknown_field", "x"},
        {"{\"poll_id\":7,\"user_id\":3,\"option_id\":9}", 0, 400, "not_on_ballot", "option_id"},
    };
    struct evtype t = testtypes_poll_answer();
    struct api_reply r;

    (void)state;
    /* A ballot on option_id: 1-4 only (the last row is off it). */
    t.ballot_field = 2;
    t.nballot = 1;
    t.ballot[0].lo = 1;
    t.ballot[0].hi = 4;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(rows); i++) {
        const char *b = rows[i].body;
        int final;
        memset(&r, 0, sizeof(r));
        final = api_event(&t, b, strlen(b), 0, 4096, NULL, rows[i].user, &r);
        if (rows[i].status == 0) {
            assert_int_equal(final, 0);
            assert_int_equal(r.action, API_VOTE);
            assert_string_equal(r.ev.token, "poll_answer:7:3");
            assert_ptr_equal(r.ev.type, &t);
            continue;
        }
        assert_int_equal(final, 1);
        assert_int_equal(r.status, rows[i].status);
        assert_error_body(r.body, rows[i].error);
        assert_detail_has(r.body, rows[i].names);
    }
    /* The vote's ballot stays --candidates, and its body check is the vote's. */
    memset(&r, 0, sizeof(r));
    assert_int_equal(api_event(evtype_vote(), VOTE_BODY, strlen(VOTE_BODY), 0, 4096, NULL, 0, &r),
                     0);
    assert_string_equal(r.ev.token, "vote_lock:100:1");
}

/* A string field's value lands in the reply's own text. */
static void test_event_string_field(void **state)
{
    static const char body[] = "{\"post\":\"abc9\",\"user_id\":5}";
    static const char bad[] = "{\"post\":\"ABC\",\"user_id\":5}";
    struct evtype t = like();
    struct api_reply r;

    (void)state;
    memset(&r, 0, sizeof(r));
    assert_int_equal(api_event(&t, body, strlen(body), 0, 4096, NULL, 0, &r), 0);
    assert_string_equal(r.ev.token, "like:abc9:5");
    assert_string_equal(event_str(&r.ev, 0), "abc9");
    assert_ptr_equal(r.ev.text, r.text);
    assert_int_equal(api_event(&t, bad, strlen(bad), 0, 4096, NULL, 0, &r), 1);
    assert_int_equal(r.status, 400);
    assert_error_body(r.body, "invalid_value");
    assert_detail_has(r.body, "post");
}

/* Each type's Idempotency-Keys live apart from the vote's and from each other's. */
static void test_idempotency_key_per_type(void **state)
{
    struct evtype t = testtypes_poll_answer();
    struct api_reply r;

    (void)state;
    memset(&r, 0, sizeof(r));
    r.type = &t;
    assert_int_equal(api_idempotency_key("k-1", 42, &r), 0);
    assert_string_equal(r.idem_key, "u42/poll_answer:k-1");
    assert_int_equal(api_idempotency_key("k-1", 0, &r), 0);
    assert_string_equal(r.idem_key, "a/poll_answer:k-1");
    r.type = evtype_vote();
    assert_int_equal(api_idempotency_key("k-1", 42, &r), 0);
    assert_string_equal(r.idem_key, "u42:k-1");
}

static void test_counts_query(void **state)
{
    static const struct {
        const char *names[4], *values[4];
        size_t n;
        const char *error, *names_in_detail;
    } bad[] = {
        {{NULL}, {NULL}, 0, "missing_by", "option_id, poll_id"},
        {{"poll_id"}, {"7"}, 1, "missing_by", "option_id, poll_id"},
        {{"by"}, {"user_id"}, 1, "invalid_by", "option_id, poll_id"},
        {{"by"}, {"nope"}, 1, "invalid_by", "option_id"},
        {{"by"}, {NULL}, 1, "invalid_by", "option_id"},
        {{"by", "by"}, {"option_id", "poll_id"}, 2, "duplicate_parameter", "by"},
        {{"by", "poll_id"}, {"option_id", "x"}, 2, "invalid_filter", "poll_id"},
        {{"by", "poll_id"}, {"option_id", "0"}, 2, "invalid_filter", "poll_id"},
        {{"by", "option_id"}, {"option_id", "65"}, 2, "invalid_filter", "option_id"},
        {{"by", "poll_id", "poll_id"},
         {"option_id", "1", "2"},
         3,
         "duplicate_parameter",
         "poll_id"},
        {{"by", "colour"}, {"option_id", "red"}, 2, "unknown_field", "colour"},
    };
    struct evtype t = testtypes_poll_answer();
    struct api_reply r;
    const char *names[] = {"option_id", "by", "poll_id"}, *values[] = {"3", "option_id", "007"};

    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bad); i++) {
        memset(&r, 0, sizeof(r));
        assert_int_equal(api_counts_query(&t, bad[i].names, bad[i].values, bad[i].n, &r), 1);
        assert_int_equal(r.status, 400);
        assert_error_body(r.body, bad[i].error);
        assert_detail_has(r.body, bad[i].names_in_detail);
    }
    /* by alone. */
    assert_int_equal(api_counts_query(&t, names + 1, values + 1, 1, &r), 0);
    assert_int_equal(r.counts.by, 2);
    assert_int_equal(r.counts.nwhere, 0);
    /* Filters in field order whatever the query's, values canonical ("007" is 7). */
    assert_int_equal(api_counts_query(&t, names, values, 3, &r), 0);
    assert_int_equal(r.counts.by, 2);
    assert_int_equal(r.counts.nwhere, 2);
    assert_int_equal(r.counts.where[0].field, 0);
    assert_string_equal(r.counts.where[0].value, "7");
    assert_int_equal(r.counts.where[1].field, 2);
    assert_string_equal(r.counts.where[1].value, "3");
}

/* The routes of a types file's type: found by name, the vote's still there. */
static void test_routes_of_a_types_file(void **state)
{
    static const char json[] =
        "{\"types\":{\"poll_answer\":{\"fields\":{\"poll_id\":\"id\",\"user_id\":\"id\","
        "\"option_id\":{\"kind\":\"int\",\"min\":1,\"max\":64}},"
        "\"key\":[\"poll_id\",\"user_id\"],\"identity\":\"user_id\","
        "\"counts\":[\"option_id\",\"poll_id\"]}}}";
    char err[256];
    struct evtypes *set = evtypes_parse(json, strlen(json), "test", err, sizeof(err));
    const struct evtype *t;
    struct api_reply r;

    (void)state;
    if (!set)
        fail_msg("evtypes_parse: %s", err);
    t = evtypes_find(set, "poll_answer");
    assert_int_equal(
        api_route(set, "POST", "/events/poll_answer", "application/json", NULL, 4096, &r), 0);
    assert_int_equal(r.action, API_VOTE);
    assert_ptr_equal(r.type, t);
    assert_int_equal(api_route(set, "POST", "/events/vote", "application/json", NULL, 4096, &r), 0);
    assert_ptr_equal(r.type, evtype_vote());
    assert_int_equal(api_route(set, "GET", "/events/poll_answer/7/3", NULL, NULL, 4096, &r), 0);
    assert_int_equal(r.action, API_STATUS);
    assert_string_equal(r.token, "poll_answer:7:3");
    assert_int_equal(r.user_id, 3); /* the identity, second in the key */
    assert_int_equal(api_route(set, "GET", "/events/poll_answer/x/3", NULL, NULL, 4096, &r), 1);
    assert_error_body(r.body, "invalid_key");
    assert_detail_has(r.body, "poll_id");
    assert_int_equal(api_route(set, "GET", "/events/poll_answer/counts", NULL, NULL, 4096, &r), 0);
    assert_int_equal(r.action, API_COUNTS);
    assert_int_equal(api_route(set, "GET", "/events/like/1/2", NULL, NULL, 4096, &r), 1);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "\"types\":[\"vote\",\"poll_answer\"]"));
    evtypes_free(set);
}

static void test_field_value(void **state)
{
    struct evtype t = like();
    char out[EVTYPE_STRING_MAX + 1], detail[256];

    (void)state;
    assert_int_equal(event_field_text(&t, 0, "abc", out, sizeof(out), detail, sizeof(detail)), 0);
    assert_string_equal(out, "abc");
    assert_int_equal(event_field_text(&t, 0, "a:b", out, sizeof(out), detail, sizeof(detail)), -1);
    assert_non_null(strstr(detail, "post"));
    assert_int_equal(event_field_text(&t, 1, "12", out, sizeof(out), detail, sizeof(detail)), 0);
    assert_string_equal(out, "12");
    assert_int_equal(event_field_text(&t, 1, "-1", out, sizeof(out), detail, sizeof(detail)), -1);
    assert_non_null(strstr(detail, "user_id"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_content_type_and_length),
        cmocka_unit_test(test_vote_bodies),
        cmocka_unit_test(test_streamed_overflow),
        cmocka_unit_test(test_accepted_body),
        cmocka_unit_test(test_accepted_body_exact),
        cmocka_unit_test(test_health_and_ready_bodies),
        cmocka_unit_test(test_vote_status_bodies),
        cmocka_unit_test(test_stats_body),
        cmocka_unit_test(test_error_detail_is_escaped),
        cmocka_unit_test(test_vote_path),
        cmocka_unit_test(test_idempotency_key_header),
        cmocka_unit_test(test_candidates_parse),
        cmocka_unit_test(test_verified_user),
        cmocka_unit_test(test_unknown_candidate),
        cmocka_unit_test(test_error_with_request_id),
        cmocka_unit_test(test_event_routes),
        cmocka_unit_test(test_unknown_type_lists_the_types),
        cmocka_unit_test(test_event_bodies),
        cmocka_unit_test(test_event_string_field),
        cmocka_unit_test(test_idempotency_key_per_type),
        cmocka_unit_test(test_counts_query),
        cmocka_unit_test(test_field_value),
        cmocka_unit_test(test_routes_of_a_types_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
