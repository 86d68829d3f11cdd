/*
 * api.h - the HTTP API's decisions, without a socket.
 *
 * Everything the server decides from the request alone lives here as pure
 * functions, so cmocka can test every status code: the routes table
 * {method, path, action}, the header checks (404, 405 with Allow, 415 for
 * a missing or non-JSON Content-Type, 413 from Content-Length), vote validation (400 via
 * event_parse, 413 from the streamed byte count) and the JSON body of every answer
 * (but /tallies', which reads.c keeps ready-made in its cache).
 *
 *   api_begin(method, path, content_type, content_length, max_body, &reply)
 *       at header time: 1 = reply is final (answer now), 0 = read the body
 *   api_vote(body, len, overflow, max_body, candidates_or_null, user, &reply)
 *       1 = reply is final (an error), 0 = reply.vote is ready to publish;
 *       a vote for a candidate not in the list is a 400 unknown_candidate;
 *       user > 0 (a verified token's): "user_id" may be left out, and one
 *       that differs is a 403 user_mismatch
 *   api_candidates_parse("1-4,7", &c, err, n)   --candidates: 0 / -1
 *   api_candidate_known(&c_or_null, id)         1 if id is a candidate (NULL: all are)
 *   api_candidates_list(&c, ids, max)           the first max ids, ascending (the page)
 *   api_idempotency_key(header, user, &reply)
 *       POST /votes with an Idempotency-Key: 1 = 400 (bad key), 0 = reply.idem_key set,
 *       in a namespace: "u{user}:{key}" for a verified user (user > 0), else "a:{key}"
 *   api_error(&reply, status, error, detail)       a JSON error reply
 *   api_error_id(&reply, status, error, detail, id)   the same with "request_id" (5xx:
 *       the detail says what failed in general terms, the log has the cause under id)
 *   api_accepted(&vote, partition, offset, buf, size)   the 202 body
 *   api_health(&reply)                          GET /healthz: 200 {"status":"ok"}
 *   api_ready(&reply, ready)                    GET /readyz: 200 {"status":"ready"} or 503
 *   api_vote_status(&reply, state, token, event_id, created_at)
 *       GET /votes/{u}/{c}: 200 recorded (with event_id, created_at), 202 pending,
 *       404 unknown; 0, or -1 if it does not fit the reply
 *   api_stats(&reply, group, names, values, n, accepted)   GET /stats: the consumer
 *       group's n counters + "accepted" (group: [A-Za-z0-9._-], not escaped: the
 *       --stats-group row's CONFIG_NAME type admits nothing else)
 *   api_vote_path(path, &user, &candidate, &reply)   GET /votes/{user_id}/{candidate_id}:
 *       1 = ids parsed, 0 = not that shape, -1 = reply is a 400
 *
 * Event types (evtype.h): every type has the vote's routes under /events,
 * served by the same actions, so one code path and one edge policy serve
 * them all; reply.type says which type a route is for (the vote for
 * /votes):
 *
 *   POST /events/{type}            API_VOTE (POST /events/vote = POST /votes)
 *   GET  /events/{type}/{k1}/...   API_STATUS, reply.token the key's token
 *   GET  /events/{type}/counts     API_COUNTS, the query read by api_counts_query
 *                                  (for a one-field key, the key "counts" is this route)
 *   an unknown type: 404 unknown_type with the known types in "types"
 *
 *   api_route(set, method, path, ...)   api_begin with a set of types (NULL: the
 *       vote only); api_begin is api_route(NULL, ...)
 *   api_event(type, body, len, overflow, max_body, candidates, user, &reply)
 *       api_vote for any type: 400 naming the field, 403 user_mismatch on
 *       the type's identity field, 400 not_on_ballot off its ballot (the
 *       vote's ballot is candidates: 400 unknown_candidate)
 *   api_counts_query(type, names, values, n, &reply)   the query parameters of
 *       GET /events/{type}/counts: by=FIELD (one of the type's counts fields)
 *       and FIELD=VALUE equality filters (checked as a key part would be):
 *       0 = reply.counts is set, 1 = reply is a 400 naming the parameter
 *
 * The builders of a 2xx answer set reply.status and reply.body only, never
 * reply.action (routes.c's Cache-Control follows the action).
 */
#ifndef TADAK_API_H
#define TADAK_API_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "ranges.h"

