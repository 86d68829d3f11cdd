/*
 * fuzz_event.c - libFuzzer harness for the vote parser.
 *
 * Any byte string must either parse into a vote whose token matches its ids
 * and re-encodes to something that parses back to the same vote, or be
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct jsoncheck_strict strict;
    struct event v, back, fast;
    enum event_err err;
    char detail[256], token[EVENT_TOKEN_LEN], buf[EVENT_ENCODED_MAX];
    int n;

    event_init(&v, evtype_vote(), NULL);
    event_init(&back, evtype_vote(), NULL);
    event_init(&fast, evtype_vote(), NULL);
    if (event_parse_canonical(&fast, (const char *)data, size) &&
        (event_parse_strict(&v, (const char *)data, size, 0, &err, detail, sizeof(detail)) != 0 ||
         fast.v[EVENT_VOTE_USER] != v.v[EVENT_VOTE_USER] ||
         fast.v[EVENT_VOTE_CANDIDATE] != v.v[EVENT_VOTE_CANDIDATE] || fast.ts_ms != v.ts_ms ||
         strcmp(fast.event_id, v.event_id) != 0 || strcmp(fast.token, v.token) != 0))
        abort();
    if (event_parse(&v, (const char *)data, size, 0, &err, detail, sizeof(detail)) != 0) {
        if (err == EVENT_OK || detail[0] == '\0')
            abort(); /* a rejection must say why */
        return 0;
    }
    event_token(v.v[EVENT_VOTE_USER], v.v[EVENT_VOTE_CANDIDATE], token, sizeof(token));
    if (v.v[EVENT_VOTE_USER] < 1 || v.v[EVENT_VOTE_CANDIDATE] < 1 || v.ts_ms < 0 ||
        strcmp(token, v.token) != 0)
        abort();
    if (jsoncheck_ex((const char *)data, size, EVENT_MAX_DEPTH, &strict, NULL, 0) != 0 ||
        strict.dup_key_at != JSONCHECK_NONE || strict.nul_at != JSONCHECK_NONE)
        abort();
    if (!v.event_id[0])
        event_new_id(v.event_id);
    n = event_encode(&v, buf, sizeof(buf));
    if (n < 0 || event_parse(&back, buf, (size_t)n, 0, &err, detail, sizeof(detail)) != 0 ||
        back.v[EVENT_VOTE_USER] != v.v[EVENT_VOTE_USER] ||
        back.v[EVENT_VOTE_CANDIDATE] != v.v[EVENT_VOTE_CANDIDATE] ||
        strcmp(back.event_id, v.event_id) != 0)
        abort();
    return 0;
}
