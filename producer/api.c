/*
 * api.c - routes, request checks and the JSON answers. See api.h.
 */
#include "api.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const struct route {
    const char *method;
    const char *path;
    enum api_action action;
    const char *label;
} routes[] = {
    {"POST", "/votes", API_VOTE, "/votes"},       {"POST", "/votes/", API_VOTE, "/votes"},
    {"GET", "/healthz", API_HEALTH, "/healthz"},  {"GET", "/readyz", API_READY, "/readyz"},
    {"GET", "/metrics", API_METRICS, "/metrics"}, {"GET", "/", API_PAGE, "/"},
    {"GET", "/tallies", API_TALLIES, "/tallies"}, {"GET", "/stats", API_STATS, "/stats"},
};

#define API_STATUS_PREFIX "/votes/"
#define API_STATUS_LABEL  "/votes/{user_id}/{candidate_id}"

/* One path segment [s, end) as an id in 1..2^63-1: 0 ok, -1 with the error name set. */
static int parse_id(const char *s, const char *end, int64_t *out, const char **errname)
{
    char num[24];
    size_t n = (size_t)(end - s);

    *errname = "wrong_type";
    for (const char *c = s; c < end; c++)
        if (*c < '0' || *c > '9')
            return -1;
    *errname = "out_of_range";
    if (n >= sizeof(num))
        return -1;
    memcpy(num, s, n);
    num[n] = '\0';
    if (util_parse_i64(num, out) != 0 || *out < 1)
        return -1;
    return 0;
}

int api_vote_path(const char *path, int64_t *user_id, int64_t *candidate_id, struct api_reply *r)
{
    const char *a, *slash, *b, *errname;
    char detail[128];

    if (strncmp(path, API_STATUS_PREFIX, sizeof(API_STATUS_PREFIX) - 1) != 0)
        return 0;
    a = path + sizeof(API_STATUS_PREFIX) - 1;
    slash = strchr(a, '/');
    if (!slash || slash == a)
        return 0;
    b = slash + 1;
    if (*b == '\0' || strchr(b, '/'))
        return 0;
    if (parse_id(a, slash, user_id, &errname) != 0 ||
        parse_id(b, b + strlen(b), candidate_id, &errname) != 0) {
        snprintf(detail, sizeof(detail),
                 "user_id and candidate_id must be integers in 1..9223372036854775807");
        api_error(r, 400, errname, detail);
        return -1;
    }
    return 1;
}

int api_idempotency_key(const char *header, int64_t user, struct api_reply *r)
{
    size_t n = strlen(header), at = 0;

    /* The draft sends the key as a structured-field string: "…"; bare keys are common too. */
    if (n >= 2 && header[0] == '"' && header[n - 1] == '"')
        header++, n -= 2;
    if (n < 1 || n > API_IDEM_KEY_MAX)
        goto bad;
    for (size_t i = 0; i < n; i++)
        if (header[i] < 0x20 || header[i] > 0x7e || header[i] == '"')
            goto bad;
    /*
     * Every key has a namespace, "u<user>:" or "a:" (anonymous), so two users'
     * keys never meet, and an anonymous client sending "u42:k" (identity off
     * on a producer sharing Redis) never reaches user 42's key.
     */
    /*
     * Another type's keys get its name, after a '/' no vote key has at that
     * place: a key reused on another type's route is a new key there.
     */
    if (user > 0)
        at = (size_t)snprintf(r->idem_key, sizeof(r->idem_key), "u%" PRId64, user);
    else
        at = (size_t)snprintf(r->idem_key, sizeof(r->idem_key), "a");
    if (r->type && r->type != evtype_vote())
        at += (size_t)snprintf(r->idem_key + at, sizeof(r->idem_key) - at, "/%s", r->type->name);
    r->idem_key[at++] = ':';
    memcpy(r->idem_key + at, header, n);
    r->idem_key[at + n] = '\0';
    return 0;
bad:
    api_error(r, 400, "invalid_idempotency_key",
              "Idempotency-Key must be 1..255 printable ASCII characters");
    return 1;
}