enum api_action {
    API_RESPOND, /* reply.status + reply.body are the answer */
    API_VOTE,    /* POST /votes: parse the body, publish, answer after the report */
    API_HEALTH,  /* GET /healthz */
    API_READY,   /* GET /readyz */
    API_METRICS, /* GET /metrics */
    API_PAGE,    /* GET /: the vote page */
    API_STATUS,  /* GET /votes/{user_id}/{candidate_id}: recorded, pending or unknown */
    API_TALLIES, /* GET /tallies: rows per candidate */
    API_STATS,   /* GET /stats: the consumers' counters + our own */
    API_COUNTS,  /* GET /events/{type}/counts: rows per value of a field */
};

#define API_IDEM_KEY_MAX     255 /* longest Idempotency-Key accepted */
#define API_CREATED_AT_MAX   40  /* a vote's created_at, as PostgreSQL formats it */
#define API_CANDIDATE_RANGES 64  /* ranges in a --candidates list */
#define API_COUNTS_PARAMS    32  /* query parameters a counts request may have */

/* The configured candidates: sorted, merged ranges of ids. */
struct api_candidates {
    size_t n;
    struct range r[API_CANDIDATE_RANGES];
};

/* What GET /votes/{user_id}/{candidate_id} found. */
enum api_vote_state {
    API_RECORDED, /* the row is in PostgreSQL */
    API_PENDING,  /* a consumer holds the token's Redis lock */
    API_UNKNOWN,  /* neither */
};

/* GET /events/{type}/counts' query, checked: group by `by`, where each field equals its value. */
struct api_counts {
    int by;        /* index of a counts field */
    size_t nwhere; /* filters, in field order (so one query has one cache key) */
    struct {
        int field;
        char value[EVTYPE_STRING_MAX + 1]; /* canonical text: "7", "yes" */
    } where[EVTYPE_MAX_FIELDS];
};

struct api_reply {
    enum api_action action;
    int status;                    /* meaningful for API_RESPOND */
    const char *route;             /* metrics label: the matched path, or "other" */
    char allow[32];                /* Allow header of a 405, else "" */
    char body[640];                /* JSON body of an API_RESPOND reply */
    const struct evtype *type;     /* API_VOTE, API_STATUS, API_COUNTS; NULL: the vote */
    struct event ev;               /* API_VOTE, after api_vote() returned 0 */
    char text[EVTYPE_TEXT_MAX];    /* ev's strings */
    int64_t user_id, candidate_id; /* API_STATUS: the vote's ids; another type's
                                      identity field when in its key, else 0 */
    char token[EVENT_TOKEN_LEN];   /* API_STATUS: the key's token */
    struct api_counts counts;      /* API_COUNTS, after api_counts_query() */
    char idem_key[API_IDEM_KEY_MAX + 24 + EVTYPE_NAME_MAX]; /* API_VOTE: the Idempotency-Key
                                             after its namespace ("u{user}:" or "a:"; another
                                             type's "u{user}/{type}:"), or "" */
};

int api_begin(const char *method, const char *path, const char *content_type,
              const char *content_length, size_t max_body, struct api_reply *r);
int api_route(const struct evtypes *set, const char *method, const char *path,
              const char *content_type, const char *content_length, size_t max_body,
              struct api_reply *r);
int api_event(const struct evtype *t, const char *body, size_t len, int overflow, size_t max_body,
              const struct api_candidates *candidates, int64_t user, struct api_reply *r);
int api_counts_query(const struct evtype *t, const char *const *names, const char *const *values,
                     size_t n, struct api_reply *r);
int api_vote(const char *body, size_t len, int overflow, size_t max_body,
             const struct api_candidates *candidates, int64_t user, struct api_reply *r);
int api_candidates_parse(const char *spec, struct api_candidates *c, char *errstr, size_t errsize);
int api_candidate_known(const struct api_candidates *c, int64_t id);
size_t api_candidates_list(const struct api_candidates *c, int64_t *ids, size_t max);
void api_error(struct api_reply *r, int status, const char *error, const char *detail);
void api_error_id(struct api_reply *r, int status, const char *error, const char *detail,
                  const char *request_id);
int api_accepted(const struct event *v, int32_t partition, int64_t offset, char *buf, size_t size);
void api_health(struct api_reply *r);
void api_ready(struct api_reply *r, int ready);
int api_vote_status(struct api_reply *r, enum api_vote_state state, const char *token,
                    const char *event_id, const char *created_at);
int api_stats(struct api_reply *r, const char *group, const char *const *names,
              const int64_t *values, size_t n, int64_t accepted);
int api_json_escape(const char *s, char *buf, size_t size);
int api_idempotency_key(const char *header, int64_t user, struct api_reply *r);
int api_vote_path(const char *path, int64_t *user_id, int64_t *candidate_id, struct api_reply *r);

#endif
