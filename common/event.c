/*
 * event.c - the strict event codec on json-c, tokens and event ids
 * (libuuid). See event.h for the contract.
 *
 * Nearly every message a consumer reads was written by event_encode, byte
 * for byte. event_parse first tries that exact shape (event_parse_canonical:
 * one pass over the type's names in order, digits, allowed characters and
 * hex, no allocation); anything else, however small the difference (a
 * space, another key order, an uppercase UUID), goes through the full
 * strict parse. The shape is valid JSON with no escapes (a string field's
 * characters never need one: evtype.c admits no '"', '\\' or control
 * character), no duplicate key and no NUL by construction, so both paths
 * give the same event (tests/fuzz/fuzz_event.c checks it); the fast one
 * costs a fraction of json-c's.
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
    [EVENT_ERR_UNKNOWN] = "unknown_field",
    [EVENT_ERR_VALUE] = "invalid_value",
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

/* A field's bounds as the detail of a range error. */
static int fail_range(enum event_err *err, const struct evfield *fd, char *detail,
                      size_t detailsize)
{
    *err = EVENT_ERR_RANGE;
    if (detail && detailsize)
        snprintf(detail, detailsize, "\"%s\" must be between %" PRId64 " and %" PRId64, fd->name,
                 fd->min, fd->max);
    return -1;
}

/*
 * An integer field: a JSON integer in the field's bounds. json-c stores
 * integers beyond INT64_MAX as uint64 and saturates beyond that, so both
 * accessors are consulted: int64 catches the low end, uint64 the overflow.
 */
static int get_int(json_object *f, const struct evfield *fd, int64_t *out, enum event_err *err,
                   char *detail, size_t detailsize)
{
    int64_t v;

    if (!json_object_is_type(f, json_type_int))
        return fail(err, EVENT_ERR_TYPE, detail, detailsize, "\"%s\" must be an integer", fd->name);
    v = json_object_get_int64(f);
    if (json_object_get_uint64(f) > (uint64_t)INT64_MAX && v >= 0)
        return fail_range(err, fd, detail, detailsize);
    if (fd->kind == EVF_ENUM_INT) {
        for (size_t i = 0; i < fd->nenum; i++)
            if (fd->enum_int[i] == v) {
                *out = v;
                return 0;
            }
        return fail(err, EVENT_ERR_VALUE, detail, detailsize,
                    "\"%s\" must be one of the type's listed values", fd->name);
    }
    if (v < fd->min || v > fd->max)
        return fail_range(err, fd, detail, detailsize);
    *out = v;
    return 0;
}

static int char_allowed(const struct evfield *fd, unsigned char c)
{
    return c < 128 && (fd->chars[c >> 3] >> (c & 7) & 1);
}

/* A string field: length and characters checked, copied to the event's text. */
static int get_string(json_object *f, const struct evfield *fd, struct event *ev, int64_t *out,
                      enum event_err *err, char *detail, size_t detailsize)
{
    const char *s;
    size_t n;

    if (!json_object_is_type(f, json_type_string))
        return fail(err, EVENT_ERR_TYPE, detail, detailsize, "\"%s\" must be a string", fd->name);
    s = json_object_get_string(f);
    n = (size_t)json_object_get_string_len(f);
    if (strlen(s) != n)
        return fail(err, EVENT_ERR_NUL, detail, detailsize, "\"%s\" holds \\u0000", fd->name);
    if (fd->kind == EVF_ENUM_STRING) {
        for (size_t i = 0; i < fd->nenum; i++)
            if (strcmp(fd->enum_str[i], s) == 0) {
                *out = (int64_t)i;
                return 0;
            }
        return fail(err, EVENT_ERR_VALUE, detail, detailsize,
                    "\"%s\" must be one of the type's listed values", fd->name);
    }
    if (n == 0 || n > fd->max_length) {
        *err = EVENT_ERR_VALUE;
        if (detail && detailsize)
            snprintf(detail, detailsize, "\"%s\" must hold 1 to %zu characters", fd->name,
                     fd->max_length);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (!char_allowed(fd, (unsigned char)s[i]))
            return fail(err, EVENT_ERR_VALUE, detail, detailsize,
                        "\"%s\" holds a character its type does not allow", fd->name);
    memcpy(ev->text + fd->text_off, s, n + 1);
    *out = (int64_t)n;
    return 0;
}

static int get_field(json_object *obj, const struct evfield *fd, struct event *ev, int64_t *out,
                     enum event_err *err, char *detail, size_t detailsize)
{
    json_object *f;