int api_json_escape(const char *s, char *buf, size_t size)
{
    size_t n = 0;

    if (size == 0)
        return -1;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char tmp[8];
        size_t k;

        if (c == '"' || c == '\\')
            k = (size_t)snprintf(tmp, sizeof(tmp), "\\%c", c);
        else if (c < 0x20)
            k = (size_t)snprintf(tmp, sizeof(tmp), "\\u%04x", c);
        else
            tmp[0] = (char)c, k = 1;
        if (n + k >= size) {
            buf[n] = '\0';
            return -1;
        }
        memcpy(buf + n, tmp, k);
        n += k;
    }
    buf[n] = '\0';
    return (int)n;
}

void api_error(struct api_reply *r, int status, const char *error, const char *detail)
{
    api_error_id(r, status, error, detail, NULL);
}

void api_error_id(struct api_reply *r, int status, const char *error, const char *detail,
                  const char *request_id)
{
    char esc[512], id[80];

    api_json_escape(detail, esc, sizeof(esc));
    r->action = API_RESPOND;
    r->status = status;
    id[0] = '\0';
    if (request_id && api_json_escape(request_id, id, sizeof(id)) < 0)
        id[0] = '\0';
    if (id[0])
        snprintf(r->body, sizeof(r->body),
                 "{\"error\":\"%s\",\"detail\":\"%s\",\"request_id\":\"%s\"}\n", error, esc, id);
    else
        snprintf(r->body, sizeof(r->body), "{\"error\":\"%s\",\"detail\":\"%s\"}\n", error, esc);
}

/* application/json, any case, optionally followed by parameters (charset). */
static int json_content_type(const char *ct)
{
    static const char want[] = "application/json";
    size_t n = sizeof(want) - 1;

    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, want, n) != 0)
        return 0;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

/* GET /votes/{user_id}/{candidate_id}: 1 the reply is final, 0 read on, -1 not that path. */
static int begin_status(const char *method, const char *path, struct api_reply *r)
{
    switch (api_vote_path(path, &r->user_id, &r->candidate_id, r)) {
    case -1:
        r->route = API_STATUS_LABEL;
        return 1;
    case 1:
        r->route = API_STATUS_LABEL;
        r->type = evtype_vote();
        event_token(r->user_id, r->candidate_id, r->token, sizeof(r->token));
        if (strcmp(method, "GET") == 0) {
            r->action = API_STATUS;
            return 0;
        }
        util_strlcpy(r->allow, "GET", sizeof(r->allow));
        api_error(r, 405, "method_not_allowed", "use GET on this path");
        return 1;
    default:
        return -1;
    }
}

/* The routes table's row for method + path, or NULL with the 404 or 405 in r. */
static const struct route *find_route(const char *method, const char *path, struct api_reply *r)
{
    char detail[128];

    for (size_t i = 0; i < UTIL_ARRAY_LEN(routes); i++) {
        if (strcmp(routes[i].path, path) != 0)
            continue;
        r->route = routes[i].label;
        if (strcmp(routes[i].method, method) == 0)
            return &routes[i];
        if (!strstr(r->allow, routes[i].method))
            snprintf(r->allow + strlen(r->allow), sizeof(r->allow) - strlen(r->allow), "%s%s",
                     r->allow[0] ? ", " : "", routes[i].method);
    }
    if (r->allow[0]) {
        snprintf(detail, sizeof(detail), "use %s on this path", r->allow);
        api_error(r, 405, "method_not_allowed", detail);
        return NULL;
    }
    api_error(r, 404, "not_found",
              "unknown path; votes go to POST /votes, their status is at GET "
              "/votes/{user_id}/{candidate_id}");
    return NULL;
}

/* POST /votes' headers: 1 the reply is final (415, 413), 0 read the body. */
static int begin_vote(const char *content_type, const char *content_length, size_t max_body,
                      struct api_reply *r)
{
    int64_t declared;
    char detail[128];

    /* Required: a missing type is what a cross-site no-cors form post can send. */
    if (!content_type || !json_content_type(content_type)) {
        api_error(r, 415, "unsupported_media_type", "send the vote as application/json");
        return 1;
    }
    if (content_length && util_parse_i64(content_length, &declared) == 0 &&
        declared > (int64_t)max_body) {
        snprintf(detail, sizeof(detail), "the body is larger than %zu bytes", max_body);
        api_error(r, 413, "too_large", detail);
        return 1;
    }
    return 0;
}

