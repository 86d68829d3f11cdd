/*
 * routes.c - what each route of the HTTP API answers. See routes.h for how
 * it meets the server (http.c) and http.h for the API as a whole.
 *
 * A route runs on an MHD thread once its request is complete, and never
 * waits there: a vote is handed to the publisher and a status read to
 * reads.h's workers, the connection suspended (http_suspend), and the
 * answer given once it is resumed (routes_resume):
 *
 *   POST /votes   api_vote() -> 400/413; with an Idempotency-Key, its
 *                 claim handed to idem.h + suspend; resumed: 503 (Redis
 *                 failed or too slow), answered from the key (202 replay,
 *                 409, 422), or on; publish + suspend; resumed: 202, or
 *                 503 (failed, or no report in time)
 *   GET /votes/{u}/{c}, /stats   a status read; resumed: its answer
 *   GET /tallies  the cached answer while fresh, else a status read
 *   GET /, /healthz, /readyz, /metrics   answered at once
 *
 * With an Idempotency-Key (and Redis) a vote first claims the key with
 * SET NX, on idem.h's threads; a key already there is answered from it and
 * nothing is published. The 202 turns the claim into the stored answer for
 * the window, a 503 releases it (compare-and-delete) so the client's retry
 * can proceed; both are queued, never waited for.
 */
#include "routes.h"
#include "gate.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUTES_IDEM_MARGIN_MS 5000 /* an in-flight claim outlives the delivery timeout by this */

/*
 * Suspend r until start's work answers it (routes_resume): MHD_YES, or the
 * answer now when the drain began or start failed (503, what for the client).
 */
static enum MHD_Result hand_over(struct request *r, enum req_state state,
                                 int (*start)(struct request *r, char *err, size_t errsize),
                                 const char *what)
{
    char err[64];

    switch (http_suspend(r, state, start, err, sizeof(err))) {
    case 0:
        return MHD_YES;
    case 1:
        return http_shutting_down(r);
    default:
        return http_unavailable(r, what, err);
    }
}

/* ---- Idempotency-Key ---------------------------------------------------- */

#define IDEM_UNAVAILABLE "the Idempotency-Key store (Redis) is unavailable; retry"

static enum MHD_Result publish(struct request *r);

/* Under the server lock (http_suspend): the answer must find us suspended. */
static int start_claim(struct request *r, char *err, size_t errsize)
{
    struct idem_claim *c = &r->claim;

    c->key = r->reply.idem_key;
    c->value = r->idem_value;
    c->ttl_ms = r->rt->timeout_ms + ROUTES_IDEM_MARGIN_MS;
    c->deadline_ms = r->deadline_ms;
    if (idem_claim(r->rt->idem, c) == 0)
        return 0;
    util_strlcpy(err, "Idempotency-Key queue full", errsize);
    return -1;
}

/* A vote with an Idempotency-Key (and Redis): hand its claim to idem.h and suspend. */
static enum MHD_Result claim_key(struct request *r)
{
    idem_hash_hex(r->body, r->len, r->idem_hash);
    idem_inflight_value(r->idem_hash, r->reply.vote.event_id, r->idem_value, sizeof(r->idem_value));
    return hand_over(r, REQ_CLAIMING, start_claim, IDEM_UNAVAILABLE);
}

/* Resumed with the claim's answer, or at its deadline: publish, or answer from the key. */
static enum MHD_Result answer_claim(struct request *r, enum req_state state)
{
    const struct idem_claim *c = &r->claim; /* not read when late: a worker may hold it */
    char why[96];
    const char *body;
    size_t len;

