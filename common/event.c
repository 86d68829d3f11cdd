/*
 * event.c - strict vote codec on json-c, tokens and event ids (libuuid).
 * See event.h for the contract.
 *
 * Nearly every message a consumer reads was written by event_encode, byte
 * for byte. event_parse first tries that exact shape (event_parse_canonical:
 * one pass over fixed keys, digits and hex, no allocation); anything else,
 * however small the difference (a space, another key order, an uppercase
 * UUID), goes through the full strict parse. The shape is valid JSON with no
 * escapes, no duplicate key and no NUL by construction, so both paths give
 * the same vote (tests/fuzz/fuzz_event.c checks it); the fast one costs a
 * fraction of json-c's.
 */
#include "event.h"
#include "jsoncheck.h"
#include "util.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <uuid/uuid.h>

static const char *const err_names[] = {
    [EVENT_OK] = "ok",
    [EVENT_ERR_EMPTY] = "empty_body",
    [EVENT_ERR_TOO_LARGE] = "too_large",
    [EVENT_ERR_INVALID_JSON] = "invalid_json",
    [EVENT_ERR_NOT_OBJECT] = "not_an_object",
    [EVENT_ERR_MISSING] = "missing_field",
    [EVENT_ERR_TYPE] = "wrong_type",
    [EVENT_ERR_RANGE] = "out_of_range",
    [EVENT_ERR_EVENT_ID] = "invalid_event_id",
    [EVENT_ERR_TOKEN] = "token_mismatch",
    [EVENT_ERR_DUP_KEY] = "duplicate_key",
    [EVENT_ERR_NUL] = "nul_in_string",
};

const char *event_err_name(enum event_err err)
{
    if ((size_t)err >= UTIL_ARRAY_LEN(err_names))
        return "unknown";
    return err_names[err];
}

static int fail(enum event_err *err, enum event_err code, char *detail, size_t detailsize,
                const char *fmt, const char *arg)
{
    *err = code;
    if (detail && detailsize)
        snprintf(detail, detailsize, fmt, arg);
    return -1;
}

/*
 * An id must be a JSON integer in 1..INT64_MAX. json-c stores integers
 * beyond INT64_MAX as uint64 and saturates beyond that, so both accessors
 * are consulted: int64 catches zero and negatives, uint64 the overflow.
 */
static int get_id(json_object *obj, const char *name, int64_t *out, enum event_err *err,
                  char *detail, size_t detailsize)
{
    json_object *f;

    if (!json_object_object_get_ex(obj, name, &f) || f == NULL)
        return fail(err, EVENT_ERR_MISSING, detail, detailsize, "\"%s\" is required", name);
    if (!json_object_is_type(f, json_type_int))
        return fail(err, EVENT_ERR_TYPE, detail, detailsize, "\"%s\" must be an integer", name);
    if (json_object_get_int64(f) < 1 || json_object_get_uint64(f) > (uint64_t)INT64_MAX)
        return fail(err, EVENT_ERR_RANGE, detail, detailsize,
                    "\"%s\" must be between 1 and 9223372036854775807", name);
    *out = json_object_get_int64(f);
    return 0;
}

int event_id_valid(const char *s)
{
    uuid_t u;
    return strlen(s) == 36 && uuid_parse(s, u) == 0;
}

/* "ts", when present: an integer in 0..INT64_MAX (null is not one). */
static int get_ts(json_object *obj, int64_t *out, enum event_err *err, char *detail,
                  size_t detailsize)
{
    json_object *f;

    if (!json_object_object_get_ex(obj, "ts", &f))
        return 0;
    if (!json_object_is_type(f, json_type_int))
        return fail(err, EVENT_ERR_TYPE, detail, detailsize, "%s",
                    "\"ts\" must be an integer (milliseconds since the epoch)");
    if (json_object_get_int64(f) < 0 || json_object_get_uint64(f) > (uint64_t)INT64_MAX)
        return fail(err, EVENT_ERR_RANGE, detail, detailsize, "%s",
                    "\"ts\" must be between 0 and 9223372036854775807");
    *out = json_object_get_int64(f);
    return 0;
}