/* ---- /events/{type}/... ------------------------------------------------- */

#define API_EVENTS_PREFIX "/events/"
#define API_EVENTS_MAX    (EVTYPE_MAX_KEY + 2) /* segments: the type, then up to the key */

/* A client's name for an answer: at most 64 bytes, every one not printable ASCII a '?'. */
static const char *shown(const char *in, char out[68])
{
    size_t n = 0;

    for (; in[n] && n < 64; n++)
        out[n] = in[n] >= 0x20 && in[n] < 0x7f ? in[n] : '?';
    out[n] = '\0';
    if (in[n])
        util_strlcpy(out + n, "...", 4);
    return out;
}

/* 404 unknown_type, with the set's type names in the detail and in "types" (when they fit). */
static void unknown_type(const struct evtypes *set, const char *name, struct api_reply *r)
{
    char names[400], list[512], detail[600], name_shown[68];
    size_t n = set ? evtypes_count(set) : 1, at = 0, in = 0, len;

    names[0] = list[0] = '\0';
    for (size_t i = 0; i < n && at < sizeof(names) && in < sizeof(list); i++) {
        const char *tn = (set ? evtypes_at(set, i) : evtype_vote())->name;
        at += (size_t)snprintf(names + at, sizeof(names) - at, "%s%s", i ? ", " : "", tn);
        in += (size_t)snprintf(list + in, sizeof(list) - in, "%s\"%s\"", i ? "," : "", tn);
    }
    snprintf(detail, sizeof(detail), "no event type \"%s\"; the types are: %s",
             shown(name, name_shown), names);
    api_error(r, 404, "unknown_type", detail);
    /* The body ends "}\n": the list goes before it (type names need no escaping). */
    len = strlen(r->body);
    if (in < sizeof(list) && len >= 2 &&
        len - 2 + strlen(list) + sizeof(",\"types\":[]}\n") <= sizeof(r->body))
        snprintf(r->body + len - 2, sizeof(r->body) - (len - 2), ",\"types\":[%s]}\n", list);
}

/* path after "/events/" cut at '/' into seg[] (at most API_EVENTS_MAX): their number, or -1. */
static int split_path(const char *path, char buf[256], char **seg)
{
    int n = 0;

    if (util_strlcpy(buf, path, 256) >= 256)
        return -1;
    for (char *s = buf;; n++) {
        char *slash = strchr(s, '/');
        if (n == API_EVENTS_MAX)
            return -1;
        seg[n] = s;
        if (!slash)
            return n + 1;
        *slash = '\0';
        s = slash + 1;
    }
}

static int wrong_method(struct api_reply *r, const char *allow)
{
    char detail[64];

    util_strlcpy(r->allow, allow, sizeof(r->allow));
    snprintf(detail, sizeof(detail), "use %s on this path", allow);
    api_error(r, 405, "method_not_allowed", detail);
    return 1;
}

/* GET /events/{type}/{k1}/...: the key's token (and identity), or a 400 naming the field. */
static int begin_event_status(const struct evtype *t, char **parts, size_t n, struct api_reply *r)
{
    char detail[256];
    int64_t id;

    r->route = "/events/{type}/{key}";
    if (event_path_token(t, (const char *const *)parts, n, r->token, sizeof(r->token), detail,
                         sizeof(detail)) != 0) {
        api_error(r, 400, n == t->nkey ? "invalid_key" : "wrong_key_length", detail);
        return 1;
    }
    /* The edge holds a verified user to the identity field, when the key holds it. */
    for (size_t i = 0; i < n; i++)
        if (t->key[i] == t->identity && util_parse_i64(parts[i], &id) == 0)
            r->user_id = id;
    if (t == evtype_vote())
        r->candidate_id = util_parse_i64(parts[1], &id) == 0 ? id : 0;
    r->action = API_STATUS;
    return 0;
}

/* /events/...: 1 the reply is final, 0 read on (r->action, r->type set), -1 not that path. */
static int begin_events(const struct evtypes *set, const char *method, const char *path,
                        struct api_reply *r)
{
    char buf[256], *seg[API_EVENTS_MAX];
    int n;