    if (state == REQ_CLAIM_LATE) {
        snprintf(why, sizeof(why), "no answer from Redis within %" PRId64 " ms",
                 r->rt->idem_timeout_ms);
        return http_unavailable(r, IDEM_UNAVAILABLE, why);
    }
    if (c->shutting_down)
        return http_shutting_down(r);
    if (c->failed)
        return http_unavailable(r, IDEM_UNAVAILABLE, c->why);
    if (!c->existed) {
        r->idem_claimed = 1;
        return publish(r);
    }
    switch (idem_decide(c->old, r->idem_hash, &body, &len)) {
    case IDEM_REPLAY:
        r->replayed = 1;
        return http_send(r, MHD_HTTP_ACCEPTED, body, "application/json");
    case IDEM_IN_PROGRESS:
        api_error(&r->reply, 409, "request_in_progress",
                  "a request with this Idempotency-Key is still being processed; retry later");
        break;
    case IDEM_MISMATCH:
        api_error(&r->reply, 422, "idempotency_key_reused",
                  "this Idempotency-Key was already used with a different request body");
        break;
    }
    return http_send_reply(r);
}

/*
 * The request's fate is known: keep its 202 for the window, or free the key.
 * Queued, never waited for: the worker of this key runs it before any later
 * claim of the same key, so a retry sent after this 202 finds it settled.
 */
