/*
 * http.c - libmicrohttpd server for the vote API. See http.h.
 *
 * Life of a vote request (struct request, one per HTTP request):
 *
 *   headers   api_begin(): 404/405/415/413 answered at once, else read on
 *   body      bytes appended up to max_body (the buffer grows with them,
 *             a declared Content-Length reserves nothing); more is counted
 *             only; all of it must arrive by the guard's deadline (guard.h)
 *   complete  api_vote() -> 400/413, or publish + suspend the connection
 *   resumed   by the delivery report (REPORTED) or the timer (TIMED_OUT)
 *   answered  202 / 503; MHD's completion callback drops the last ref
 *
 * A status read (GET /votes/{u}/{c}, /tallies, /stats) never queries on an
 * MHD thread: "complete" hands it to reads.h's workers and suspends the
 * connection (REQ_READING) until the worker's answer resumes it
 * (REQ_READ_DONE); a fresh cached /tallies is answered at once.
 *
 * With an Idempotency-Key (and Redis), "complete" first claims the key with
 * SET NX; a key already there is answered from it (202 replay, 409, 422) and
 * nothing is published. The 202 turns the claim into "done" for the window,
 * a 503 releases it (compare-and-delete) so the client's retry can proceed.
 *
 * The server lock guards request state, reference counts and the pending
 * list. Every suspended request has the same timeout, so the pending list
 * is ordered by deadline and the timer only ever looks at its head.
 */
#include "http.h"
#include "api.h"
#include "config.h"
#include "guard.h"
#include "idem.h"
#include "log.h"
#include "metrics.h"
#include "page.h"
#include "publisher.h"
#include "reads.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define HTTP_THREADS          2
#define HTTP_CONN_LIMIT       4096
#define HTTP_FD_RESERVE       256 /* descriptors kept for Kafka, logs, status lookups */
#define HTTP_CONN_TIMEOUT_S   10  /* at least; longer if the delivery timeout is */
#define HTTP_READY_EVERY_MS   1000
#define HTTP_READY_TIMEOUT_MS 1000
#define HTTP_IDEM_MARGIN_MS   5000 /* an in-flight claim outlives the delivery timeout by this */
#define HTTP_REQUEST_ID_LEN   17   /* 16 hex digits + NUL */

enum req_state {
    REQ_BODY,      /* reading the request */
    REQ_WAITING,   /* suspended, event handed to the publisher */
    REQ_REPORTED,  /* delivery report arrived in time */
    REQ_TIMED_OUT, /* no report within the delivery timeout (or shutdown) */
    REQ_READING,   /* suspended, a status read handed to reads.h */
    REQ_READ_DONE, /* its answer is in read */
};

struct request {
    struct publish_done done; /* first member: the delivery report finds us by it */
    struct http_server *srv;
    struct MHD_Connection *conn;
    const char *method, *url; /* libmicrohttpd's, valid until the request completes */
    struct api_reply reply;
    enum req_state state; /* under srv->lock from REQ_WAITING on */
    int refs;             /* under srv->lock: the connection + a pending report */
    char *body;
    size_t len, cap; /* cap grows with the body: never max_body up front */
    int overflow;
    struct guard_conn *gc; /* the connection's request deadline */
    int64_t deadline_ms;
    struct request *prev, *next; /* pending list, REQ_WAITING only */
    int report_err;
    char report_errname[96];
    int32_t partition;
    int64_t offset;
    int idem_claimed;                    /* we hold the in-flight claim of reply.idem_key */
    int replayed;                        /* answering from a stored Idempotency-Key result */
    char idem_hash[IDEM_HASH_HEX];       /* of the body */
    char idem_value[IDEM_HASH_HEX + 64]; /* the in-flight value we claimed */
    struct read_job read;                /* a status read's question and answer */
};

struct http_server {
    struct MHD_Daemon *daemon;
    MHD_socket quiesced_fd; /* closed at once: only marks that quiesce happened */
    struct publisher *pub;
    struct metrics *metrics;
    size_t max_body;
    int64_t timeout_ms;

