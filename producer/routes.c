/*
 * routes.c - what each route of the HTTP API answers: the handler table
 * the server core runs (routes.h, http.h).
 *
 * A route runs on an MHD thread once its request is complete, and never
 * waits there: a vote is handed to the publisher and a status read to
 * reads.h's workers, the connection suspended (core->suspend), and the
 * answer given once it is resumed (routes_resume):
 *
 *   POST /votes, POST /events/{type}
 *                 api_event() -> 400/413; with an Idempotency-Key, its
 *                 claim handed to idem.h + suspend; resumed: 503 (Redis
 *                 failed or too slow), answered from the key (202 replay,
 *                 409, 422), or on; publish + suspend; resumed: 202, or
 *                 503 (failed, or no report in time)
 *   GET /votes/{u}/{c}, /events/{type}/{key...}, /stats   a status read;
 *                 resumed: its answer
 *   GET /tallies, /events/{type}/counts   the cached answer while fresh,
 *                 else a status read
 *   GET /, /healthz, /readyz, /metrics   answered at once
 *
 * With an Idempotency-Key (and Redis) a vote first claims the key with
 * SET NX, on idem.h's threads; a key already there is answered from it and
 * nothing is published. The 202 turns the claim into the stored answer for
 * the window, a 503 releases it (compare-and-delete) so the client's retry
 * can proceed; both are queued, never waited for.
 */
#include "routes.h"
#include "api.h"
#include "edge.h"
#include "gate.h"
#include "idem.h"
#include "log.h"
#include "metrics.h"
#include "page.h"
#include "publisher.h"
#include "reads.h"
#include "ready.h"
#include "util.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define ROUTES_IDEM_MARGIN_MS 5000 /* an in-flight claim outlives the delivery timeout by this */
#define ROUTES_REQUEST_ID_LEN 17   /* 16 hex digits + NUL */

struct routes {
    const struct http_core *core;
    struct publisher *pub;
    struct metrics *metrics;
    struct reads *reads;
    struct idem *idem;
    struct edge *edge;
    struct ready *ready;
    size_t max_body;
    int64_t timeout_ms;      /* the delivery timeout */
    int64_t idem_timeout_ms; /* an Idempotency-Key claim's */
    int64_t idem_window_ms;
    struct api_candidates candidates; /* n == 0: any id */
    const struct evtypes *types;      /* NULL: the vote only */
    char *page;                       /* GET /, with the candidates' buttons */
    _Atomic int64_t accepted;         /* 202s given for new events (not replays) */
    atomic_int idem_warned;
    uint32_t id_prefix;          /* random per process: ids of two producers differ */
    _Atomic uint32_t id_counter; /* request ids: prefix + counter */
    struct metric *m_timeouts, *m_idem_timeouts;
};

/* What a suspended request waits for. */
enum route_wait { WAIT_NONE, WAIT_PUBLISH, WAIT_CLAIM, WAIT_READ };

/* One request, the routes' side of it: the core's http_req carries it. */
struct route_req {
    struct publish_completion completion; /* first member: the delivery report finds us by it */
    struct routes *rt;
    struct http_req *hr;
    struct api_reply reply;
    struct edge_request edge; /* what the edge decided at header time */
    int replayed;             /* answering from a stored Idempotency-Key result */
    enum route_wait wait;     /* set before each suspension, read once resumed */
    const char *body;         /* the core's, valid while the request is */
    size_t len;
    int overflow;

    /* Set by the delivery report (under the core's lock), read once resumed. */
    int report_err;
    char report_errname[96];
    int32_t partition;
    int64_t offset;

    /* Idempotency-Key and status reads. */
    struct idem_claim claim;             /* the key's claim, answered by idem.h's workers */
    int idem_claimed;                    /* we hold the in-flight claim of reply.idem_key */
    char idem_hash[IDEM_HASH_HEX];       /* of the body */
    char idem_value[IDEM_HASH_HEX + 64]; /* the in-flight value we claimed */
    struct read_job read;                /* a status read's question and answer */
};

/* ---- answers ------------------------------------------------------------ */

static void count_request(struct routes *rt, const char *route, int status)
{
    char labels[96];

    snprintf(labels, sizeof(labels), "route=\"%s\",status=\"%d\"", route, status);
    metric_add(metrics_counter(rt->metrics, "tadak_http_requests_total", labels,
                               "HTTP requests by route and status"),
               1);
}