/* A string field's whole value: NULL if it is not a string or holds a NUL. */
static const char *whole_string(json_object *f)
{
    const char *s;

    if (!json_object_is_type(f, json_type_string))
        return NULL;
    s = json_object_get_string(f);
    return strlen(s) == (size_t)json_object_get_string_len(f) ? s : NULL;
}

/* Expect the literal lit at *p; advance past it. */
#define CANON_LIT(p, end, lit) canon_lit(p, end, lit, sizeof(lit) - 1)
static int canon_lit(const char **p, const char *end, const char *lit, size_t n)
{
    if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
        return 0;
    *p += n;
    return 1;
}

/* A JSON integer without sign or leading zero, in min..INT64_MAX. */
static int canon_int(const char **p, const char *end, int64_t min, int64_t *out)
{
    const char *q = *p;
    uint64_t v = 0;

    if (q == end || *q < '0' || *q > '9' ||
        (*q == '0' && q + 1 < end && q[1] >= '0' && q[1] <= '9'))
        return 0;
    for (; q < end && *q >= '0' && *q <= '9'; q++) {
        if (v > ((uint64_t)INT64_MAX - (uint64_t)(*q - '0')) / 10)
            return 0;
        v = v * 10 + (uint64_t)(*q - '0');
    }
    if ((int64_t)v < min)
        return 0;
    *out = (int64_t)v;
    *p = q;
    return 1;
}