    pthread_mutex_t lock;
    pthread_cond_t wake;     /* CLOCK_MONOTONIC: new head of the pending list, or stop */
    pthread_cond_t stopping; /* CLOCK_MONOTONIC: the prober's sleep, cut short by stop */
    struct request *head, *tail;
    int running;
    pthread_t timer, prober;
    int has_timer, has_prober;
    atomic_int ready;
    atomic_int draining; /* set under lock: no request is suspended once it is */
    atomic_int resuming; /* MHD_resume_connection() calls decided but not yet made */
    _Atomic int64_t active;
    _Atomic int64_t accepted; /* 202s given for new events (not replays) */
    atomic_int idem_warned;
    uint32_t id_prefix;          /* random per process: ids of two producers differ */
    _Atomic uint32_t id_counter; /* request ids: prefix + counter */
    struct reads *reads;         /* status reads; not owned */
    struct idem *idem;           /* Idempotency-Key in Redis, NULL without Redis; not owned */
    int64_t idem_window_ms;
    struct api_candidates candidates; /* n == 0: any id */
    char *page;                       /* GET /, with the candidates' buttons */

    struct guard *guard; /* whole-request deadlines */
    unsigned int per_ip_limit;
    struct metric *m_timeouts, *m_body_bytes, *m_reaped;
};

/* ---- responses ---------------------------------------------------------- */

static void count_request(struct http_server *s, const char *route, int status)
{
    char labels[96];

    snprintf(labels, sizeof(labels), "route=\"%s\",status=\"%d\"", route, status);
    metric_add(metrics_counter(s->metrics, "tadak_http_requests_total", labels,
                               "HTTP requests by route and status"),
               1);
}