static enum MHD_Result route_send(struct route_req *r, int status, const char *body,
                                  const char *content_type)
{
    enum MHD_Result ret = r->rt->core->send(r->hr, status, body, content_type);

    count_request(r->rt, r->reply.route, status);
    return ret;
}

static enum MHD_Result route_send_reply(struct route_req *r)
{
    return route_send(r, r->reply.status, r->reply.body, "application/json");
}

/*
 * A 503 for something that failed behind us. The client learns what failed
 * in general terms and a request id; the cause (libpq's or hiredis' words,
 * with host names and roles in them) goes only to the log, under that id.
 */
static enum MHD_Result route_unavailable(struct route_req *r, const char *what, const char *why)
{
    struct routes *rt = r->rt;
    char id[ROUTES_REQUEST_ID_LEN];

    snprintf(id, sizeof(id), "%08" PRIx32 "%08" PRIx32, rt->id_prefix,
             atomic_fetch_add(&rt->id_counter, 1));
    log_warn("request failed", "request_id=%s route=%s status=503 detail=\"%s\" error=\"%s\"", id,
             r->reply.route, what, why);
    api_error_id(&r->reply, 503, "unavailable", what, id);
    return route_send_reply(r);
}

static enum MHD_Result route_shutting_down(struct route_req *r)
{
    api_error(&r->reply, 503, "shutting_down", "this server is shutting down; retry");
    return route_send_reply(r);
}