    if (strncmp(path, API_EVENTS_PREFIX, sizeof(API_EVENTS_PREFIX) - 1) != 0)
        return -1;
    n = split_path(path + sizeof(API_EVENTS_PREFIX) - 1, buf, seg);
    if (n == 2 && seg[1][0] == '\0') /* "/events/{type}/", as "/votes/" */
        n = 1;
    for (int i = 0; i < n; i++)
        if (seg[i][0] == '\0')
            n = -1;
    if (n < 1)
        return -1; /* find_route's 404 */
    r->type =
        set ? evtypes_find(set, seg[0]) : (strcmp(seg[0], "vote") == 0 ? evtype_vote() : NULL);
    if (!r->type) {
        unknown_type(set, seg[0], r);
        return 1;
    }
    if (n == 1) {
        r->route = "/events/{type}";
        if (strcmp(method, "POST") != 0)
            return wrong_method(r, "POST");
        r->action = API_VOTE;
        return 0;
    }
    if (n == 2 && strcmp(seg[1], "counts") == 0) {
        r->route = "/events/{type}/counts";
        if (strcmp(method, "GET") != 0)
            return wrong_method(r, "GET");
        r->action = API_COUNTS;
        return 0;
    }
    r->route = "/events/{type}/{key}";
    if (strcmp(method, "GET") != 0)
        return wrong_method(r, "GET");
    return begin_event_status(r->type, seg + 1, (size_t)n - 1, r);
}

int api_begin(const char *method, const char *path, const char *content_type,
              const char *content_length, size_t max_body, struct api_reply *r)
{
    return api_route(NULL, method, path, content_type, content_length, max_body, r);
}

int api_route(const struct evtypes *set, const char *method, const char *path,
              const char *content_type, const char *content_length, size_t max_body,
              struct api_reply *r)
{
    const struct route *match;
    int final;

    memset(r, 0, sizeof(*r));
    r->route = "other";
    if ((final = begin_status(method, path, r)) >= 0)
        return final;
    if ((final = begin_events(set, method, path, r)) >= 0) {
        if (final || r->action != API_VOTE)
            return final;
        return begin_vote(content_type, content_length, max_body, r);
    }
    if (!(match = find_route(method, path, r)))
        return 1;
    r->action = match->action;
    if (match->action != API_VOTE)
        return 0;
    r->type = evtype_vote();
    return begin_vote(content_type, content_length, max_body, r);
}

int api_vote(const char *body, size_t len, int overflow, size_t max_body,
             const struct api_candidates *candidates, int64_t user, struct api_reply *r)
{
    return api_event(evtype_vote(), body, len, overflow, max_body, candidates, user, r);
}

/* After the parse: the identity and the ballot. 1 = r is the error, 0 = fine. */
static int event_policy(const struct evtype *t, const struct api_candidates *candidates,
                        int64_t user, struct api_reply *r)
{
    const struct event *ev = &r->ev;
    char detail[256];

    if (user > 0 && t->identity >= 0 && ev->v[t->identity] != user) {
        snprintf(detail, sizeof(detail), "%s must be the token's user, or left out",
                 t->fields[t->identity].name);
        api_error(r, 403, "user_mismatch", detail);
        return 1;
    }
    if (t == evtype_vote() && !api_candidate_known(candidates, ev->v[EVENT_VOTE_CANDIDATE])) {
        snprintf(detail, sizeof(detail), "candidate %" PRId64 " is not on the ballot",
                 ev->v[EVENT_VOTE_CANDIDATE]);
        api_error(r, 400, "unknown_candidate", detail);
        return 1;
    }
    if (t->ballot_field >= 0 && !evtype_on_ballot(t, ev->v[t->ballot_field])) {
        snprintf(detail, sizeof(detail), "\"%s\" %" PRId64 " is not on the ballot",
                 t->fields[t->ballot_field].name, ev->v[t->ballot_field]);
        api_error(r, 400, "not_on_ballot", detail);
        return 1;
    }
    return 0;
}

