/*
 * fuzz_event.c - libFuzzer harness for the event parser, for the vote and
 * for a type of every field kind (signed ints, strings, enums).
 *
 * Any byte string must either parse into an event whose token matches its
 * key and re-encodes to bytes that parse back to the same event, or be
 * rejected with a named error. An accepted vote also holds no key twice
 * and no \u0000 (the strict rules), and its ts is not negative. Whatever the
 * canonical fast path accepts, the strict parse accepts as the same vote.
 * ASan/UBSan
 * catch the rest. Seeds: tests/fuzz/seeds-fuzz_event (one file per strict rule).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "jsoncheck.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A type of every kind beside the vote: ints with a sign, strings, enums. */
static const char types_json[] =
    "{\"types\": {\"tag\": {\"fields\": {\"n\": {\"kind\": \"int\", \"min\": -9, \"max\": 99},"
    " \"slug\": {\"kind\": \"string\", \"max_length\": 8, \"chars\": \"a-z-\"},"
    " \"mood\": {\"kind\": \"enum\", \"values\": [\"up\", \"down\"]},"
    " \"level\": {\"kind\": \"enum\", \"values\": [-1, 0, 7]}, \"num\": \"id\"},"
    " \"key\": [\"slug\", \"n\", \"mood\"]}}}";

/* Two events of one type hold the same values (strings compared as text). */
static int same(const struct event *a, const struct event *b)
{
    for (size_t i = 0; i < a->type->nfields; i++) {
        const char *x = event_str(a, i), *y = event_str(b, i);
        if (a->v[i] != b->v[i] || (x && strcmp(x, y) != 0))
            return 0;
    }
    return strcmp(a->token, b->token) == 0;
}

/* The contract of the header comment, for one type. */
static void check(const struct evtype *t, const char *data, size_t size)
{
    static char t1[EVTYPE_TEXT_MAX], t2[EVTYPE_TEXT_MAX], t3[EVTYPE_TEXT_MAX];
    struct jsoncheck_strict strict;
    struct event v, back, fast;
    enum event_err err;
    char detail[256], buf[EVENT_ENCODED_MAX];
    int n;

    event_init(&v, t, t1);
    event_init(&back, t, t2);
    event_init(&fast, t, t3);
    if (event_parse_canonical(&fast, data, size) &&
        (event_parse_strict(&v, data, size, 0, &err, detail, sizeof(detail)) != 0 ||
         !same(&fast, &v) || fast.ts_ms != v.ts_ms || strcmp(fast.event_id, v.event_id) != 0))
        abort();
    if (event_parse(&v, data, size, 0, &err, detail, sizeof(detail)) != 0) {
        if (err == EVENT_OK || detail[0] == '\0')
            abort(); /* a rejection must say why */
        return;
    }
    back = v;
    if (event_make_token(&back) != 0 || strcmp(back.token, v.token) != 0 || v.ts_ms < 0)
        abort();
    if (t == evtype_vote() && (v.v[EVENT_VOTE_USER] < 1 || v.v[EVENT_VOTE_CANDIDATE] < 1))
        abort();
    if (jsoncheck_ex(data, size, EVENT_MAX_DEPTH, &strict, NULL, 0) != 0 ||
        strict.dup_key_at != JSONCHECK_NONE || strict.nul_at != JSONCHECK_NONE)
        abort();
    if (!v.event_id[0])
        event_new_id(v.event_id);
    n = event_encode(&v, buf, sizeof(buf));
    event_init(&back, t, t2);
    if (n < 0 || event_parse(&back, buf, (size_t)n, 0, &err, detail, sizeof(detail)) != 0 ||
        !same(&back, &v) || strcmp(back.event_id, v.event_id) != 0)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct evtypes *set;
    char err[256];

    if (!set &&
        !(set = evtypes_parse(types_json, sizeof(types_json) - 1, "fuzz", err, sizeof(err))))
        abort();
    for (size_t i = 0; i < evtypes_count(set); i++)
        check(evtypes_at(set, i), (const char *)data, size);
    return 0;
}