/* The handlers' headers: on every answer, before the core queues it. */
static void route_headers(void *req, int status, struct MHD_Response *resp)
{
    struct route_req *r = req;
    enum api_action a = r->reply.action;

    if (status == MHD_HTTP_METHOD_NOT_ALLOWED && r->reply.allow[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->reply.allow);
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (r->replayed)
        MHD_add_response_header(resp, "Idempotent-Replayed", "true");
    edge_headers(r->rt->edge, &r->edge, &r->reply, status, resp);
    if (a == API_PAGE || a == API_TALLIES || a == API_STATS || a == API_STATUS || a == API_COUNTS)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
}

/*
 * Suspend r until start's work answers it (routes_resume): MHD_YES, or the
 * answer now when the drain began or start failed (503, what for the client).
 */
static enum MHD_Result
hand_over(struct route_req *r, enum route_wait wait, int64_t timeout_ms,
          int (*start)(void *req, int64_t deadline_ms, char *err, size_t errsize), const char *what)
{
    char err[64];

    r->wait = wait;
    switch (r->rt->core->suspend(r->hr, timeout_ms, start, err, sizeof(err))) {
    case 0:
        return MHD_YES;
    case 1:
        return route_shutting_down(r);
    default:
        return route_unavailable(r, what, err);
    }
}

/* ---- completions: on the publisher's, idem.h's or reads.h's threads ------ */

/* Under the core's lock: the report is kept if r still waits for it. */
static void store_report(void *req, const void *arg, int late)
{
    struct route_req *r = req;
    const struct publish_report *rep = arg;

    if (late) {
        /* The client already has its 503; the event may still have landed. */
        log_info("late delivery report", "token=%s event_id=%s error=\"%s\"", r->reply.ev.token,
                 r->reply.ev.event_id, rep->errname);
        return;
    }
    r->report_err = rep->err;
    util_strlcpy(r->report_errname, rep->errname, sizeof(r->report_errname));
    r->partition = rep->partition;
    r->offset = rep->offset;
}

static void on_delivery(struct publish_completion *cb, const struct publish_report *rep)
{
    struct route_req *r = (struct route_req *)cb;

    r->rt->core->wake(r->hr, store_report, rep);
}

/* The answer is in r->read. */
static void on_read(struct read_job *job)
{
    struct route_req *r = (struct route_req *)((char *)job - offsetof(struct route_req, read));

    r->rt->core->wake(r->hr, NULL, NULL);
}

/*
 * The claim's answer is in r->claim. 1 when r no longer waits for it (its
 * deadline passed, or the drain answered it): the worker then gives back a
 * key it took.
 */
static int on_claim(struct idem_claim *c)
{
    struct route_req *r = (struct route_req *)((char *)c - offsetof(struct route_req, claim));

    return r->rt->core->wake(r->hr, NULL, NULL);
}

/* ---- Idempotency-Key ---------------------------------------------------- */

#define IDEM_UNAVAILABLE "the Idempotency-Key store (Redis) is unavailable; retry"

static enum MHD_Result publish(struct route_req *r);

/* Under the core's lock (suspend): the answer must find us suspended. */
static int start_claim(void *req, int64_t deadline_ms, char *err, size_t errsize)
{
    struct route_req *r = req;
    struct idem_claim *c = &r->claim;

    c->key = r->reply.idem_key;
    c->value = r->idem_value;
    c->ttl_ms = r->rt->timeout_ms + ROUTES_IDEM_MARGIN_MS;
    c->deadline_ms = deadline_ms;
    if (idem_claim(r->rt->idem, c) == 0)
        return 0;
    util_strlcpy(err, "Idempotency-Key queue full", errsize);
    return -1;
}

/* A vote with an Idempotency-Key (and Redis): hand its claim to idem.h and suspend. */
static enum MHD_Result claim_key(struct route_req *r)
{
    idem_hash_hex(r->body, r->len, r->idem_hash);
    idem_inflight_value(r->idem_hash, r->reply.ev.event_id, r->idem_value, sizeof(r->idem_value));
    return hand_over(r, WAIT_CLAIM, r->rt->idem_timeout_ms, start_claim, IDEM_UNAVAILABLE);
}

/* Resumed with the claim's answer, or at its deadline: publish, or answer from the key. */
static enum MHD_Result answer_claim(struct route_req *r, enum http_wake how)
{
    const struct idem_claim *c = &r->claim; /* not read when late: a worker may hold it */
    char why[96];
    const char *body;
    size_t len;

    if (how != HTTP_WOKEN) {
        snprintf(why, sizeof(why), "no answer from Redis within %" PRId64 " ms",
                 r->rt->idem_timeout_ms);
        return route_unavailable(r, IDEM_UNAVAILABLE, why);
    }
    if (c->shutting_down)
        return route_shutting_down(r);
    if (c->failed)
        return route_unavailable(r, IDEM_UNAVAILABLE, c->why);
    if (!c->existed) {
        r->idem_claimed = 1;
        return publish(r);
    }
    switch (idem_decide(c->old, r->idem_hash, &body, &len)) {
    case IDEM_REPLAY:
        r->replayed = 1;
        return route_send(r, MHD_HTTP_ACCEPTED, body, "application/json");
    case IDEM_IN_PROGRESS:
        api_error(&r->reply, 409, "request_in_progress",
                  "a request with this Idempotency-Key is still being processed; retry later");
        break;
    case IDEM_MISMATCH:
        api_error(&r->reply, 422, "idempotency_key_reused",
                  "this Idempotency-Key was already used with a different request body");
        break;
    }
    return route_send_reply(r);
}

/*
 * The request's fate is known: keep its 202 for the window, or free the key.
 * Queued, never waited for: the worker of this key runs it before any later
 * claim of the same key, so a retry sent after this 202 finds it settled.
 */
static void idem_finish(struct route_req *r, const char *accepted_body)
{
    struct routes *rt = r->rt;
    char stored[1024];

    if (!r->idem_claimed)
        return;
    r->idem_claimed = 0;
    if (accepted_body &&
        idem_accepted_value(r->idem_hash, accepted_body, stored, sizeof(stored)) > 0)
        idem_settle(rt->idem, r->reply.idem_key, r->idem_value, stored, rt->idem_window_ms);
    else
        idem_release(rt->idem, r->reply.idem_key, r->idem_value);
}

/* ---- POST /votes -------------------------------------------------------- */

/* Under the core's lock (suspend): the report must find us suspended. */
static int start_publish(void *req, int64_t deadline_ms, char *err, size_t errsize)
{
    struct route_req *r = req;

    (void)deadline_ms; /* the publisher has its own, the same delivery timeout */
    return publisher_send(r->rt->pub, &r->reply.ev, &r->completion, PUBLISH_NOWAIT, err, errsize);
}

static enum MHD_Result publish(struct route_req *r)
{
    char err[256];

    r->wait = WAIT_PUBLISH;
    switch (r->rt->core->suspend(r->hr, r->rt->timeout_ms, start_publish, err, sizeof(err))) {
    case 0:
        return MHD_YES;
    case 1:
        idem_finish(r, NULL);
        return route_shutting_down(r);
    default:
        idem_finish(r, NULL);
        return route_unavailable(r, "the vote could not be queued for Kafka; retry", err);
    }
}

static enum MHD_Result handle_vote(struct route_req *r)
{
    struct routes *rt = r->rt;

    if (api_event(r->reply.type, r->body, r->len, r->overflow, rt->max_body, &rt->candidates,
                  r->edge.user, &r->reply))
        return route_send_reply(r);
    event_new_id(r->reply.ev.event_id);
    r->reply.ev.ts_ms = util_wall_ms();
    if (!r->reply.idem_key[0])
        return publish(r);
    if (rt->idem)
        return claim_key(r);
    if (!atomic_exchange(&rt->idem_warned, 1))
        log_warn("Idempotency-Key ignored: no Redis configured",
                 "hint=\"set REDIS_URL or --redis-url\"");
    return publish(r);
}

/* The connection was resumed: the vote's fate is known (or its time is up). */
static enum MHD_Result answer_vote(struct route_req *r, enum http_wake how)
{
    struct routes *rt = r->rt;
    char body[512], why[160];

    if (how == HTTP_WOKEN && r->report_err == 0 &&
        api_accepted(&r->reply.ev, r->partition, r->offset, body, sizeof(body)) > 0) {
        atomic_fetch_add(&rt->accepted, 1);
        idem_finish(r, body);
        return route_send(r, MHD_HTTP_ACCEPTED, body, "application/json");
    }
    idem_finish(r, NULL);
    if (how == HTTP_WOKEN)
        return route_unavailable(r, "Kafka did not accept the vote; retry", r->report_errname);
    snprintf(why, sizeof(why), "no delivery report within %" PRId64 " ms", rt->timeout_ms);
    return route_unavailable(r, "Kafka did not acknowledge the vote in time; retry", why);
}

/* ---- answered at once ----------------------------------------------------- */

static enum MHD_Result handle_health(struct route_req *r)
{
    api_health(&r->reply);
    return route_send_reply(r);
}

static enum MHD_Result handle_ready(struct route_req *r)
{
    api_ready(&r->reply, ready_get(r->rt->ready));
    return route_send_reply(r);
}

static enum MHD_Result handle_metrics(struct route_req *r)
{
    char *text = metrics_render(r->rt->metrics);
    enum MHD_Result ret = route_send(r, MHD_HTTP_OK, text, "text/plain; version=0.0.4");

    free(text);
    return ret;
}

static enum MHD_Result handle_page(struct route_req *r)
{
    return route_send(r, MHD_HTTP_OK, r->rt->page, "text/html; charset=utf-8");
}

/* ---- status reads: GET /votes/{u}/{c}, /tallies, /stats ------------------ */

static enum MHD_Result not_configured(struct route_req *r, const char *what)
{
    char detail[160];

    snprintf(detail, sizeof(detail), "set %s to enable this route", what);
    api_error(&r->reply, 503, "not_configured", detail);
    return route_send_reply(r);
}

/* Under the core's lock (suspend): the answer must find us suspended. */
static int start_read_job(void *req, int64_t deadline_ms, char *err, size_t errsize)
{
    struct route_req *r = req;

    (void)deadline_ms; /* none: reads.h answers every job, reads_stop() too */
    if (reads_submit(r->rt->reads, &r->read) == 0)
        return 0;
    util_strlcpy(err, "read queue full", errsize);
    return -1;
}

/* Hand a status read to the workers; the answer comes in routes_resume(). */
static enum MHD_Result start_read(struct route_req *r, enum read_kind kind)
{
    r->read.kind = kind;
    r->read.type = r->reply.type;
    util_strlcpy(r->read.token, r->reply.token, sizeof(r->read.token));
    return hand_over(r, WAIT_READ, 0, start_read_job, "too many status reads at once; retry");
}

static enum MHD_Result answer_vote_status(struct route_req *r)
{
    static const enum api_vote_state states[] = {
        [READ_RECORDED] = API_RECORDED, [READ_PENDING] = API_PENDING, [READ_UNKNOWN] = API_UNKNOWN};
    const struct read_job *j = &r->read;

    if (api_vote_status(&r->reply, states[j->state], r->reply.token, j->vote.event_id,
                        j->vote.created_at))
        return route_unavailable(r, "the status could not be answered", "reply too long");
    return route_send_reply(r);
}

static enum MHD_Result answer_stats(struct route_req *r)
{
    if (api_stats(&r->reply, reads_stats_group(r->rt->reads), gate_stat_names, r->read.stats,
                  GATE_NSTATS, (int64_t)atomic_load(&r->rt->accepted)))
        return route_unavailable(r, "the counters could not be answered", "reply too long");
    return route_send_reply(r);
}

/* The connection was resumed with a status read's answer. */
static enum MHD_Result answer_read(struct route_req *r)
{
    enum MHD_Result ret;

    if (r->read.shutting_down)
        return route_shutting_down(r);
    if (r->read.failed)
        return route_unavailable(r, r->read.what, r->read.why);
    switch (r->read.kind) {
    case READ_VOTE:
        return answer_vote_status(r);
    case READ_STATS:
        return answer_stats(r);
    case READ_TALLIES:
    case READ_COUNTS:
        break;
    }
    ret = route_send(r, MHD_HTTP_OK, r->read.json, "application/json");
    free(r->read.json);
    r->read.json = NULL;
    return ret;
}

static enum MHD_Result handle_status(struct route_req *r)
{
    if (!reads_has_db(r->rt->reads))
        return not_configured(r, "DATABASE_URL (or --database-url)");
    return start_read(r, READ_VOTE);
}

static enum MHD_Result handle_tallies(struct route_req *r)
{
    char *json;
    enum MHD_Result ret;

    if (!reads_has_db(r->rt->reads))
        return not_configured(r, "DATABASE_URL (or --database-url)");
    if (!reads_tallies_cached(r->rt->reads, &json))
        return start_read(r, READ_TALLIES);
    ret = route_send(r, MHD_HTTP_OK, json, "application/json");
    free(json);
    return ret;
}

/* GET /events/{type}/counts: the query was checked at header time (check_counts). */
static enum MHD_Result handle_counts(struct route_req *r)
{
    const struct api_counts *q = &r->reply.counts;
    struct read_job *j = &r->read;
    char *json;
    enum MHD_Result ret;

    if (!reads_has_db(r->rt->reads))
        return not_configured(r, "DATABASE_URL (or --database-url)");
    j->type = r->reply.type;
    j->by = q->by;
    j->nwhere = q->nwhere;
    for (size_t i = 0; i < q->nwhere; i++)
        j->where[i] = (struct store_filter){.field = q->where[i].field, .value = q->where[i].value};
    if (!reads_counts_cached(r->rt->reads, j, &json))
        return start_read(r, READ_COUNTS);
    ret = route_send(r, MHD_HTTP_OK, json, "application/json");
    free(json);
    return ret;
}

static enum MHD_Result handle_stats(struct route_req *r)
{
    if (!reads_has_redis(r->rt->reads))
        return not_configured(r, "REDIS_URL (or --redis-url)");
    return start_read(r, READ_STATS);
}

/* ---- the handler table ---------------------------------------------------- */

/* api.c's routes table maps method + path to an action; this, an action to its handler. */
static enum MHD_Result (*const handlers[])(struct route_req *) = {
    [API_VOTE] = handle_vote,       [API_HEALTH] = handle_health, [API_READY] = handle_ready,
    [API_METRICS] = handle_metrics, [API_PAGE] = handle_page,     [API_STATUS] = handle_status,
    [API_TALLIES] = handle_tallies, [API_STATS] = handle_stats,   [API_COUNTS] = handle_counts,
};

/* The query parameters of a counts request, as libmicrohttpd decoded them. */
struct query_args {
    size_t n;
    const char *names[API_COUNTS_PARAMS + 1], *values[API_COUNTS_PARAMS + 1];
};

static enum MHD_Result take_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                                const char *value)
{
    struct query_args *q = cls;