static enum MHD_Result send_text(struct request *r, int status, const char *body,
                                 const char *content_type)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;

    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED && r->reply.allow[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->reply.allow);
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (r->replayed)
        MHD_add_response_header(resp, "Idempotent-Replayed", "true");
    /* Draining: keep-alive clients must not send their next request here. */
    if (atomic_load(&r->srv->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (r->reply.action == API_PAGE || r->reply.action == API_TALLIES ||
        r->reply.action == API_STATS || r->reply.action == API_STATUS)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    ret = MHD_queue_response(r->conn, (unsigned int)status, resp);
    MHD_destroy_response(resp);
    count_request(r->srv, r->reply.route, status);
    /* The client's own words (its path is unescaped: %0A is a newline) go to log.c raw. */
    if (status >= 400 && status < 500) {
        size_t n = strlen(body);
        log_debug("request refused", "method=%s path=%s status=%d reply=%.*s", r->method, r->url,
                  status, (int)(n > 0 && body[n - 1] == '\n' ? n - 1 : n), body);
    }
    return ret;
}

static enum MHD_Result send_reply(struct request *r)
{
    return send_text(r, r->reply.status, r->reply.body, "application/json");
}

/*
 * A 503 for something that failed behind us. The client learns what failed
 * in general terms and a request id; the cause (libpq's or hiredis' words,
 * with host names and roles in them) goes only to the log, under that id.
 */
static enum MHD_Result unavailable(struct request *r, const char *what, const char *why)
{
    struct http_server *s = r->srv;
    char id[HTTP_REQUEST_ID_LEN];

    snprintf(id, sizeof(id), "%08" PRIx32 "%08" PRIx32, s->id_prefix,
             atomic_fetch_add(&s->id_counter, 1));
    log_warn("request failed", "request_id=%s route=%s status=503 detail=\"%s\" error=\"%s\"", id,
             r->reply.route, what, why);
    api_error_id(&r->reply, 503, "unavailable", what, id);
    return send_reply(r);
}

/* ---- request lifetime --------------------------------------------------- */

static void request_unref_locked(struct request *r, int *free_it)
{
    *free_it = --r->refs == 0;
}

static void request_free(struct request *r)
{
    if (r->cap)
        metric_add(r->srv->m_body_bytes, -(int64_t)r->cap);
    free(r->body);
    free(r->read.tallies);
    free(r);
}

/* Keep n more body bytes: the buffer doubles as the body grows, up to max_body. */
static void body_append(struct request *r, const char *data, size_t n)
{
    size_t want = r->len + n, cap = r->cap ? r->cap : 256;

    while (cap < want)
        cap *= 2;
    if (cap > r->srv->max_body)
        cap = r->srv->max_body; /* want <= max_body: the caller checked */
    if (cap != r->cap) {
        r->body = xrealloc(r->body, cap);
        metric_add(r->srv->m_body_bytes, (int64_t)(cap - r->cap));
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len = want;
}

static void pending_remove(struct http_server *s, struct request *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        s->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        s->tail = r->prev;
    r->prev = r->next = NULL;
}

static void pending_append(struct http_server *s, struct request *r)
{
    r->prev = s->tail;
    r->next = NULL;
    if (s->tail)
        s->tail->next = r;
    else
        s->head = r;
    s->tail = r;
    if (s->head == r)
        pthread_cond_signal(&s->wake);
}

/*
 * MHD_resume_connection() is called after the server lock is released, so
 * our lock is never held while MHD takes its own. The request stays alive
 * meanwhile: its connection is suspended, so MHD cannot complete it.
 */

/* Runs on the publisher's delivery report thread. */
static void on_delivery(struct publish_done *done, const struct publish_report *rep)
{
    struct request *r = (struct request *)done;
    struct http_server *s = r->srv;
    struct MHD_Connection *resume = NULL;
    int free_it;

    pthread_mutex_lock(&s->lock);
    if (r->state == REQ_WAITING) {
        r->report_err = rep->err;
        util_strlcpy(r->report_errname, rep->errname, sizeof(r->report_errname));
        r->partition = rep->partition;
        r->offset = rep->offset;
        r->state = REQ_REPORTED;
        pending_remove(s, r);
        resume = r->conn;
        atomic_fetch_add(&s->resuming, 1);
    } else {
        /* The client already has its 503; the event may still have landed. */
        log_info("late delivery report", "token=%s event_id=%s error=\"%s\"", r->reply.vote.token,
                 r->reply.vote.event_id, rep->errname);
    }
    request_unref_locked(r, &free_it);
    pthread_mutex_unlock(&s->lock);
    if (resume) {
        MHD_resume_connection(resume);
        atomic_fetch_sub(&s->resuming, 1);
    }
    if (free_it)
        request_free(r);
}

/* Detach every pending request whose deadline passed (all, with now < 0). */
static struct request *take_expired_locked(struct http_server *s, int64_t now)
{
    struct request *out = NULL;

    while (s->head && (now < 0 || s->head->deadline_ms <= now)) {
        struct request *r = s->head;
        pending_remove(s, r);
        r->state = REQ_TIMED_OUT;
        r->next = out; /* reuse the link: r is off the pending list now */
        out = r;
        atomic_fetch_add(&s->resuming, 1);
    }
    return out;
}

static void resume_all(struct http_server *s, struct request *list)
{
    while (list) {
        struct request *next = list->next;
        list->next = NULL;
        MHD_resume_connection(list->conn);
        atomic_fetch_sub(&s->resuming, 1);
        list = next;
    }
}

static void *timer_main(void *arg)
{
    struct http_server *s = arg;
    struct timespec ts;

    pthread_mutex_lock(&s->lock);
    while (s->running) {
        int64_t now = util_now_ms(), wait_ms = 200, next_reap;
        struct request *expired = take_expired_locked(s, now);
        int reaped = guard_reap(s->guard, now, &next_reap);

        if (reaped)
            metric_add(s->m_reaped, reaped);
        if (next_reap - now < wait_ms)
            wait_ms = next_reap - now;

        if (expired) {
            pthread_mutex_unlock(&s->lock);
            for (struct request *r = expired; r; r = r->next)
                metric_add(s->m_timeouts, 1);
            resume_all(s, expired);
            pthread_mutex_lock(&s->lock);
            continue;
        }
        if (s->head && s->head->deadline_ms - now < wait_ms)
            wait_ms = s->head->deadline_ms - now;
        if (wait_ms < 1)
            wait_ms = 1;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L)
            ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&s->wake, &s->lock, &ts);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* /readyz must not block an MHD thread on Kafka: probe here, cache the answer. */
static void *prober_main(void *arg)
{
    struct http_server *s = arg;
    struct timespec ts;
    int running = 1;

    while (running) {
        int ok = publisher_probe(s->pub, HTTP_READY_TIMEOUT_MS);
        if (atomic_exchange(&s->ready, ok) != ok)
            log_info(ok ? "broker reachable" : "broker unreachable", "ready=%d", ok);
        pthread_mutex_lock(&s->lock);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += HTTP_READY_EVERY_MS / 1000;
        if (s->running)
            pthread_cond_timedwait(&s->stopping, &s->lock, &ts);
        running = s->running;
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

/* ---- Idempotency-Key ---------------------------------------------------- */

/* Claim the key, or answer from it: 1 = answered (*ret set), 0 = publish. */
static int idem_begin(struct request *r, enum MHD_Result *ret)
{
    struct http_server *s = r->srv;
    char old[1024], err[256], legacy[IDEM_LEGACY_HEX];
    const char *body;
    size_t len;
    int existed;

    if (!r->reply.idem_key[0])
        return 0;
    if (!s->idem) {
        if (!atomic_exchange(&s->idem_warned, 1))
            log_warn("Idempotency-Key ignored: no Redis configured",
                     "hint=\"set REDIS_URL or --redis-url\"");
        return 0;
    }
    idem_hash_hex(r->body, r->len, r->idem_hash);
    idem_inflight_value(r->idem_hash, r->reply.vote.event_id, r->idem_value, sizeof(r->idem_value));
    if (idem_claim(s->idem, r->reply.idem_key, r->idem_value, s->timeout_ms + HTTP_IDEM_MARGIN_MS,
                   old, sizeof(old), &existed, err, sizeof(err)) != 0) {
        *ret = unavailable(r, "the Idempotency-Key store (Redis) is unavailable; retry", err);
        return 1;
    }
    if (!existed) {
        r->idem_claimed = 1;
        return 0;
    }
    idem_legacy_hex(r->body, r->len, legacy); /* values stored by the previous version */
    switch (idem_decide(old, r->idem_hash, legacy, &body, &len)) {
    case IDEM_REPLAY:
        r->replayed = 1;
        *ret = send_text(r, MHD_HTTP_ACCEPTED, body, "application/json");
        return 1;
    case IDEM_IN_PROGRESS:
        api_error(&r->reply, 409, "request_in_progress",
                  "a request with this Idempotency-Key is still being processed; retry later");
        break;
    case IDEM_MISMATCH:
        api_error(&r->reply, 422, "idempotency_key_reused",
                  "this Idempotency-Key was already used with a different request body");
        break;
    }
    *ret = send_reply(r);
    return 1;
}

/* The request's fate is known: keep its 202 for the window, or free the key. */
static void idem_finish(struct request *r, const char *accepted_body)
{
    struct http_server *s = r->srv;
    char done[1024];

    if (!r->idem_claimed)
        return;
    r->idem_claimed = 0;
    if (accepted_body && idem_done_value(r->idem_hash, accepted_body, done, sizeof(done)) > 0)
        idem_settle(s->idem, r->reply.idem_key, r->idem_value, done, s->idem_window_ms);
    else
        idem_release(s->idem, r->reply.idem_key, r->idem_value);
}

/* ---- route handlers ----------------------------------------------------- */

static enum MHD_Result shutting_down(struct request *r)
{
    api_error(&r->reply, 503, "shutting_down", "this server is shutting down; retry");
    return send_reply(r);
}

static enum MHD_Result handle_vote(struct request *r)
{
    struct http_server *s = r->srv;
    char err[256];
    enum MHD_Result ret;

    if (api_vote(r->body, r->len, r->overflow, s->max_body, &s->candidates, &r->reply))
        return send_reply(r);
    event_new_id(r->reply.vote.event_id);
    r->reply.vote.ts_ms = util_wall_ms();
    if (idem_begin(r, &ret))
        return ret;

    /* Hold the lock across send + suspend: the report must find us suspended. */
    pthread_mutex_lock(&s->lock);
    if (atomic_load(&s->draining)) { /* nothing may be suspended once the drain began */
        pthread_mutex_unlock(&s->lock);
        idem_finish(r, NULL);
        return shutting_down(r);
    }
    if (publisher_send(s->pub, &r->reply.vote, &r->done, PUBLISH_NOWAIT, err, sizeof(err)) != 0) {
        pthread_mutex_unlock(&s->lock);
        idem_finish(r, NULL);
        return unavailable(r, "the vote could not be queued for Kafka; retry", err);
    }
    r->refs++;
    r->state = REQ_WAITING;
    r->deadline_ms = util_now_ms() + s->timeout_ms;
    pending_append(s, r);
    MHD_suspend_connection(r->conn);
    pthread_mutex_unlock(&s->lock);
    return MHD_YES;
}

/* The connection was resumed: the vote's fate is known (or its time is up). */
static enum MHD_Result answer_vote(struct request *r)
{
    struct http_server *s = r->srv;
    char body[512], why[160];
    enum req_state state;

    pthread_mutex_lock(&s->lock);
    state = r->state;
    pthread_mutex_unlock(&s->lock);
    if (state == REQ_REPORTED && r->report_err == 0 &&
        api_accepted(&r->reply.vote, r->partition, r->offset, body, sizeof(body)) > 0) {
        atomic_fetch_add(&s->accepted, 1);
        idem_finish(r, body);
        return send_text(r, MHD_HTTP_ACCEPTED, body, "application/json");
    }
    idem_finish(r, NULL);
    if (state == REQ_REPORTED)
        return unavailable(r, "Kafka did not accept the vote; retry", r->report_errname);
    snprintf(why, sizeof(why), "no delivery report within %" PRId64 " ms", s->timeout_ms);
    return unavailable(r, "Kafka did not acknowledge the vote in time; retry", why);
}

static enum MHD_Result handle_health(struct request *r)
{
    return send_text(r, MHD_HTTP_OK, "{\"status\":\"ok\"}\n", "application/json");
}

static enum MHD_Result handle_ready(struct request *r)
{
    if (atomic_load(&r->srv->ready))
        return send_text(r, MHD_HTTP_OK, "{\"status\":\"ready\"}\n", "application/json");
    api_error(&r->reply, 503, "not_ready", "no Kafka broker answered a metadata request");
    return send_reply(r);
}

static enum MHD_Result handle_metrics(struct request *r)
{
    char *text = metrics_render(r->srv->metrics);
    enum MHD_Result ret = send_text(r, MHD_HTTP_OK, text, "text/plain; version=0.0.4");

    free(text);
    return ret;
}

static enum MHD_Result not_configured(struct request *r, const char *what)
{
    char detail[160];

    snprintf(detail, sizeof(detail), "set %s to enable this route", what);
    api_error(&r->reply, 503, "not_configured", detail);
    return send_reply(r);
}

/* Runs on a reads.h worker (or in reads_stop): the answer is in r->read. */
static void on_read(struct read_job *job)
{
    struct request *r = (struct request *)((char *)job - offsetof(struct request, read));
    struct http_server *s = r->srv;
    struct MHD_Connection *conn = r->conn;
    int free_it;

    pthread_mutex_lock(&s->lock);
    r->state = REQ_READ_DONE;
    atomic_fetch_add(&s->resuming, 1);
    /* Suspended, the connection cannot complete: its reference is not the last. */
    request_unref_locked(r, &free_it);
    pthread_mutex_unlock(&s->lock);
    MHD_resume_connection(conn);
    atomic_fetch_sub(&s->resuming, 1);
}

/* Hand a status read to the workers and suspend until on_read resumes us. */
static enum MHD_Result start_read(struct request *r, enum read_kind kind)
{
    struct http_server *s = r->srv;

    r->read.fn = on_read;
    r->read.kind = kind;
    r->read.user_id = r->reply.user_id;
    r->read.candidate_id = r->reply.candidate_id;
    /* Hold the lock across submit + suspend: the answer must find us suspended. */
    pthread_mutex_lock(&s->lock);
    if (atomic_load(&s->draining)) {
        pthread_mutex_unlock(&s->lock);
        return shutting_down(r);
    }
    if (reads_submit(s->reads, &r->read) != 0) {
        pthread_mutex_unlock(&s->lock);
        return unavailable(r, "too many status reads at once; retry", "read queue full");
    }
    r->refs++;
    r->state = REQ_READING;
    MHD_suspend_connection(r->conn);
    pthread_mutex_unlock(&s->lock);
    return MHD_YES;
}

static enum MHD_Result answer_vote_status(struct request *r)
{
    static const char *const names[] = {"recorded", "pending", "unknown"};
    static const int codes[] = {MHD_HTTP_OK, MHD_HTTP_ACCEPTED, MHD_HTTP_NOT_FOUND};
    const struct read_job *j = &r->read;
    char token[EVENT_TOKEN_LEN], body[512];

    event_token(r->reply.user_id, r->reply.candidate_id, token, sizeof(token));
    if (j->state == READ_RECORDED)
        snprintf(body, sizeof(body),
                 "{\"status\":\"recorded\",\"token\":\"%s\",\"event_id\":\"%s\","
                 "\"created_at\":\"%s\"}\n",
                 token, j->vote.event_id, j->vote.created_at);
    else
        snprintf(body, sizeof(body), "{\"status\":\"%s\",\"token\":\"%s\"}\n", names[j->state],
                 token);
    return send_text(r, codes[j->state], body, "application/json");
}

static enum MHD_Result answer_stats(struct request *r)
{
    char body[512];
    size_t n = 0;

    n += (size_t)snprintf(body, sizeof(body), "{");
    for (size_t i = 0; i < GATE_NSTATS; i++)
        n += (size_t)snprintf(body + n, sizeof(body) - n, "\"%s\":%" PRId64 ",", gate_stat_names[i],
                              r->read.stats[i]);
    snprintf(body + n, sizeof(body) - n, "\"accepted\":%" PRId64 "}\n",
             (int64_t)atomic_load(&r->srv->accepted));
    return send_text(r, MHD_HTTP_OK, body, "application/json");
}

/* The connection was resumed with a status read's answer. */
static enum MHD_Result answer_read(struct request *r)
{
    enum MHD_Result ret;

    if (r->read.shutting_down)
        return shutting_down(r);
    if (r->read.failed)
        return unavailable(r, r->read.what, r->read.why);
    switch (r->read.kind) {
    case READ_VOTE:
        return answer_vote_status(r);
    case READ_STATS:
        return answer_stats(r);
    case READ_TALLIES:
        break;
    }
    ret = send_text(r, MHD_HTTP_OK, r->read.tallies, "application/json");
    free(r->read.tallies);
    r->read.tallies = NULL;
    return ret;
}

static enum MHD_Result handle_status(struct request *r)
{
    if (!reads_has_db(r->srv->reads))
        return not_configured(r, "DATABASE_URL (or --database-url)");
    return start_read(r, READ_VOTE);
}

static enum MHD_Result handle_tallies(struct request *r)
{
    char *json;
    enum MHD_Result ret;

    if (!reads_has_db(r->srv->reads))
        return not_configured(r, "DATABASE_URL (or --database-url)");
    if (!reads_tallies_cached(r->srv->reads, &json))
        return start_read(r, READ_TALLIES);
    ret = send_text(r, MHD_HTTP_OK, json, "application/json");
    free(json);
    return ret;
}

static enum MHD_Result handle_stats(struct request *r)
{
    if (!reads_has_redis(r->srv->reads))
        return not_configured(r, "REDIS_URL (or --redis-url)");
    return start_read(r, READ_STATS);
}

static enum MHD_Result handle_page(struct request *r)
{
    return send_text(r, MHD_HTTP_OK, r->srv->page, "text/html; charset=utf-8");
}

static enum MHD_Result (*const handlers[])(struct request *) = {
    [API_VOTE] = handle_vote,       [API_HEALTH] = handle_health, [API_READY] = handle_ready,
    [API_METRICS] = handle_metrics, [API_PAGE] = handle_page,     [API_STATUS] = handle_status,
    [API_TALLIES] = handle_tallies, [API_STATS] = handle_stats,
};

/* ---- libmicrohttpd callbacks -------------------------------------------- */

static struct guard_conn *connection_guard(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return info ? info->socket_context : NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct http_server *s = cls;
    struct request *r = *con_cls;

    (void)version;
    if (!r) {
        r = xcalloc(1, sizeof(*r));
        r->done.fn = on_delivery;
        r->srv = s;
        r->conn = conn;
        r->method = method;
        r->url = url;
        r->refs = 1;
        r->state = REQ_BODY;
        r->gc = connection_guard(conn);
        *con_cls = r;
        atomic_fetch_add(&s->active, 1);
        if (api_begin(
                method, url,
                MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
                MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH),
                s->max_body, &r->reply))
            return send_reply(r);
        if (atomic_load(&s->draining))
            return shutting_down(r);
        if (r->reply.action == API_VOTE) {
            const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
            if (key && api_idempotency_key(key, &r->reply))
                return send_reply(r);
        }
        return MHD_YES;
    }
    if (r->state == REQ_READ_DONE)
        return answer_read(r);
    if (r->state != REQ_BODY)
        return answer_vote(r);
    if (*upload_data_size > 0) {
        /* Keep at most max_body bytes; beyond that only remember it overflowed. */
        if (r->reply.action == API_VOTE && !r->overflow) {
            if (r->len + *upload_data_size > s->max_body)
                r->overflow = 1;
            else
                body_append(r, upload_data, *upload_data_size);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->reply.action == API_RESPOND)
        return MHD_YES;          /* answered at header time already */
    guard_busy(s->guard, r->gc); /* all of it arrived in time: serve it */
    return handlers[r->reply.action](r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct request *r = *con_cls;
    struct guard_conn *gc;
    int free_it;

    (void)conn, (void)toe;
    if (!r)
        return;
    gc = r->gc; /* r may be gone once the lock is released */
    *con_cls = NULL;
    pthread_mutex_lock(&s->lock);
    if (r->state == REQ_WAITING) { /* only if MHD tears down a suspended connection */
        pending_remove(s, r);
        r->state = REQ_TIMED_OUT;
    }
    request_unref_locked(r, &free_it);
    pthread_mutex_unlock(&s->lock);
    atomic_fetch_sub(&s->active, 1);
    guard_idle(s->guard, gc, util_now_ms()); /* the next request is due */
    if (free_it)
        request_free(r);
}

/* Accepted and closed connections: the guard tracks each one in between. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct http_server *s = cls;
    const union MHD_ConnectionInfo *info;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        info = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        *socket_context = info ? guard_open(s->guard, info->connect_fd, util_now_ms()) : NULL;
    } else {
        /* Before libmicrohttpd closes the descriptor: the guard forgets it first. */
        guard_close(s->guard, *socket_context);
        *socket_context = NULL;
    }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    size_t n;

    (void)cls;
    vsnprintf(line, sizeof(line), fmt, ap);
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    log_warn("libmicrohttpd", "detail=\"%s\"", line); /* log.c escapes it */
}

/* ---- lifecycle ---------------------------------------------------------- */

/*
 * Connections MHD may hold. The usual soft limit of 1024 descriptors would
 * let ~1000 idle sockets make accept() fail with EMFILE, and MHD then stops
 * accepting anyone until they time out; so raise the soft limit towards the
 * hard one, and never let MHD reach whatever limit remains.
 */
static unsigned int conn_limit(void)
{
    struct rlimit rl;
    rlim_t want = HTTP_CONN_LIMIT + HTTP_FD_RESERVE;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return HTTP_CONN_LIMIT;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        struct rlimit raised = rl;
        raised.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl.rlim_cur = raised.rlim_cur;
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
        return HTTP_CONN_LIMIT;
    if (rl.rlim_cur <= 2 * HTTP_FD_RESERVE)
        return (unsigned int)(rl.rlim_cur / 2);
    log_warn("few file descriptors: fewer HTTP connections", "nofile=%llu connections=%llu",
             (unsigned long long)rl.rlim_cur, (unsigned long long)(rl.rlim_cur - HTTP_FD_RESERVE));
    return (unsigned int)(rl.rlim_cur - HTTP_FD_RESERVE);
}

static int parse_listen(const char *hostport, struct sockaddr_in *sa, char *errstr, size_t errsize)
{
    char host[256];
    int port;

    if (config_split_hostport(hostport, host, sizeof(host), &port) != 0) {
        snprintf(errstr, errsize, "listen address \"%s\" is not HOST:PORT", hostport);
        return -1;
    }
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0)
        util_strlcpy(host, "127.0.0.1", sizeof(host));
    if (inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &sa->sin_addr) != 1) {
        snprintf(errstr, errsize, "listen host \"%s\" is not an IPv4 address", host);
        return -1;
    }
    return 0;
}

struct http_server *http_start(const struct http_opts *o, struct publisher *pub,
                               struct metrics *metrics, char *errstr, size_t errsize)
{
    struct http_server *s = xcalloc(1, sizeof(*s));
    struct sockaddr_in sa;
    pthread_condattr_t ca;
    /* A resumed connection must not be reaped as idle for the time it waited. */
    unsigned int conn_timeout_s = (unsigned int)(o->delivery_timeout_ms / 1000 + 5);

    if (conn_timeout_s < HTTP_CONN_TIMEOUT_S)
        conn_timeout_s = HTTP_CONN_TIMEOUT_S;

    s->pub = pub;
    s->metrics = metrics;
    s->max_body = (size_t)o->max_body;
    s->timeout_ms = o->delivery_timeout_ms;
    s->reads = o->reads;
    s->idem = o->idem;
    s->idem_window_ms = o->idem_window_ms > 0 ? o->idem_window_ms : 86400000;
    s->quiesced_fd = MHD_INVALID_SOCKET;
    s->running = 1;
    if (getrandom(&s->id_prefix, sizeof(s->id_prefix), 0) != sizeof(s->id_prefix))
        s->id_prefix = (uint32_t)util_wall_ms() ^ (uint32_t)getpid();
    if (o->candidates)
        s->candidates = *o->candidates;
    {
        int64_t ids[PAGE_MAX_CANDIDATES];
        s->page = page_render(ids, api_candidates_list(&s->candidates, ids, PAGE_MAX_CANDIDATES));
    }
    s->m_timeouts = metrics_counter(metrics, "tadak_http_delivery_timeouts_total", "",
                                    "Votes answered 503 because no delivery report came in time");
    s->m_body_bytes = metrics_gauge(metrics, "tadak_http_body_bytes", "",
                                    "Bytes allocated for request bodies being received");
    s->m_reaped = metrics_counter(metrics, "tadak_http_request_timeouts_total", "",
                                  "Connections closed because a request did not arrive in time");
    s->guard = guard_new(o->request_timeout_ms > 0 ? o->request_timeout_ms : 10000);
    s->per_ip_limit = o->per_ip_limit;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &ca);
    pthread_cond_init(&s->stopping, &ca);
    pthread_condattr_destroy(&ca);

    if (parse_listen(o->listen, &sa, errstr, errsize) != 0)
        goto fail;
    if (pthread_create(&s->timer, NULL, timer_main, s) != 0) {
        snprintf(errstr, errsize, "cannot start the timeout thread");
        goto fail;
    }
    s->has_timer = 1;
    if (pthread_create(&s->prober, NULL, prober_main, s) != 0) {
        snprintf(errstr, errsize, "cannot start the readiness thread");
        goto fail;
    }
    s->has_prober = 1;
    s->daemon =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                             MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
                         0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_THREAD_POOL_SIZE,
                         (unsigned int)HTTP_THREADS, MHD_OPTION_CONNECTION_LIMIT, conn_limit(),
                         MHD_OPTION_CONNECTION_TIMEOUT, conn_timeout_s, MHD_OPTION_NOTIFY_COMPLETED,
                         on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
                         MHD_OPTION_PER_IP_CONNECTION_LIMIT, s->per_ip_limit, MHD_OPTION_END);
    if (!s->daemon) {
        snprintf(errstr, errsize, "cannot listen on %s: %s", o->listen, strerror(errno));
        goto fail;
    }
    return s;