int api_event(const struct evtype *t, const char *body, size_t len, int overflow, size_t max_body,
              const struct api_candidates *candidates, int64_t user, struct api_reply *r)
{
    enum event_err err;
    char detail[256];

    if (overflow || len > max_body) {
        snprintf(detail, sizeof(detail), "the body is larger than %zu bytes", max_body);
        api_error(r, 413, "too_large", detail);
        return 1;
    }
    event_init(&r->ev, t, r->text);
    if (event_parse(&r->ev, body ? body : "", len, user, &err, detail, sizeof(detail)) != 0) {
        api_error(r, 400, event_err_name(err), detail);
        return 1;
    }
    if (event_policy(t, candidates, user, r))
        return 1;
    /* A client does not choose the identity of an event: every request is a new one. */
    r->ev.event_id[0] = '\0';
    r->ev.ts_ms = 0;
    r->action = API_VOTE;
    return 0;
}

/* ---- GET /events/{type}/counts' query ------------------------------------ */

static int is_counts_field(const struct evtype *t, int f)
{
    for (size_t i = 0; i < t->ncounts; i++)
        if (t->counts[i] == f)
            return 1;
    return 0;
}

/* 400 naming what by= may be. */
static int bad_by(const struct evtype *t, const char *error, struct api_reply *r)
{
    char names[256], detail[320];
    size_t at = 0;

    names[0] = '\0';
    for (size_t i = 0; i < t->ncounts && at < sizeof(names); i++)
        at += (size_t)snprintf(names + at, sizeof(names) - at, "%s%s", i ? ", " : "",
                               t->fields[t->counts[i]].name);
    snprintf(detail, sizeof(detail), "by must be one of: %s", names);
    api_error(r, 400, error, detail);
    return 1;
}

/* One FIELD=VALUE filter into q->where[field] (compacted later): 0, or 1 with the 400 in r. */
static int add_filter(const struct evtype *t, const char *name, const char *value, int *seen,
                      struct api_reply *r)
{
    struct api_counts *q = &r->counts;
    char detail[300], name_shown[68];
    int f = evtype_field(t, name);

    if (f < 0) {
        snprintf(detail, sizeof(detail), "\"%s\" is not a field of %s (filters are FIELD=VALUE)",
                 shown(name, name_shown), t->name);
        api_error(r, 400, "unknown_field", detail);
        return 1;
    }
    if (seen[f]++) {
        snprintf(detail, sizeof(detail), "\"%s\" is given twice", name);
        api_error(r, 400, "duplicate_parameter", detail);
        return 1;
    }
    if (event_field_text(t, (size_t)f, value, q->where[f].value, sizeof(q->where[f].value), detail,
                         sizeof(detail)) != 0) {
        api_error(r, 400, "invalid_filter", detail);
        return 1;
    }
    q->where[f].field = f;
    return 0;
}

int api_counts_query(const struct evtype *t, const char *const *names, const char *const *values,
                     size_t n, struct api_reply *r)
{
    struct api_counts *q = &r->counts;
    int seen[EVTYPE_MAX_FIELDS] = {0};

    memset(q, 0, sizeof(*q));
    q->by = -1;
    if (n > API_COUNTS_PARAMS) {
        api_error(r, 400, "too_many_parameters", "a counts query has at most 32 parameters");
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        const char *v = values[i] ? values[i] : "";
        if (strcmp(names[i], "by") != 0) {
            if (add_filter(t, names[i], v, seen, r))
                return 1;
        } else if (q->by >= 0) {
            api_error(r, 400, "duplicate_parameter", "\"by\" is given twice");
            return 1;
        } else if ((q->by = evtype_field(t, v)) < 0 || !is_counts_field(t, q->by)) {
            return bad_by(t, "invalid_by", r);
        }
    }
    if (q->by < 0)
        return bad_by(t, "missing_by", r);
    /* In field order, whatever the query's: one question, one cache key. */
    for (size_t f = 0; f < t->nfields; f++)
        if (seen[f] && q->nwhere++ != f)
            q->where[q->nwhere - 1] = q->where[f];
    return 0;
}

int api_accepted(const struct event *v, int32_t partition, int64_t offset, char *buf, size_t size)
{
    int n = snprintf(buf, size,
                     "{\"status\":\"accepted\",\"event_id\":\"%s\",\"token\":\"%s\","
                     "\"partition\":%" PRId32 ",\"offset\":%" PRId64 "}\n",
                     v->event_id, v->token, partition, offset);
    return (n < 0 || (size_t)n >= size) ? -1 : n;
}