    (void)kind;
    if (q->n > API_COUNTS_PARAMS)
        return MHD_NO; /* one too many is enough for the 400 */
    q->names[q->n] = key;
    q->values[q->n++] = value;
    return MHD_YES;
}

/* GET /events/{type}/counts: 1 when its query is a 400 (in r->reply). */
static int check_counts(struct route_req *r, struct MHD_Connection *conn)
{
    struct query_args q = {0};

    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, take_arg, &q);
    return api_counts_query(r->reply.type, q.names, q.values, q.n, &r->reply);
}

/* The header-time checks: an answer now (action API_RESPOND), or MHD_YES to read on. */
static enum MHD_Result check_headers(struct route_req *r, struct MHD_Connection *conn,
                                     const char *method, const char *url)
{
    struct routes *rt = r->rt;
    const char *key;
    int final = api_route(
        rt->types, method, url,
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH),
        rt->max_body, &r->reply);

    if (edge_admit(rt->edge, conn, method, final, &r->reply, &r->edge))
        return route_send_reply(r);
    if (rt->core->draining(r->hr))
        return route_shutting_down(r);
    if (r->reply.action == API_COUNTS && check_counts(r, conn))
        return route_send_reply(r);
    if (r->reply.action != API_VOTE)
        return MHD_YES;
    key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
    if (key && api_idempotency_key(key, r->edge.user, &r->reply))
        return route_send_reply(r);
    return MHD_YES;
}