    if (!json_object_object_get_ex(obj, fd->name, &f) || f == NULL)
        return fail(err, EVENT_ERR_MISSING, detail, detailsize, "\"%s\" is required", fd->name);
    if (fd->kind == EVF_STRING || fd->kind == EVF_ENUM_STRING)
        return get_string(f, fd, ev, out, err, detail, detailsize);
    return get_int(f, fd, out, err, detail, detailsize);
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

/* A JSON integer with an optional '-', canonical (no "-0", no leading zero), in lo..hi. */
static int canon_signed(const char **p, const char *end, int64_t lo, int64_t hi, int64_t *out)
{
    const char *q = *p;
    int64_t v;

    if (q < end && *q == '-') {
        q++;
        if (lo >= 0 || !canon_int(&q, end, 1, &v) || -v < lo)
            return 0;
        v = -v; /* INT64_MIN itself is not accepted here: the strict parse takes it */
    } else if (!canon_int(&q, end, 0, &v)) {
        return 0;
    }
    if (v < lo || v > hi)
        return 0;
    *out = v;
    *p = q;
    return 1;
}

/* A quoted string of allowed characters, as event_encode writes it. */
static int canon_string(const char **p, const char *end, const struct evfield *fd, struct event *ev,
                        int64_t *out)
{
    const char *q = *p + 1, *s = q;
    size_t n;

    if (*p >= end || **p != '"')
        return 0;
    while (q < end && *q != '"') {
        if (fd->kind == EVF_STRING && !char_allowed(fd, (unsigned char)*q))
            return 0;
        q++;
    }
    if (q == end)
        return 0;
    n = (size_t)(q - s);
    if (fd->kind == EVF_ENUM_STRING) {
        for (size_t i = 0; i < fd->nenum; i++)
            if (strlen(fd->enum_str[i]) == n && memcmp(fd->enum_str[i], s, n) == 0) {
                *out = (int64_t)i;
                *p = q + 1;
                return 1;
            }
        return 0;
    }
    if (n == 0 || n > fd->max_length)
        return 0;
    memcpy(ev->text + fd->text_off, s, n);
    ev->text[fd->text_off + n] = '\0';
    *out = (int64_t)n;
    *p = q + 1;
    return 1;
}

static int canon_value(const char **p, const char *end, const struct evfield *fd, struct event *ev,
                       int64_t *out)
{
    switch (fd->kind) {
    case EVF_ID:
        return canon_int(p, end, 1, out);
    case EVF_INT:
        return canon_signed(p, end, fd->min, fd->max, out);
    case EVF_ENUM_INT:
        if (!canon_signed(p, end, INT64_MIN + 1, INT64_MAX, out))
            return 0;
        for (size_t i = 0; i < fd->nenum; i++)
            if (fd->enum_int[i] == *out)
                return 1;
        return 0;
    default:
        return canon_string(p, end, fd, ev, out);
    }
}

/* ,"<name>": */
static int canon_name(const char **p, const char *end, const char *name)
{
    size_t n = strlen(name);

    if ((size_t)(end - *p) < n + 4 || (*p)[0] != ',' || (*p)[1] != '"' ||
        memcmp(*p + 2, name, n) != 0 || (*p)[n + 2] != '"' || (*p)[n + 3] != ':')
        return 0;
    *p += n + 4;
    return 1;
}

int event_parse_canonical(struct event *ev, const char *buf, size_t len)
{
    const struct evtype *t = ev->type;
    const char *p = buf, *end = buf + len;
    size_t toklen;

    if (!CANON_LIT(&p, end, "{\"event_id\":\"") || end - p < 36)
        return 0;
    for (int i = 0; i < 36; i++) {
        char c = p[i];
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
    }
    memcpy(ev->event_id, p, 36);
    ev->event_id[36] = '\0';
    p += 36;
    if (!CANON_LIT(&p, end, "\""))
        return 0;
    for (size_t i = 0; i < t->nfields; i++)
        if (!canon_name(&p, end, t->fields[i].name) ||
            !canon_value(&p, end, &t->fields[i], ev, &ev->v[i]))
            return 0;
    if (!CANON_LIT(&p, end, ",\"token\":\"") || event_make_token(ev) != 0)
        return 0;
    toklen = strlen(ev->token);
    if ((size_t)(end - p) < toklen || memcmp(p, ev->token, toklen) != 0)
        return 0;
    p += toklen;
    return CANON_LIT(&p, end, "\",\"ts\":") && canon_int(&p, end, 0, &ev->ts_ms) &&
           CANON_LIT(&p, end, "}") && p == end;
}

int event_parse(struct event *ev, const char *buf, size_t len, int64_t user, enum event_err *err,
                char *detail, size_t detailsize)
{
    *err = EVENT_OK;
    if (detail && detailsize)
        detail[0] = '\0';
    if (event_parse_canonical(ev, buf, len) &&
        (user <= 0 || ev->type->identity < 0 || ev->v[ev->type->identity] == user))
        return 0;
    return event_parse_strict(ev, buf, len, user, err, detail, detailsize);
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
static json_object *strict_object(const struct evtype *t, const char *buf, size_t len,
                                  struct jsoncheck_strict *strict, enum event_err *err,
                                  char *detail, size_t detailsize)
{
    json_object *obj = NULL;
    const char *why;
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
    if (!(obj = jsoncheck_tree(buf, len, EVENT_MAX_DEPTH, &consumed, &why))) {
        fail(err, EVENT_ERR_INVALID_JSON, detail, detailsize, "%s", why);
        goto reject;
    }
    if (consumed < len && !only_whitespace(buf + consumed, len - consumed)) {
        fail(err, EVENT_ERR_INVALID_JSON, detail, detailsize, "%s",
             "unexpected bytes after the JSON value");
        goto reject;
    }
    if (!json_object_is_type(obj, json_type_object)) {
        if (t == evtype_vote())
            fail(err, EVENT_ERR_NOT_OBJECT, detail, detailsize, "%s",
                 "a vote must be a JSON object like {\"user_id\":1,\"candidate_id\":2}");
        else
            fail(err, EVENT_ERR_NOT_OBJECT, detail, detailsize,
                 "a %s must be a JSON object of its fields", t->name);
        goto reject;
    }
    return obj;
reject:
    json_object_put(obj);
    return NULL;
}

/*
 * A member the type does not have (a file's type takes exactly its fields
 * and the envelope's). The producer's ack log adds "partition" and "offset"
 * to each event it writes; they are the envelope's too, so `replay` takes an
 * ack log of any type back, as it always took the vote's.
 */
static int unknown_member(json_object *obj, const struct evtype *t, enum event_err *err,
                          char *detail, size_t detailsize)
{
    static const char *const envelope[] = {"event_id", "token", "ts", "partition", "offset"};

    json_object_object_foreach(obj, key, val)
    {
        size_t e = 0;

        (void)val;
        while (e < UTIL_ARRAY_LEN(envelope) && strcmp(key, envelope[e]) != 0)
            e++;
        if (evtype_field(t, key) < 0 && e == UTIL_ARRAY_LEN(envelope))
            return fail(err, EVENT_ERR_UNKNOWN, detail, detailsize,
                        "\"%s\" is not a field of this type", key);
    }
    return 0;
}

/*
 * The event's fields from a strict object, in the type's order, then
 * event_id, token and ts when present. With user > 0 (the caller knows the
 * user) the identity field may be left out and is then user.
 */
static int read_fields(json_object *obj, int64_t user, struct event *ev, enum event_err *err,
                       char *detail, size_t detailsize)
{
    const struct evtype *t = ev->type;
    json_object *f;

    for (size_t i = 0; i < t->nfields; i++) {
        if (user > 0 && (int)i == t->identity &&
            !json_object_object_get_ex(obj, t->fields[i].name, NULL))
            ev->v[i] = user;
        else if (get_field(obj, &t->fields[i], ev, &ev->v[i], err, detail, detailsize) != 0)
            return -1;
    }
    if (!t->extra_fields_ok && unknown_member(obj, t, err, detail, detailsize) != 0)
        return -1;
    if (event_make_token(ev) != 0)
        return fail(err, EVENT_ERR_VALUE, detail, detailsize, "%s", "the key is too long");

    /* Strings are compared whole: "<uuid>\\u0000junk" is not that UUID. */
    if (json_object_object_get_ex(obj, "event_id", &f) && f != NULL) {
        const char *s = whole_string(f);
        if (!s || !event_id_valid(s))
            return fail(err, EVENT_ERR_EVENT_ID, detail, detailsize, "%s",
                        "\"event_id\" must be a UUID string");
        util_strlcpy(ev->event_id, s, sizeof(ev->event_id));
    }
    if (json_object_object_get_ex(obj, "token", &f) && f != NULL) {
        const char *s = whole_string(f);
        if (!s || strcmp(s, ev->token) != 0)
            return fail(err, EVENT_ERR_TOKEN, detail, detailsize, "\"token\" must equal \"%s\"",
                        ev->token);
    }
    return get_ts(obj, &ev->ts_ms, err, detail, detailsize);
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

int event_parse_strict(struct event *ev, const char *buf, size_t len, int64_t user,
                       enum event_err *err, char *detail, size_t detailsize)
{
    struct jsoncheck_strict strict;
    json_object *obj;
    int rc = -1;

    event_init(ev, ev->type, ev->text);
    *err = EVENT_OK;
    if (detail && detailsize)
        detail[0] = '\0';
    obj = strict_object(ev->type, buf, len, &strict, err, detail, detailsize);
    if (obj && read_fields(obj, user, ev, err, detail, detailsize) == 0 &&
        strict_rules(&strict, err, detail, detailsize) == 0)
        rc = 0;
    json_object_put(obj);
    return rc;
}

void event_init(struct event *ev, const struct evtype *type, char *text)
{
    memset(ev, 0, sizeof(*ev));
    ev->type = type;
    ev->text = text;
}

int64_t event_int(const struct event *ev, size_t field)
{
    return ev->v[field];
}

const char *event_str(const struct event *ev, size_t field)
{
    const struct evfield *fd = &ev->type->fields[field];

    if (fd->kind == EVF_ENUM_STRING)
        return fd->enum_str[ev->v[field]];
    if (fd->kind == EVF_STRING)
        return ev->text + fd->text_off;
    return NULL;
}

/* v in decimal at dst (room for 20 bytes); the length. */
static size_t put_i64(char *dst, int64_t v)
{
    char tmp[20];
    size_t n = 0, k = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do
        tmp[n++] = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        dst[k++] = '-';
    while (n)
        dst[k++] = tmp[--n];
    return k;
}

/* "<prefix>:<k1>:<k2>...": the parts as their text (digits, or the string). */
int event_make_token(struct event *ev)
{
    const struct evtype *t = ev->type;
    size_t n = strlen(t->token_prefix);
    char *tok = ev->token;

    memcpy(tok, t->token_prefix, n);
    for (size_t i = 0; i < t->nkey; i++) {
        size_t f = (size_t)t->key[i];
        const char *s = event_str(ev, f);
        size_t len = s ? strlen(s) : 20;

        if (n + 1 + len >= EVENT_TOKEN_LEN)
            return -1;
        tok[n++] = ':';
        if (s) {
            memcpy(tok + n, s, len);
            n += len;
        } else {
            n += put_i64(tok + n, ev->v[f]);
        }
    }
    tok[n] = '\0';
    return 0;
}

void event_token(int64_t user_id, int64_t candidate_id, char *buf, size_t size)
{
    snprintf(buf, size, "vote_lock:%" PRId64 ":%" PRId64, user_id, candidate_id);
}

void event_vote(struct event *ev, int64_t user_id, int64_t candidate_id)
{
    event_init(ev, evtype_vote(), NULL);
    ev->v[EVENT_VOTE_USER] = user_id;
    ev->v[EVENT_VOTE_CANDIDATE] = candidate_id;
    event_make_token(ev);
}

/* One key part given as text: checked as its field's JSON value would be. */
static int path_part(const struct evfield *fd, const char *part, struct event *ev, size_t i,
                     char *detail, size_t detailsize)
{
    enum event_err err;
    json_object *v;
    int64_t n;
    int rc;

    if (fd->kind == EVF_STRING || fd->kind == EVF_ENUM_STRING)
        v = json_object_new_string(part);
    else if (util_parse_i64(part, &n) == 0)
        v = json_object_new_int64(n);
    else
        return fail(&err, EVENT_ERR_TYPE, detail, detailsize, "\"%s\" must be an integer",
                    fd->name);
    if (fd->kind == EVF_STRING || fd->kind == EVF_ENUM_STRING)
        rc = get_string(v, fd, ev, &ev->v[i], &err, detail, detailsize);
    else
        rc = get_int(v, fd, &ev->v[i], &err, detail, detailsize);
    json_object_put(v);
    return rc;
}

int event_path_token(const struct evtype *t, const char *const *parts, size_t n, char *token,
                     size_t size, char *detail, size_t detailsize)
{
    char text[EVTYPE_TEXT_MAX];
    enum event_err err;
    struct event ev;

    event_init(&ev, t, text);
    if (n != t->nkey)
        return fail(&err, EVENT_ERR_MISSING, detail, detailsize, "%s",
                    "the path must name every field of the key, in order");
    for (size_t i = 0; i < n; i++)
        if (path_part(&t->fields[t->key[i]], parts[i], &ev, (size_t)t->key[i], detail,
                      detailsize) != 0)
            return -1;
    if (event_make_token(&ev) != 0 || strlen(ev.token) >= size)
        return fail(&err, EVENT_ERR_VALUE, detail, detailsize, "%s", "the key is too long");
    memcpy(token, ev.token, strlen(ev.token) + 1);
    return 0;
}

int event_field_text(const struct evtype *t, size_t field, const char *text, char *out, size_t size,
                     char *detail, size_t detailsize)
{
    char buf[EVTYPE_TEXT_MAX], num[24];
    enum event_err err;
    struct event ev;
    const char *s;

    event_init(&ev, t, buf);
    if (path_part(&t->fields[field], text, &ev, field, detail, detailsize) != 0)
        return -1;
    if (!(s = event_str(&ev, field))) {
        num[put_i64(num, ev.v[field])] = '\0';
        s = num;
    }
    if (util_strlcpy(out, s, size) >= size)
        return fail(&err, EVENT_ERR_VALUE, detail, detailsize, "\"%s\" is too long",
                    t->fields[field].name);
    return 0;
}

/* Append n bytes at *at if they fit before end; 0 when they did not. */
static int put(char **at, const char *end, const char *s, size_t n)
{
    if ((size_t)(end - *at) <= n)
        return 0;
    memcpy(*at, s, n);
    *at += n;
    return 1;
}

int event_encode(const struct event *ev, char *buf, size_t size)
{
    const struct evtype *t = ev->type;
    char *at = buf, *end = buf + size, num[24];
    int ok = size > 0 && put(&at, end, "{\"event_id\":\"", 13) &&
             put(&at, end, ev->event_id, strlen(ev->event_id)) && put(&at, end, "\"", 1);

    for (size_t i = 0; ok && i < t->nfields; i++) {
        const char *s = event_str(ev, i);
        ok = put(&at, end, ",\"", 2) &&
             put(&at, end, t->fields[i].name, strlen(t->fields[i].name)) && put(&at, end, "\":", 2);
        if (ok && s)
            ok = put(&at, end, "\"", 1) && put(&at, end, s, strlen(s)) && put(&at, end, "\"", 1);
        else if (ok)
            ok = put(&at, end, num, put_i64(num, ev->v[i]));
    }
    ok = ok && put(&at, end, ",\"token\":\"", 10) && put(&at, end, ev->token, strlen(ev->token)) &&
         put(&at, end, "\",\"ts\":", 7) && put(&at, end, num, put_i64(num, ev->ts_ms)) &&
         put(&at, end, "}", 1);
    if (!ok)
        return -1;
    *at = '\0';
    return (int)(at - buf);
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