int event_parse_canonical(const char *buf, size_t len, struct vote *out)
{
    static const char prefix[] = "vote_lock:";
    const char *p = buf, *end = buf + len, *user, *cand;
    size_t ulen, clen, toklen;
    struct vote v;

    memset(&v, 0, sizeof(v));
    if (!CANON_LIT(&p, end, "{\"event_id\":\"") || end - p < 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        char c = p[i];
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    memcpy(v.event_id, p, 36);
    p += 36;
    if (!CANON_LIT(&p, end, "\",\"user_id\":"))
        return 0;
    user = p;
    if (!canon_int(&p, end, 1, &v.user_id))
        return 0;
    ulen = (size_t)(p - user);
    if (!CANON_LIT(&p, end, ",\"candidate_id\":"))
        return 0;
    cand = p;
    if (!canon_int(&p, end, 1, &v.candidate_id))
        return 0;
    clen = (size_t)(p - cand);
    if (!CANON_LIT(&p, end, ",\"token\":\""))
        return 0;
    /* The ids' digits as written (no sign, no leading zero) are event_token's. */
    toklen = sizeof(prefix) - 1 + ulen + 1 + clen;
    memcpy(v.token, prefix, sizeof(prefix) - 1);
    memcpy(v.token + sizeof(prefix) - 1, user, ulen);
    v.token[sizeof(prefix) - 1 + ulen] = ':';
    memcpy(v.token + sizeof(prefix) + ulen, cand, clen);
    v.token[toklen] = '\0';
    if ((size_t)(end - p) < toklen || memcmp(p, v.token, toklen) != 0)
        return 0;
    p += toklen;
    if (!CANON_LIT(&p, end, "\",\"ts\":") || !canon_int(&p, end, 0, &v.ts_ms) ||
        !CANON_LIT(&p, end, "}") || p != end)
        return 0;
    *out = v;
    return 1;
}

int event_parse(const char *buf, size_t len, struct vote *out, enum event_err *err, char *detail,
                size_t detailsize)
{
    *err = EVENT_OK;
    if (detail && detailsize)
        detail[0] = '\0';
    if (event_parse_canonical(buf, len, out))
        return 0;
    return event_parse_strict(buf, len, out, err, detail, detailsize);
}

/* 1 when s[0, len) is JSON whitespace only: all that may follow the value. */
static int only_whitespace(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return 0;
    return 1;
}

/*
 * The strict-object check: buf is one JSON object and nothing else, by
 * jsoncheck's strict grammar (which also fills *strict) and then json-c's.
 * The object, or NULL with err and detail set.
 */
static json_object *strict_object(const char *buf, size_t len, struct jsoncheck_strict *strict,
                                  enum event_err *err, char *detail, size_t detailsize)
{
    json_tokener *tok = NULL;
    json_object *obj = NULL;
    enum json_tokener_error jerr;
    size_t consumed = len;

    if (len == 0) {
        fail(err, EVENT_ERR_EMPTY, detail, detailsize, "%s", "the body is empty");
        goto reject;
    }
    if (len > EVENT_MAX_BYTES) {
        fail(err, EVENT_ERR_TOO_LARGE, detail, detailsize, "%s",
             "the message is larger than 1 MiB");
        goto reject;
    }
    if (jsoncheck_ex(buf, len, EVENT_MAX_DEPTH, strict, detail, detailsize) != 0) {
        *err = EVENT_ERR_INVALID_JSON;
        goto reject;
    }
    tok = json_tokener_new_ex(EVENT_MAX_DEPTH + 1);
    if (!tok) {
        fail(err, EVENT_ERR_INVALID_JSON, detail, detailsize, "%s", "parser unavailable");
        goto reject;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    obj = json_tokener_parse_ex(tok, buf, (int)len);
    jerr = json_tokener_get_error(tok);
    if (!obj && jerr == json_tokener_continue) {
        /* A bare top-level number only ends at end of input: say so with a NUL. */
        obj = json_tokener_parse_ex(tok, "", 1);
        jerr = json_tokener_get_error(tok);
    } else if (obj) {
        consumed = json_tokener_get_parse_end(tok);
    }
    if (!obj || jerr != json_tokener_success) {
        fail(err, EVENT_ERR_INVALID_JSON, detail, detailsize, "%s",
             jerr == json_tokener_continue ? "unexpected end of input"
                                           : json_tokener_error_desc(jerr));
        goto reject;
    }
    if (consumed < len && !only_whitespace(buf + consumed, len - consumed)) {
        fail(err, EVENT_ERR_INVALID_JSON, detail, detailsize, "%s",
             "unexpected bytes after the JSON value");
        goto reject;
    }
    if (!json_object_is_type(obj, json_type_object)) {
        fail(err, EVENT_ERR_NOT_OBJECT, detail, detailsize, "%s",
             "a vote must be a JSON object like {\"user_id\":1,\"candidate_id\":2}");
        goto reject;
    }
    json_tokener_free(tok);
    return obj;
reject:
    json_object_put(obj);
    if (tok) /* json-c's free does not take NULL */
        json_tokener_free(tok);
    return NULL;
}

/*
 * The vote's fields from a strict object: ids, then event_id, token and ts
 * when present. With user > 0 (the caller knows the voter) "user_id" may be
 * left out and is then user.
 */
static int read_fields(json_object *obj, int64_t user, struct vote *out, enum event_err *err,
                       char *detail, size_t detailsize)
{
    json_object *f;

    if (user > 0 && !json_object_object_get_ex(obj, "user_id", NULL))
        out->user_id = user;
    else if (get_id(obj, "user_id", &out->user_id, err, detail, detailsize) != 0)
        return -1;
    if (get_id(obj, "candidate_id", &out->candidate_id, err, detail, detailsize) != 0)
        return -1;
    event_token(out->user_id, out->candidate_id, out->token, sizeof(out->token));

    /* Strings are compared whole: "<uuid>\u0000junk" is not that UUID. */
    if (json_object_object_get_ex(obj, "event_id", &f) && f != NULL) {
        const char *s = whole_string(f);
        if (!s || !event_id_valid(s))
            return fail(err, EVENT_ERR_EVENT_ID, detail, detailsize, "%s",
                        "\"event_id\" must be a UUID string");
        util_strlcpy(out->event_id, s, sizeof(out->event_id));
    }
    if (json_object_object_get_ex(obj, "token", &f) && f != NULL) {
        const char *s = whole_string(f);
        if (!s || strcmp(s, out->token) != 0)
            return fail(err, EVENT_ERR_TOKEN, detail, detailsize, "\"token\" must equal \"%s\"",
                        out->token);
    }
    return get_ts(obj, &out->ts_ms, err, detail, detailsize);
}

/*
 * The rules stricter than RFC 8259 (event.h): checked last, so that what
 * older rules rejected keeps its error name.
 */
static int strict_rules(const struct jsoncheck_strict *strict, enum event_err *err, char *detail,
                        size_t detailsize)
{
    if (strict->dup_key_at != JSONCHECK_NONE &&
        (strict->nul_at == JSONCHECK_NONE || strict->dup_key_at < strict->nul_at)) {
        *err = EVENT_ERR_DUP_KEY;
        if (detail && detailsize)
            snprintf(detail, detailsize, "an object holds the key at byte %zu twice",
                     strict->dup_key_at);
        return -1;
    }
    if (strict->nul_at != JSONCHECK_NONE) {
        *err = EVENT_ERR_NUL;
        if (detail && detailsize)
            snprintf(detail, detailsize, "the string at byte %zu holds \\u0000", strict->nul_at);
        return -1;
    }
    return 0;
}

int event_parse_strict(const char *buf, size_t len, struct vote *out, enum event_err *err,
                       char *detail, size_t detailsize)
{
    return event_parse_for(buf, len, 0, out, err, detail, detailsize);
}

int event_parse_for(const char *buf, size_t len, int64_t user, struct vote *out,
                    enum event_err *err, char *detail, size_t detailsize)
{
    struct jsoncheck_strict strict;
    json_object *obj;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    *err = EVENT_OK;
    if (detail && detailsize)
        detail[0] = '\0';
    obj = strict_object(buf, len, &strict, err, detail, detailsize);
    if (obj && read_fields(obj, user, out, err, detail, detailsize) == 0 &&
        strict_rules(&strict, err, detail, detailsize) == 0)
        rc = 0;
    json_object_put(obj);
    return rc;
}

void event_token(int64_t user_id, int64_t candidate_id, char *buf, size_t size)
{
    snprintf(buf, size, "vote_lock:%" PRId64 ":%" PRId64, user_id, candidate_id);
}

int event_encode(const struct vote *v, char *buf, size_t size)
{
    int n = snprintf(buf, size,
                     "{\"event_id\":\"%s\",\"user_id\":%" PRId64 ",\"candidate_id\":%" PRId64
                     ",\"token\":\"%s\",\"ts\":%" PRId64 "}",
                     v->event_id, v->user_id, v->candidate_id, v->token, v->ts_ms);
    if (n < 0 || (size_t)n >= size)
        return -1;
    return n;
}

void event_new_id(char buf[EVENT_ID_LEN])
{
    uuid_t u;
    uuid_generate(u);
    uuid_unparse_lower(u, buf);
}

void event_derive_id(const char *topic, int32_t partition, int64_t offset, char buf[EVENT_ID_LEN])
{
    /* A fixed namespace so that re-reading the same message yields the same id. */
    static const uuid_t ns = {0x6f, 0x1d, 0x2a, 0x5e, 0x91, 0x3c, 0x4b, 0x7a,
                              0x8e, 0x02, 0x74, 0x61, 0x64, 0x61, 0x6b, 0x21};
    char name[512];
    uuid_t u;
    int n = snprintf(name, sizeof(name), "%s/%" PRId32 "/%" PRId64, topic, partition, offset);

    uuid_generate_sha1(u, ns, name, (size_t)(n > 0 ? n : 0));
    uuid_unparse_lower(u, buf);
}