static enum MHD_Result routes_begin(void *arg, struct http_req *hr, void *req,
                                    struct MHD_Connection *conn, const char *method,
                                    const char *url, enum http_body *body)
{
    struct route_req *r = req;
    enum MHD_Result ret;

    r->rt = arg;
    r->hr = hr;
    r->completion.fn = on_delivery;
    r->read.fn = on_read;
    r->claim.done = on_claim;
    ret = check_headers(r, conn, method, url);
    /* Every answer given at header time made the action API_RESPOND (api_error). */
    *body = r->reply.action == API_RESPOND ? HTTP_ANSWERED
            : r->reply.action == API_VOTE  ? HTTP_BODY_KEEP
                                           : HTTP_BODY_DISCARD;
    return ret;
}

static enum MHD_Result routes_serve(void *req, const char *body, size_t len, int overflow)
{
    struct route_req *r = req;

    r->body = body;
    r->len = len;
    r->overflow = overflow;
    return handlers[r->reply.action](r);
}

static enum MHD_Result routes_resume(void *req, enum http_wake how)
{
    struct route_req *r = req;

    if (how == HTTP_EXPIRED && r->wait == WAIT_PUBLISH)
        metric_add(r->rt->m_timeouts, 1);
    if (how == HTTP_EXPIRED && r->wait == WAIT_CLAIM)
        metric_add(r->rt->m_idem_timeouts, 1);
    switch (r->wait) {
    case WAIT_READ:
        return answer_read(r);
    case WAIT_CLAIM:
        return answer_claim(r, how);
    default:
        return answer_vote(r, how);
    }
}

