/*
 * fuzz_api.c - libFuzzer harness for the HTTP API's request classification.
 *
 * producer/api.h decides everything about a request without a socket; this
 * harness feeds it what a client controls: the method, the path, the
 * Content-Type, Content-Length and Idempotency-Key headers, and the body.
 *
 * Input layout: byte 0 holds flags (bit 0 Content-Type present, bit 1
 * Content-Length present, bit 2 Idempotency-Key present, bit 3 the body
 * overflowed, bits 4-5 pick max_body, bit 6 puts only candidates 1-4,7 on
 * the ballot, bit 7 makes the voter a verified user, 42); then five '\n'-terminated fields
 * method, path, content type, content length, key (as C strings: a NUL
 * ends one early, as it would coming from libmicrohttpd); the rest is the
 * body, binary.
 *
 * Invariants, beyond ASan/UBSan: every reply that is final has a status
 * the API documents and a body that is strict, valid UTF-8 JSON
 * {"error":...,"detail":...}; a 405 names what is allowed; a body accepted
 * as a vote fits max_body, carries a token that matches its ids and no
 * client-chosen event id (and, for a verified user, is that user's, its
 * Idempotency-Key in that user's namespace); the 202 body built from it is
 * valid JSON.
 */
#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "event.h"
#include "jsoncheck.h"

#define FIELD_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Next '\n'-terminated field as a C string (cut at a NUL or FIELD_MAX). */
static void take_field(const uint8_t **p, const uint8_t *end, char *out)
{
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = (size_t)((nl ? nl : end) - *p);

    if (n >= FIELD_MAX)
        n = FIELD_MAX - 1;
    memcpy(out, *p, n);
    out[n] = '\0';
    *p = nl ? nl + 1 : end;
}

/* A final reply: documented status, strict JSON {"error":str,"detail":str}. */
static void check_error_reply(const struct api_reply *r)
{
    static const int ok[] = {400, 403, 404, 405, 413, 415};
    char why[128];
    struct json_object *doc, *e, *d;
    int known = 0;

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        known |= r->status == ok[i];
    if (!known || r->action != API_RESPOND || !r->route)
        abort();
    if (jsoncheck(r->body, strlen(r->body), 8, why, sizeof(why)) != 0)
        abort();
    doc = json_tokener_parse(r->body);
    if (!doc || !json_object_object_get_ex(doc, "error", &e) ||
        !json_object_object_get_ex(doc, "detail", &d) ||
        !json_object_is_type(e, json_type_string) || !json_object_is_type(d, json_type_string) ||
        json_object_get_string_len(e) == 0)
        abort();
    json_object_put(doc);
    if (r->status == 405 && r->allow[0] == '\0')
        abort();
}

static void check_vote(const struct api_reply *r, size_t len, int overflow, size_t max_body,
                       const struct api_candidates *ballot, int64_t user)
{
    char token[EVENT_TOKEN_LEN], body[512], why[128];
    struct event v = r->ev;
    int n;

    if (overflow || len > max_body || r->action != API_VOTE)
        abort();
    if (v.v[EVENT_VOTE_USER] < 1 || v.v[EVENT_VOTE_CANDIDATE] < 1 || v.event_id[0] != '\0' ||
        (user > 0 && v.v[EVENT_VOTE_USER] != user) ||
        !api_candidate_known(ballot, v.v[EVENT_VOTE_CANDIDATE]))
        abort();
    event_token(v.v[EVENT_VOTE_USER], v.v[EVENT_VOTE_CANDIDATE], token, sizeof(token));
    if (strcmp(token, v.token) != 0)
        abort();
    event_new_id(v.event_id);
    n = api_accepted(&v, 3, 42, body, sizeof(body));
    if (n <= 0 || jsoncheck(body, (size_t)n, 8, why, sizeof(why)) != 0)
        abort();
}

/* A route api_begin accepted: its method fits. 1: a vote, read its body next. */
static int check_route(const struct api_reply *r, const char *method)
{
    switch (r->action) {
    case API_VOTE:
        if (strcmp(method, "POST") != 0)
            abort();
        return 1;
    case API_STATUS:
        /* Only the vote is a type here (no --types): /votes/U/C or /events/vote/U/C. */
        if (strcmp(method, "GET") != 0 || r->user_id < 1 || r->candidate_id < 1 ||
            r->type != evtype_vote() || strncmp(r->token, "vote_lock:", 10) != 0)
            abort();
        return 0;
    case API_HEALTH:
    case API_READY:
    case API_METRICS:
    case API_PAGE:
    case API_TALLIES:
    case API_STATS:
    case API_COUNTS:
        if (strcmp(method, "GET") != 0)
            abort();
        return 0;
    default:
        abort(); /* API_RESPOND must come with a return of 1 */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char method[FIELD_MAX], path[FIELD_MAX], ctype[FIELD_MAX], clen[FIELD_MAX],
        key[FIELD_MAX];
    static const size_t max_bodies[] = {16, 64, 256, 4096};
    static struct api_candidates ballot;
    const uint8_t *p = data, *end = data + size;
    struct api_reply r;
    unsigned flags;
    size_t max_body, blen;
    int overflow;

    if (size < 1)
        return 0;
    if (ballot.n == 0 && api_candidates_parse("1-4,7", &ballot, NULL, 0) != 0)
        abort();
    flags = *p++;
    take_field(&p, end, method);
    take_field(&p, end, path);
    take_field(&p, end, ctype);
    take_field(&p, end, clen);
    take_field(&p, end, key);
    blen = (size_t)(end - p);
    overflow = (flags & 8) != 0;
    max_body = max_bodies[(flags >> 4) & 3];

    if (api_begin(method, path, flags & 1 ? ctype : NULL, flags & 2 ? clen : NULL, max_body, &r)) {
        check_error_reply(&r);
        return 0;
    }
    if (!check_route(&r, method))
        return 0;
    if (flags & 4) {
        if (api_idempotency_key(key, flags & 128 ? 42 : 0, &r)) {
            check_error_reply(&r);
            return 0;
        }
        /* The key in its namespace: "u42:" for user 42, "a:" for anonymous. */
        const char *ns = flags & 128 ? "u42:" : "a:";
        if (strncmp(r.idem_key, ns, strlen(ns)) != 0 || strlen(r.idem_key) <= strlen(ns) ||
            strlen(r.idem_key) > API_IDEM_KEY_MAX + strlen(ns))
            abort();
    }
    if (api_vote((const char *)p, blen, overflow, max_body, flags & 64 ? &ballot : NULL,
                 flags & 128 ? 42 : 0, &r))
        check_error_reply(&r);
    else
        check_vote(&r, blen, overflow, max_body, flags & 64 ? &ballot : NULL, flags & 128 ? 42 : 0);
    return 0;
}