static void idem_finish(struct request *r, const char *accepted_body)
{
    struct http_routes *rt = r->rt;
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

/* Under the server lock (http_suspend): the report must find us suspended. */
static int start_publish(struct request *r, char *err, size_t errsize)
{
    return publisher_send(r->rt->pub, &r->reply.vote, &r->completion, PUBLISH_NOWAIT, err, errsize);
}

static enum MHD_Result publish(struct request *r)
{
    char err[256];

    switch (http_suspend(r, REQ_WAITING, start_publish, err, sizeof(err))) {
    case 0:
        return MHD_YES;
    case 1:
        idem_finish(r, NULL);
        return http_shutting_down(r);
    default:
        idem_finish(r, NULL);
        return http_unavailable(r, "the vote could not be queued for Kafka; retry", err);
    }
}

static enum MHD_Result handle_vote(struct request *r)
{
    struct http_routes *rt = r->rt;

    if (api_vote(r->body, r->len, r->overflow, rt->max_body, &rt->candidates, r->edge.user,
                 &r->reply))
        return http_send_reply(r);
    event_new_id(r->reply.vote.event_id);
    r->reply.vote.ts_ms = util_wall_ms();
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
static enum MHD_Result answer_vote(struct request *r, enum req_state state)
{
    struct http_routes *rt = r->rt;
    char body[512], why[160];

    if (state == REQ_REPORTED && r->report_err == 0 &&
        api_accepted(&r->reply.vote, r->partition, r->offset, body, sizeof(body)) > 0) {
        atomic_fetch_add(&rt->accepted, 1);
        idem_finish(r, body);
        return http_send(r, MHD_HTTP_ACCEPTED, body, "application/json");
    }
    idem_finish(r, NULL);
    if (state == REQ_REPORTED)
        return http_unavailable(r, "Kafka did not accept the vote; retry", r->report_errname);
    snprintf(why, sizeof(why), "no delivery report within %" PRId64 " ms", rt->timeout_ms);
    return http_unavailable(r, "Kafka did not acknowledge the vote in time; retry", why);
}

/* ---- answered at once ----------------------------------------------------- */

static enum MHD_Result handle_health(struct request *r)
{
    api_health(&r->reply);
    return http_send_reply(r);
}

static enum MHD_Result handle_ready(struct request *r)
{
    api_ready(&r->reply, atomic_load(&r->rt->ready));
    return http_send_reply(r);
}

static enum MHD_Result handle_metrics(struct request *r)
{
    char *text = metrics_render(r->rt->metrics);
    enum MHD_Result ret = http_send(r, MHD_HTTP_OK, text, "text/plain; version=0.0.4");

    free(text);
    return ret;
}

static enum MHD_Result handle_page(struct request *r)
{
    return http_send(r, MHD_HTTP_OK, r->rt->page, "text/html; charset=utf-8");
}

/* ---- status reads: GET /votes/{u}/{c}, /tallies, /stats ------------------ */

static enum MHD_Result not_configured(struct request *r, const char *what)
{
    char detail[160];

    snprintf(detail, sizeof(detail), "set %s to enable this route", what);
    api_error(&r->reply, 503, "not_configured", detail);
    return http_send_reply(r);
}

/* Under the server lock (http_suspend): the answer must find us suspended. */
static int start_read_job(struct request *r, char *err, size_t errsize)
{
    if (reads_submit(r->rt->reads, &r->read) == 0)
        return 0;
    util_strlcpy(err, "read queue full", errsize);
    return -1;
}

/* Hand a status read to the workers; the answer comes in routes_resume(). */
static enum MHD_Result start_read(struct request *r, enum read_kind kind)
{
    r->read.kind = kind;
    r->read.user_id = r->reply.user_id;
    r->read.candidate_id = r->reply.candidate_id;
    return hand_over(r, REQ_READING, start_read_job, "too many status reads at once; retry");
}

static enum MHD_Result answer_vote_status(struct request *r)
{
    static const enum api_vote_state states[] = {
        [READ_RECORDED] = API_RECORDED, [READ_PENDING] = API_PENDING, [READ_UNKNOWN] = API_UNKNOWN};
    const struct read_job *j = &r->read;
    char token[EVENT_TOKEN_LEN];

    event_token(r->reply.user_id, r->reply.candidate_id, token, sizeof(token));
    if (api_vote_status(&r->reply, states[j->state], token, j->vote.event_id, j->vote.created_at))
        return http_unavailable(r, "the vote's status could not be answered", "reply too long");
    return http_send_reply(r);
}

static enum MHD_Result answer_stats(struct request *r)
{
    if (api_stats(&r->reply, reads_stats_group(r->rt->reads), gate_stat_names, r->read.stats,
                  GATE_NSTATS, (int64_t)atomic_load(&r->rt->accepted)))
        return http_unavailable(r, "the counters could not be answered", "reply too long");
    return http_send_reply(r);
}

/* The connection was resumed with a status read's answer. */
static enum MHD_Result answer_read(struct request *r)
{
    enum MHD_Result ret;

    if (r->read.shutting_down)
        return http_shutting_down(r);
    if (r->read.failed)
        return http_unavailable(r, r->read.what, r->read.why);
    switch (r->read.kind) {
    case READ_VOTE:
        return answer_vote_status(r);
    case READ_STATS:
        return answer_stats(r);
    case READ_TALLIES:
        break;
    }
    ret = http_send(r, MHD_HTTP_OK, r->read.tallies, "application/json");
    free(r->read.tallies);
    r->read.tallies = NULL;
    return ret;
}

static enum MHD_Result handle_status(struct request *r)
{
    if (!reads_has_db(r->rt->reads))
        return not_configured(r, "DATABASE_URL (or --database-url)");
    return start_read(r, READ_VOTE);
}

static enum MHD_Result handle_tallies(struct request *r)
{
    char *json;
    enum MHD_Result ret;

    if (!reads_has_db(r->rt->reads))
        return not_configured(r, "DATABASE_URL (or --database-url)");
    if (!reads_tallies_cached(r->rt->reads, &json))
        return start_read(r, READ_TALLIES);
    ret = http_send(r, MHD_HTTP_OK, json, "application/json");
    free(json);
    return ret;
}

static enum MHD_Result handle_stats(struct request *r)
{
    if (!reads_has_redis(r->rt->reads))
        return not_configured(r, "REDIS_URL (or --redis-url)");
    return start_read(r, READ_STATS);
}

/* ---- the route table ------------------------------------------------------ */

/* api.c's routes table maps method + path to an action; this, an action to its handler. */
static enum MHD_Result (*const handlers[])(struct request *) = {
    [API_VOTE] = handle_vote,       [API_HEALTH] = handle_health, [API_READY] = handle_ready,
    [API_METRICS] = handle_metrics, [API_PAGE] = handle_page,     [API_STATUS] = handle_status,
    [API_TALLIES] = handle_tallies, [API_STATS] = handle_stats,
};

enum MHD_Result routes_serve(struct request *r)
{
    return handlers[r->reply.action](r);
}

enum MHD_Result routes_resume(struct request *r)
{
    enum req_state state;

    if (r->reply.action != API_VOTE)
        return answer_read(r);
    state = http_vote_state(r);
    if (state == REQ_CLAIMED || state == REQ_CLAIM_LATE)
        return answer_claim(r, state);
    return answer_vote(r, state);
}