/* ---- answers built here, so that every body has one author --------------- */

void api_health(struct api_reply *r)
{
    r->status = 200;
    util_strlcpy(r->body, "{\"status\":\"ok\"}\n", sizeof(r->body));
}

void api_ready(struct api_reply *r, int ready)
{
    if (!ready) {
        api_error(r, 503, "not_ready",
                  "Kafka is not reachable, or the producer is being rebuilt; retry");
        return;
    }
    r->status = 200;
    util_strlcpy(r->body, "{\"status\":\"ready\"}\n", sizeof(r->body));
}

int api_vote_status(struct api_reply *r, enum api_vote_state state, const char *token,
                    const char *event_id, const char *created_at)
{
    static const char *const names[] = {
        [API_RECORDED] = "recorded", [API_PENDING] = "pending", [API_UNKNOWN] = "unknown"};
    static const int codes[] = {[API_RECORDED] = 200, [API_PENDING] = 202, [API_UNKNOWN] = 404};
    char tok[EVENT_TOKEN_LEN * 6], id[EVENT_ID_LEN * 6], at[API_CREATED_AT_MAX * 6];
    int n;

    /* Ours (the token) or PostgreSQL's (a uuid, a formatted time): escaped all the same. */
    if (api_json_escape(token, tok, sizeof(tok)) < 0)
        return -1;
    if (state == API_RECORDED) {
        if (api_json_escape(event_id, id, sizeof(id)) < 0 ||
            api_json_escape(created_at, at, sizeof(at)) < 0)
            return -1;
        n = snprintf(r->body, sizeof(r->body),
                     "{\"status\":\"recorded\",\"token\":\"%s\",\"event_id\":\"%s\","
                     "\"created_at\":\"%s\"}\n",
                     tok, id, at);
    } else {
        n = snprintf(r->body, sizeof(r->body), "{\"status\":\"%s\",\"token\":\"%s\"}\n",
                     names[state], tok);
    }
    if (n < 0 || (size_t)n >= sizeof(r->body))
        return -1;
    r->status = codes[state];
    return 0;
}

int api_stats(struct api_reply *r, const char *group, const char *const *names,
              const int64_t *values, size_t n, int64_t accepted)
{
    size_t len = 0;
    int k;

    k = snprintf(r->body, sizeof(r->body), "{\"group\":\"%s\",", group);
    if (k < 0 || (size_t)k >= sizeof(r->body))
        return -1;
    len = (size_t)k;
    for (size_t i = 0; i < n; i++) {
        k = snprintf(r->body + len, sizeof(r->body) - len, "\"%s\":%" PRId64 ",", names[i],
                     values[i]);
        if (k < 0 || (size_t)k >= sizeof(r->body) - len)
            return -1;
        len += (size_t)k;
    }
    k = snprintf(r->body + len, sizeof(r->body) - len, "\"accepted\":%" PRId64 "}\n", accepted);
    if (k < 0 || (size_t)k >= sizeof(r->body) - len)
        return -1;
    r->status = 200;
    return 0;
}

/* ---- --candidates -------------------------------------------------------- */

int api_candidates_parse(const char *spec, struct api_candidates *c, char *errstr, size_t errsize)
{
    char why[160];

    memset(c, 0, sizeof(*c));
    if (ranges_parse(spec, 1, INT64_MAX, c->r, API_CANDIDATE_RANGES, &c->n, why, sizeof(why)) !=
        0) {
        snprintf(errstr, errsize, "candidate list \"%s\": %s", spec, why);
        return -1;
    }
    return 0;
}

int api_candidate_known(const struct api_candidates *c, int64_t id)
{
    if (!c || c->n == 0)
        return id >= 1;
    return ranges_has(c->r, c->n, id);
}

size_t api_candidates_list(const struct api_candidates *c, int64_t *ids, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < c->n && n < max; i++)
        for (int64_t id = c->r[i].lo; n < max; id++) {
            ids[n++] = id;
            if (id == c->r[i].hi)
                break;
        }
    return n;
}