static void routes_done(void *req)
{
    struct route_req *r = req;

    free(r->read.json);
}

/* From http_stop(): every status read and claim answered (the claims' requests already were). */
static void routes_stop(void *arg)
{
    struct routes *rt = arg;

    reads_stop(rt->reads);
    idem_stop(rt->idem);
}

struct routes *routes_new(const struct routes_opts *o)
{
    struct routes *rt = xcalloc(1, sizeof(*rt));
    int64_t ids[PAGE_MAX_CANDIDATES];

    *rt = (struct routes){.core = o->core,
                          .pub = o->pub,
                          .metrics = o->metrics,
                          .reads = o->reads,
                          .idem = o->idem,
                          .edge = o->edge,
                          .ready = o->ready,
                          .max_body = (size_t)o->max_body,
                          .timeout_ms = o->delivery_timeout_ms,
                          .idem_timeout_ms = o->idem_timeout_ms,
                          .idem_window_ms = o->idem_window_ms,
                          .types = o->types};
    if (o->candidates)
        rt->candidates = *o->candidates;
    rt->page = page_render(ids, api_candidates_list(&rt->candidates, ids, PAGE_MAX_CANDIDATES),
                           edge_identity(o->edge));
    if (getrandom(&rt->id_prefix, sizeof(rt->id_prefix), 0) != sizeof(rt->id_prefix))
        rt->id_prefix = (uint32_t)util_wall_ms() ^ (uint32_t)getpid();
    rt->m_timeouts = metrics_counter(o->metrics, "tadak_http_delivery_timeouts_total", "",
                                     "Votes answered 503 because no delivery report came in time");
    rt->m_idem_timeouts =
        metrics_counter(o->metrics, "tadak_http_idempotency_timeouts_total", "",
                        "Votes answered 503 because Redis did not answer an Idempotency-Key claim "
                        "in time");
    return rt;
}

struct http_handlers routes_handlers(struct routes *rt)
{
    return (struct http_handlers){.arg = rt,
                                  .req_size = sizeof(struct route_req),
                                  .begin = routes_begin,
                                  .serve = routes_serve,
                                  .resume = routes_resume,
                                  .headers = route_headers,
                                  .done = routes_done,
                                  .stop = routes_stop};
}

void routes_free(struct routes *rt)
{
    if (!rt)
        return;
    free(rt->page);
    free(rt);
}