fail:
    http_stop(s);
    http_free(s);
    return NULL;
}

void http_quiesce(struct http_server *s)
{
    pthread_mutex_lock(&s->lock);
    atomic_store(&s->draining, 1);
    pthread_mutex_unlock(&s->lock);
    /* MHD hands the listening socket back; closing it refuses new clients now. */
    if (s->daemon && s->quiesced_fd == MHD_INVALID_SOCKET) {
        s->quiesced_fd = MHD_quiesce_daemon(s->daemon);
        if (s->quiesced_fd != MHD_INVALID_SOCKET)
            close(s->quiesced_fd);
    }
}

int64_t http_active(struct http_server *s)
{
    return atomic_load(&s->active);
}

void http_stop(struct http_server *s)
{
    struct request *rest;

    /*
     * MHD_stop_daemon() aborts the process if it finds a suspended
     * connection. With draining set (under the lock) nothing is suspended
     * any more; the rest is answered 503; and every resume decided so far,
     * here or by a late delivery report, has been made before MHD stops.
     */
    pthread_mutex_lock(&s->lock);
    atomic_store(&s->draining, 1);
    rest = take_expired_locked(s, -1);
    s->running = 0;
    pthread_cond_broadcast(&s->wake);
    pthread_cond_broadcast(&s->stopping);
    pthread_mutex_unlock(&s->lock);
    resume_all(s, rest);
    if (s->has_timer)
        pthread_join(s->timer, NULL);
    if (s->has_prober)
        pthread_join(s->prober, NULL);
    s->has_timer = s->has_prober = 0;
    reads_stop(s->reads); /* every status read answered, its connection resumed */
    while (atomic_load(&s->resuming) > 0) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}

void http_free(struct http_server *s)
{
    if (!s)
        return;
    pthread_cond_destroy(&s->wake);
    pthread_cond_destroy(&s->stopping);
    pthread_mutex_destroy(&s->lock);
    free(s->page);
    guard_free(s->guard);
    free(s);
}
