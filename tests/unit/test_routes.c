/*
 * test_routes.c - the HTTP API's routes against a fake server core: what is
 * answered (status, body, headers) and in what order a request is
 * suspended, woken and answered, without a socket or a daemon.
 *
 * The routes reach the core only through struct http_core, so the fake here
 * records every send, suspend and wake. Request headers come from a fake
 * connection: this file defines MHD_lookup_connection_value, which the
 * routes and the edge (linked into this binary) then call instead of
 * libmicrohttpd's. Answers are real MHD_Responses (no daemon needed), so the
 * headers the routes add are read back as libmicrohttpd would send them.
 * Votes go to a real publisher on librdkafka's in-process mock cluster, so
 * a publish completes asynchronously on the publisher's own thread, and
 * Idempotency-Key claims to idem.h's workers talking to a fake Redis here
 * that answers SET ... GET with the value a test sets (nil: a new key).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <microhttpd.h>
#include <pthread.h>
#include <time.h>

#include "config.h"
#include "edge.h"
#include "http.h"
#include "idem.h"
#include "log.h"
#include "metrics.h"
#include "publisher.h"
#include "routes.h"
#include "util.h"

#define TOPIC       "votes"
#define DEADLINE_MS 15000
#define VOTE_JSON   "{\"user_id\":7,\"candidate_id\":2}"

/* ---- a fake connection: its request headers ------------------------------ */

struct fake_conn {
    const char *names[4], *values[4];
    const char *args[4], *arg_values[4]; /* the query string's parameters */
};

/* Interposed: the routes and the edge read request headers through this. */
const char *MHD_lookup_connection_value(struct MHD_Connection *connection, enum MHD_ValueKind kind,
                                        const char *key)
{
    const struct fake_conn *c = (const struct fake_conn *)connection;

    (void)kind;
    for (size_t i = 0; i < 4 && c->names[i]; i++)
        if (strcasecmp(c->names[i], key) == 0)
            return c->values[i];
    return NULL;
}

/* Interposed: the routes read a query string's parameters through this. */
int MHD_get_connection_values(struct MHD_Connection *connection, enum MHD_ValueKind kind,
                              MHD_KeyValueIterator iterator, void *iterator_cls)
{
    const struct fake_conn *c = (const struct fake_conn *)connection;
    int n = 0;

    if (kind != MHD_GET_ARGUMENT_KIND)
        return 0;
    for (size_t i = 0; i < 4 && c->args[i]; i++, n++)
        if (iterator(iterator_cls, kind, c->args[i], c->arg_values[i]) != MHD_YES)
            return n + 1;
    return n;
}

/* ---- a fake core: one request at a time, everything recorded ---------------- */

struct answer {
    int status;
    char body[1024], type[64], allow[64], cache[64], retry[16], replayed[16];
    char acao[128], vary[32];
};

struct fake_req {
    void *req; /* the routes' part */
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int suspended, wakes, late_wakes;
    int64_t timeout_ms;
    char events[256]; /* "suspend,wake,send 202," */
    int nsent;
    struct answer last;
};

static struct http_handlers handlers;
static int draining;
static int expire_at_once; /* the deadline passes as soon as a request is suspended */

static void record(struct fake_req *f, const char *event)
{
    size_t n = strlen(f->events);
    snprintf(f->events + n, sizeof(f->events) - n, "%s,", event);
}

static void header_copy(struct MHD_Response *resp, const char *name, char *buf, size_t size)
{
    const char *v = MHD_get_response_header(resp, name);
    util_strlcpy(buf, v ? v : "", size);
}

static enum MHD_Result fake_send(struct http_req *hr, int status, const char *body,
                                 const char *content_type)
{
    struct fake_req *f = (struct fake_req *)hr;
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    struct answer *a = &f->last;
    char event[32];

    assert_non_null(resp);
    handlers.headers(f->req, status, resp);
    memset(a, 0, sizeof(*a));
    a->status = status;
    util_strlcpy(a->body, body, sizeof(a->body));
    util_strlcpy(a->type, content_type, sizeof(a->type));
    header_copy(resp, MHD_HTTP_HEADER_ALLOW, a->allow, sizeof(a->allow));
    header_copy(resp, MHD_HTTP_HEADER_CACHE_CONTROL, a->cache, sizeof(a->cache));
    header_copy(resp, MHD_HTTP_HEADER_RETRY_AFTER, a->retry, sizeof(a->retry));
    header_copy(resp, "Idempotent-Replayed", a->replayed, sizeof(a->replayed));
    header_copy(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN, a->acao, sizeof(a->acao));
    header_copy(resp, MHD_HTTP_HEADER_VARY, a->vary, sizeof(a->vary));
    MHD_destroy_response(resp);
    pthread_mutex_lock(&f->lock);
    snprintf(event, sizeof(event), "send %d", status);
    record(f, event);
    f->nsent++;
    pthread_mutex_unlock(&f->lock);
    return MHD_YES;
}

static int fake_suspend(struct http_req *hr, int64_t timeout_ms,
                        int (*start)(void *req, int64_t deadline_ms, char *err, size_t errsize),
                        char *err, size_t errsize)
{
    struct fake_req *f = (struct fake_req *)hr;
    int rc = 0;

    if (draining)
        return 1;
    pthread_mutex_lock(&f->lock); /* as the core: the completion must find it suspended */
    if (start(f->req, timeout_ms > 0 ? util_now_ms() + timeout_ms : 0, err, errsize) != 0) {
        rc = -1;
    } else {
        f->suspended = !expire_at_once; /* expired: its completion will find it answered */
        f->timeout_ms = timeout_ms;
        record(f, "suspend");
    }
    pthread_mutex_unlock(&f->lock);
    return rc;
}

static int fake_wake(struct http_req *hr, void (*store)(void *req, const void *arg, int late),
                     const void *arg)
{
    struct fake_req *f = (struct fake_req *)hr;
    int late;

    pthread_mutex_lock(&f->lock);
    late = !f->suspended;
    if (store)
        store(f->req, arg, late);
    f->suspended = 0;
    if (late)
        f->late_wakes++;
    else
        f->wakes++;
    record(f, late ? "late wake" : "wake");
    pthread_cond_broadcast(&f->changed);
    pthread_mutex_unlock(&f->lock);
    return late;
}

static int fake_draining(struct http_req *hr)
{
    (void)hr;
    return draining;
}

static const struct http_core fake_core = {
    .send = fake_send, .suspend = fake_suspend, .wake = fake_wake, .draining = fake_draining};

static struct fake_req *fake_new(void)
{
    struct fake_req *f = calloc(1, sizeof(*f));

    assert_non_null(f);
    f->req = calloc(1, handlers.req_size);
    assert_non_null(f->req);
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->changed, NULL);
    return f;
}

static void fake_free(struct fake_req *f)
{
    handlers.done(f->req);
    pthread_cond_destroy(&f->changed);
    pthread_mutex_destroy(&f->lock);
    free(f->req);
    free(f);
}

/* Headers, then (unless answered) the whole body, as the core runs a request. */
static struct fake_req *run(const char *method, const char *url, struct fake_conn *conn,
                            const char *body)
{
    struct fake_req *f = fake_new();
    enum http_body want = HTTP_ANSWERED;
    struct fake_conn none = {.names = {NULL}, .values = {NULL}};

    handlers.begin(handlers.arg, (struct http_req *)f, f->req,
                   (struct MHD_Connection *)(conn ? conn : &none), method, url, &want);
    if (want != HTTP_ANSWERED)
        handlers.serve(f->req, want == HTTP_BODY_KEEP ? body : NULL,
                       want == HTTP_BODY_KEEP && body ? strlen(body) : 0, 0);
    return f;
}

/* Wait, with a deadline, until the publisher's report woke (or tried to wake) f. */
static void wait_wakes(struct fake_req *f, int n)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += DEADLINE_MS / 1000;
    pthread_mutex_lock(&f->lock);
    while (f->wakes + f->late_wakes < n)
        if (pthread_cond_timedwait(&f->changed, &f->lock, &ts) != 0)
            break;
    pthread_mutex_unlock(&f->lock);
    if (f->wakes + f->late_wakes < n)
        fail_msg("no delivery report within %d ms", DEADLINE_MS);
}

/* ---- a fake Redis: SET answers the old value a test chose, the rest +OK ----- */

#define FAKE_REDIS_CONNS 8

static struct {
    int listen_fd, port, stop_fd[2];
    pthread_t thread;
    pthread_mutex_t lock;
    char old[1024]; /* what SET ... GET answers; "": nil */
    int sets;       /* SET commands seen */
} redis = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* One whole RESP command at the front of buf: its length, 0 if not all there yet. */
static size_t resp_command(const char *buf, size_t len, int *is_set)
{
    const char *p = buf, *end = buf + len, *nl;
    long n, argc;

    if (len < 1 || *p != '*' || !(nl = memchr(p, '\n', len)))
        return 0;
    argc = strtol(p + 1, NULL, 10);
    p = nl + 1;
    for (long i = 0; i < argc; i++) {
        if (p >= end || *p != '$' || !(nl = memchr(p, '\n', (size_t)(end - p))))
            return 0;
        n = strtol(p + 1, NULL, 10);
        if (end - (nl + 1) < n + 2)
            return 0;
        if (i == 0)
            *is_set = n == 3 && strncasecmp(nl + 1, "SET", 3) == 0;
        p = nl + 1 + n + 2;
    }
    return (size_t)(p - buf);
}

static void redis_reply(int fd, int is_set)
{
    char out[1200];
    int n;

    pthread_mutex_lock(&redis.lock);
    if (!is_set)
        n = snprintf(out, sizeof(out), "+OK\r\n");
    else if (!redis.old[0])
        n = snprintf(out, sizeof(out), "$-1\r\n");
    else
        n = snprintf(out, sizeof(out), "$%zu\r\n%s\r\n", strlen(redis.old), redis.old);
    redis.sets += is_set;
    pthread_mutex_unlock(&redis.lock);
    if (write(fd, out, (size_t)n) != n) /* the client went away: its worker sees it */
        return;
}

static void *redis_main(void *arg)
{
    struct pollfd fds[FAKE_REDIS_CONNS + 2];
    static char bufs[FAKE_REDIS_CONNS + 2][4096];
    size_t lens[FAKE_REDIS_CONNS + 2] = {0};
    int nfds = 2;

    (void)arg;
    fds[0] = (struct pollfd){.fd = redis.listen_fd, .events = POLLIN};
    fds[1] = (struct pollfd){.fd = redis.stop_fd[0], .events = POLLIN};
    while (poll(fds, (nfds_t)nfds, -1) > 0 && !fds[1].revents) {
        if (fds[0].revents && nfds < FAKE_REDIS_CONNS + 2)
            fds[nfds++] =
                (struct pollfd){.fd = accept(redis.listen_fd, NULL, NULL), .events = POLLIN};
        for (int i = 2; i < nfds; i++) {
            ssize_t got;
            size_t used;
            int is_set = 0;
            if (!fds[i].revents)
                continue;
            got = read(fds[i].fd, bufs[i] + lens[i], sizeof(bufs[i]) - lens[i]);
            if (got <= 0) {
                fds[i].events = 0; /* closed: never polled for input again */
                continue;
            }
            lens[i] += (size_t)got;
            while ((used = resp_command(bufs[i], lens[i], &is_set)) > 0) {
                redis_reply(fds[i].fd, is_set);
                memmove(bufs[i], bufs[i] + used, lens[i] - used);
                lens[i] -= used;
            }
        }
    }
    for (int i = 2; i < nfds; i++)
        close(fds[i].fd);
    return NULL;
}

static void redis_start(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);

    redis.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(redis.listen_fd >= 0);
    assert_int_equal(bind(redis.listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(redis.listen_fd, 16), 0);
    assert_int_equal(getsockname(redis.listen_fd, (struct sockaddr *)&sa, &len), 0);
    redis.port = ntohs(sa.sin_port);
    assert_int_equal(pipe(redis.stop_fd), 0);
    assert_int_equal(pthread_create(&redis.thread, NULL, redis_main, NULL), 0);
}

static void redis_stop(void)
{
    assert_int_equal(write(redis.stop_fd[1], "x", 1), 1);
    pthread_join(redis.thread, NULL);
    close(redis.listen_fd);
    close(redis.stop_fd[0]);
    close(redis.stop_fd[1]);
}

static void redis_answer_set(const char *old)
{
    pthread_mutex_lock(&redis.lock);
    util_strlcpy(redis.old, old ? old : "", sizeof(redis.old));
    pthread_mutex_unlock(&redis.lock);
}

/* ---- fixtures -------------------------------------------------------------- */

struct fixture {
    rd_kafka_t *rk;        /* owns the mock cluster */
    struct evtypes *types; /* the vote and poll_answer */
    struct metrics *metrics;
    struct publisher *pub;
    struct edge *edge;
    struct idem *idem;
    struct routes *rt;
    struct config_list origins;
    char *origin_items[1];
};

static struct fixture fx;
static char allowed_origin[] = "https://app.example";

static struct routes *routes_with(struct edge *edge, struct idem *idem)
{
    struct routes_opts o = {.core = &fake_core,
                            .pub = fx.pub,
                            .metrics = fx.metrics,
                            .edge = edge,
                            .idem = idem,
                            .max_body = 4096,
                            .delivery_timeout_ms = 5000,
                            .idem_window_ms = 86400000,
                            .idem_timeout_ms = 500,
                            .types = fx.types};
    struct routes *rt = routes_new(&o);

    handlers = routes_handlers(rt);
    return rt;
}

#define POLL_JSON "{\"poll_id\":7,\"user_id\":3,\"option_id\":2}"

static const char poll_types[] =
    "{\"types\":{\"poll_answer\":{\"fields\":{\"poll_id\":\"id\",\"user_id\":\"id\","
    "\"option_id\":{\"kind\":\"int\",\"min\":1,\"max\":64}},"
    "\"key\":[\"poll_id\",\"user_id\"],\"identity\":\"user_id\","
    "\"counts\":[\"option_id\",\"poll_id\"]}}}";

static int setup(void **state)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[512];
    struct publisher_opts po = {.topic = TOPIC, .delivery_timeout_ms = 30000, .poller = 1};
    struct edge_opts eo = {.cors_origins = &fx.origins, .cors_max_age_s = 600};
    rd_kafka_mock_cluster_t *mc;

    (void)state;
    log_set_level(LOG_ERROR);
    assert_int_equal(rd_kafka_conf_set(conf, "test.mock.num.brokers", "1", err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    assert_int_equal(rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err)), RD_KAFKA_CONF_OK);
    fx.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    assert_non_null(fx.rk);
    mc = rd_kafka_handle_mock_cluster(fx.rk);
    assert_int_equal(rd_kafka_mock_topic_create(mc, TOPIC, 2, 1), 0);
    assert_int_equal(rd_kafka_mock_topic_create(mc, "poll_answers", 1, 1), 0);
    if (!(fx.types = evtypes_parse(poll_types, strlen(poll_types), "test", err, sizeof(err))))
        fail_msg("evtypes_parse: %s", err);
    po.types = fx.types;
    po.brokers = rd_kafka_mock_cluster_bootstraps(mc);
    fx.metrics = metrics_new();
    if (!(fx.pub = publisher_new(&po, fx.metrics, err, sizeof(err))))
        fail_msg("publisher_new: %s", err);
    fx.origin_items[0] = allowed_origin;
    fx.origins = (struct config_list){.n = 1, .items = fx.origin_items};
    if (!(fx.edge = edge_new(&eo, fx.metrics, err, sizeof(err))))
        fail_msg("edge_new: %s", err);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    publisher_free(fx.pub);
    edge_free(fx.edge);
    metrics_free(fx.metrics);
    rd_kafka_destroy(fx.rk);
    evtypes_free(fx.types);
    return 0;
}

static int routes_plain(void **state)
{
    (void)state;
    draining = 0;
    fx.rt = routes_with(NULL, NULL);
    return 0;
}

static int routes_cors(void **state)
{
    (void)state;
    draining = 0;
    fx.rt = routes_with(fx.edge, NULL);
    return 0;
}

static int routes_idem(void **state)
{
    char url[64], err[256];

    (void)state;
    draining = 0;
    redis_start();
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d/0", redis.port);
    if (!(fx.idem = idem_new(url, "t:", 2000, err, sizeof(err))))
        fail_msg("idem_new: %s", err);
    fx.rt = routes_with(NULL, fx.idem);
    return 0;
}

static int routes_idem_gone(void **state)
{
    (void)state;
    handlers.stop(handlers.arg); /* as http_stop(): idem's workers answered and joined */
    routes_free(fx.rt);
    idem_free(fx.idem);
    fx.idem = NULL;
    redis_stop();
    return 0;
}

static int routes_gone(void **state)
{
    (void)state;
    routes_free(fx.rt);
    fx.rt = NULL;
    return 0;
}

/* ---- the tests --------------------------------------------------------------- */

static void test_unknown_path_404_and_wrong_method_405_with_allow(void **state)
{
    struct fake_req *f;

    (void)state;
    f = run("GET", "/nope", NULL, NULL);
    assert_int_equal(f->last.status, 404);
    assert_string_equal(f->events, "send 404,");
    assert_string_equal(f->last.allow, "");
    fake_free(f);

    f = run("DELETE", "/votes", NULL, NULL);
    assert_int_equal(f->last.status, 405);
    assert_string_equal(f->last.allow, "POST");
    fake_free(f);

    f = run("POST", "/votes/3/4", NULL, NULL);
    assert_int_equal(f->last.status, 405);
    assert_string_equal(f->last.allow, "GET");
    assert_string_equal(f->events, "send 405,");
    fake_free(f);
}

static void test_cache_control_follows_the_action(void **state)
{
    struct fake_req *f;

    (void)state;
    f = run("GET", "/", NULL, NULL);
    assert_int_equal(f->last.status, 200);
    assert_string_equal(f->last.type, "text/html; charset=utf-8");
    assert_string_equal(f->last.cache, "no-store");
    fake_free(f);

    f = run("GET", "/healthz", NULL, NULL);
    assert_int_equal(f->last.status, 200);
    assert_string_equal(f->last.cache, "");
    assert_string_equal(f->last.retry, "");
    fake_free(f);

    /* No database configured: an error reply (API_RESPOND), so no Cache-Control. */
    f = run("GET", "/tallies", NULL, NULL);
    assert_int_equal(f->last.status, 503);
    assert_non_null(strstr(f->last.body, "not_configured"));
    assert_string_equal(f->last.cache, "");
    assert_string_equal(f->last.retry, "1");
    fake_free(f);
}

static void test_not_ready_is_503_with_retry_after(void **state)
{
    struct fake_req *f;

    (void)state;
    f = run("GET", "/readyz", NULL, NULL);
    assert_int_equal(f->last.status, 503);
    assert_string_equal(f->last.retry, "1");
    fake_free(f);
}

static void test_bad_idempotency_key_answered_at_header_time(void **state)
{
    struct fake_conn c = {.names = {"Content-Type", "Idempotency-Key"},
                          .values = {"application/json", "\"\""}};
    struct fake_req *f;

    (void)state;
    f = run("POST", "/votes", &c, VOTE_JSON);
    assert_int_equal(f->last.status, 400);
    assert_non_null(strstr(f->last.body, "invalid_idempotency_key"));
    assert_string_equal(f->events, "send 400,"); /* nothing suspended, nothing published */
    fake_free(f);
}

static void test_draining_answers_shutting_down(void **state)
{
    struct fake_conn c = {.names = {"Content-Type"}, .values = {"application/json"}};
    struct fake_req *f;

    (void)state;
    draining = 1;
    f = run("POST", "/votes", &c, VOTE_JSON);
    draining = 0;
    assert_int_equal(f->last.status, 503);
    assert_non_null(strstr(f->last.body, "shutting_down"));
    assert_string_equal(f->last.retry, "1");
    assert_string_equal(f->events, "send 503,");
    fake_free(f);
}

static void test_vote_suspends_then_report_resumes_to_202(void **state)
{
    struct fake_conn c = {.names = {"Content-Type"}, .values = {"application/json"}};
    struct fake_req *f;

    (void)state;
    f = run("POST", "/votes", &c, VOTE_JSON);
    /* Handed to the publisher: suspended with the delivery timeout, nothing sent yet. */
    assert_int_equal(f->timeout_ms, 5000);
    assert_int_equal(f->nsent, 0);
    wait_wakes(f, 1);
    assert_int_equal(f->wakes, 1);
    handlers.resume(f->req, HTTP_WOKEN);
    assert_string_equal(f->events, "suspend,wake,send 202,");
    assert_non_null(strstr(f->last.body, "\"event_id\""));
    assert_string_equal(f->last.cache, "");
    assert_string_equal(f->last.replayed, "");
    fake_free(f);
}

static void test_vote_expired_is_503_and_the_late_report_is_ignored(void **state)
{
    struct fake_conn c = {.names = {"Content-Type"}, .values = {"application/json"}};
    struct fake_req *f;
    char *text;

    (void)state;
    /* The deadline passes before the report: the core takes it off and resumes. */
    expire_at_once = 1;
    f = run("POST", "/votes", &c, VOTE_JSON);
    expire_at_once = 0;
    handlers.resume(f->req, HTTP_EXPIRED);
    assert_int_equal(f->last.status, 503);
    assert_string_equal(f->last.retry, "1");
    assert_non_null(strstr(f->last.body, "\"request_id\""));
    wait_wakes(f, 1); /* the report still comes, and must not answer again */
    assert_int_equal(f->late_wakes, 1);
    assert_int_equal(f->nsent, 1);
    assert_string_equal(f->events, "suspend,send 503,late wake,");
    text = metrics_render(fx.metrics);
    assert_non_null(strstr(text, "tadak_http_delivery_timeouts_total 1\n"));
    free(text);
    fake_free(f);
}

static void test_cors_preflight_and_allowed_origin(void **state)
{
    struct fake_conn pre = {.names = {"Origin", "Host"},
                            .values = {"https://app.example", "api.example"}};
    struct fake_conn foreign = {.names = {"Origin", "Host"},
                                .values = {"https://evil.example", "api.example"}};
    struct fake_req *f;

    (void)state;
    f = run("OPTIONS", "/votes", &pre, NULL);
    assert_int_equal(f->last.status, 204);
    assert_string_equal(f->last.acao, "https://app.example");
    assert_string_equal(f->last.allow, "POST");
    assert_string_equal(f->last.vary, "Origin");
    fake_free(f);

    f = run("GET", "/healthz", &pre, NULL);
    assert_int_equal(f->last.status, 200);
    assert_string_equal(f->last.acao, "https://app.example");
    fake_free(f);

    f = run("GET", "/healthz", &foreign, NULL);
    assert_int_equal(f->last.status, 200);
    assert_string_equal(f->last.acao, "");
    fake_free(f);
}

static void test_without_cors_no_cors_headers(void **state)
{
    struct fake_conn pre = {.names = {"Origin", "Host"},
                            .values = {"https://app.example", "api.example"}};
    struct fake_req *f;

    (void)state;
    f = run("GET", "/healthz", &pre, NULL);
    assert_int_equal(f->last.status, 200);
    assert_string_equal(f->last.acao, "");
    assert_string_equal(f->last.vary, "");
    fake_free(f);
}

static void test_idempotency_key_new_claims_then_publishes(void **state)
{
    struct fake_conn c = {.names = {"Content-Type", "Idempotency-Key"},
                          .values = {"application/json", "k-new"}};
    struct fake_req *f;

    (void)state;
    redis_answer_set(NULL); /* nil: the key is new, the claim is ours */
    f = run("POST", "/votes", &c, VOTE_JSON);
    assert_int_equal(f->timeout_ms, 500); /* the claim's timeout, not the delivery's */
    wait_wakes(f, 1);
    handlers.resume(f->req, HTTP_WOKEN); /* claimed: now handed to the publisher */
    assert_int_equal(f->timeout_ms, 5000);
    wait_wakes(f, 2);
    handlers.resume(f->req, HTTP_WOKEN);
    assert_string_equal(f->events, "suspend,wake,suspend,wake,send 202,");
    assert_string_equal(f->last.replayed, "");
    fake_free(f);
}

static void test_idempotency_key_seen_is_replayed(void **state)
{
    struct fake_conn c = {.names = {"Content-Type", "Idempotency-Key"},
                          .values = {"application/json", "k-old"}};
    static const char stored[] = "{\"status\":\"accepted\",\"event_id\":\"stored-one\"}\n";
    char hash[IDEM_HASH_HEX], old[1024];
    struct fake_req *f;
    int sets;

    (void)state;
    idem_hash_hex(VOTE_JSON, strlen(VOTE_JSON), hash);
    assert_true(idem_accepted_value(hash, stored, old, sizeof(old)) > 0);
    redis_answer_set(old);
    pthread_mutex_lock(&redis.lock);
    sets = redis.sets;
    pthread_mutex_unlock(&redis.lock);
    f = run("POST", "/votes", &c, VOTE_JSON);
    wait_wakes(f, 1);
    handlers.resume(f->req, HTTP_WOKEN);
    /* Answered from the key: nothing published (no second suspension). */
    assert_string_equal(f->events, "suspend,wake,send 202,");
    assert_string_equal(f->last.replayed, "true");
    assert_string_equal(f->last.body, stored);
    pthread_mutex_lock(&redis.lock);
    assert_int_equal(redis.sets, sets + 1);
    pthread_mutex_unlock(&redis.lock);
    fake_free(f);
}

/* POST /events/vote is POST /votes: the same path to the publisher and the same 202. */
static void test_events_vote_is_an_alias_of_post_votes(void **state)
{
    struct fake_conn c = {.names = {"Content-Type"}, .values = {"application/json"}};
    struct fake_req *f;

    (void)state;
    f = run("POST", "/events/vote", &c, VOTE_JSON);
    assert_int_equal(f->timeout_ms, 5000);
    wait_wakes(f, 1);
    handlers.resume(f->req, HTTP_WOKEN);
    assert_string_equal(f->events, "suspend,wake,send 202,");
    assert_non_null(strstr(f->last.body, "\"token\":\"vote_lock:7:2\""));
    fake_free(f);

    f = run("POST", "/events/vote", &c, "{\"user_id\":0,\"candidate_id\":2}");
    assert_int_equal(f->last.status, 400);
    assert_non_null(strstr(f->last.body, "user_id"));
    assert_string_equal(f->events, "send 400,");
    fake_free(f);
}

/* A type of the file: its own body check, its own topic, the vote's path to the 202. */
static void test_events_of_a_file_type(void **state)
{
    struct fake_conn c = {.names = {"Content-Type"}, .values = {"application/json"}};
    struct fake_req *f;

    (void)state;
    f = run("POST", "/events/poll_answer", &c, POLL_JSON);
    assert_int_equal(f->timeout_ms, 5000);
    wait_wakes(f, 1);
    handlers.resume(f->req, HTTP_WOKEN);
    assert_string_equal(f->events, "suspend,wake,send 202,");
    assert_non_null(strstr(f->last.body, "\"token\":\"poll_answer:7:3\""));
    fake_free(f);

    f = run("POST", "/events/poll_answer", &c, "{\"poll_id\":7,\"user_id\":3,\"option_id\":99}");
    assert_int_equal(f->last.status, 400);
    assert_non_null(strstr(f->last.body, "option_id"));
    assert_string_equal(f->events, "send 400,");
    fake_free(f);

    /* A vote's body is not a poll answer. */
    f = run("POST", "/events/poll_answer", &c, VOTE_JSON);
    assert_int_equal(f->last.status, 400);
    fake_free(f);

    f = run("GET", "/events/poll_answer/7", NULL, NULL);
    assert_int_equal(f->last.status, 400);
    assert_non_null(strstr(f->last.body, "wrong_key_length"));
    fake_free(f);
}

static void test_events_unknown_type_and_wrong_method(void **state)
{
    struct fake_req *f;

    (void)state;
    f = run("POST", "/events/polls", NULL, "{}");
    assert_int_equal(f->last.status, 404);
    assert_non_null(strstr(f->last.body, "\"types\":[\"vote\",\"poll_answer\"]"));
    assert_string_equal(f->events, "send 404,");
    fake_free(f);

    f = run("PUT", "/events/vote", NULL, NULL);
    assert_int_equal(f->last.status, 405);
    assert_string_equal(f->last.allow, "POST");
    fake_free(f);

    f = run("DELETE", "/events/vote/counts", NULL, NULL);
    assert_int_equal(f->last.status, 405);
    assert_string_equal(f->last.allow, "GET");
    fake_free(f);

    f = run("GET", "/events/vote/1/x", NULL, NULL);
    assert_int_equal(f->last.status, 400);
    assert_non_null(strstr(f->last.body, "candidate_id"));
    fake_free(f);
}

/* A counts query is checked at header time; a good one needs the database. */
static void test_events_counts_query_checked_first(void **state)
{
    struct fake_conn bad = {.args = {"by"}, .arg_values = {"user_id"}};
    struct fake_conn filter = {.args = {"by", "user_id"}, .arg_values = {"candidate_id", "x"}};
    struct fake_conn good = {.args = {"by", "user_id"}, .arg_values = {"candidate_id", "7"}};
    struct fake_req *f;

    (void)state;
    f = run("GET", "/events/vote/counts", &bad, NULL);
    assert_int_equal(f->last.status, 400);
    assert_non_null(strstr(f->last.body, "invalid_by"));
    assert_non_null(strstr(f->last.body, "candidate_id"));
    fake_free(f);

    f = run("GET", "/events/vote/counts", &filter, NULL);
    assert_int_equal(f->last.status, 400);
    assert_non_null(strstr(f->last.body, "user_id"));
    fake_free(f);

    f = run("GET", "/events/vote/counts", &good, NULL);
    assert_int_equal(f->last.status, 503);
    assert_non_null(strstr(f->last.body, "not_configured"));
    assert_string_equal(f->events, "send 503,");
    fake_free(f);

    f = run("GET", "/events/vote/7/2", NULL, NULL);
    assert_int_equal(f->last.status, 503);
    assert_non_null(strstr(f->last.body, "not_configured"));
    fake_free(f);
}

static void test_events_cors_preflight(void **state)
{
    struct fake_conn pre = {.names = {"Origin", "Host"},
                            .values = {"https://app.example", "api.example"}};
    struct fake_req *f;

    (void)state;
    f = run("OPTIONS", "/events/vote", &pre, NULL);
    assert_int_equal(f->last.status, 204);
    assert_string_equal(f->last.acao, "https://app.example");
    assert_string_equal(f->last.allow, "POST");
    fake_free(f);

    f = run("OPTIONS", "/events/vote/counts", &pre, NULL);
    assert_int_equal(f->last.status, 204);
    assert_string_equal(f->last.allow, "GET");
    fake_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unknown_path_404_and_wrong_method_405_with_allow,
                                        routes_plain, routes_gone),
        cmocka_unit_test_setup_teardown(test_cache_control_follows_the_action, routes_plain,
                                        routes_gone),
        cmocka_unit_test_setup_teardown(test_not_ready_is_503_with_retry_after, routes_plain,
                                        routes_gone),
        cmocka_unit_test_setup_teardown(test_bad_idempotency_key_answered_at_header_time,
                                        routes_plain, routes_gone),
        cmocka_unit_test_setup_teardown(test_draining_answers_shutting_down, routes_plain,
                                        routes_gone),
        cmocka_unit_test_setup_teardown(test_vote_suspends_then_report_resumes_to_202, routes_plain,
                                        routes_gone),
        cmocka_unit_test_setup_teardown(test_vote_expired_is_503_and_the_late_report_is_ignored,
                                        routes_plain, routes_gone),
        cmocka_unit_test_setup_teardown(test_cors_preflight_and_allowed_origin, routes_cors,
                                        routes_gone),
        cmocka_unit_test_setup_teardown(test_without_cors_no_cors_headers, routes_plain,
                                        routes_gone),
        cmocka_unit_test_setup_teardown(test_idempotency_key_new_claims_then_publishes, routes_idem,
                                        routes_idem_gone),
        cmocka_unit_test_setup_teardown(test_idempotency_key_seen_is_replayed, routes_idem,
                                        routes_idem_gone),
        cmocka_unit_test_setup_teardown(test_events_vote_is_an_alias_of_post_votes, routes_plain,
                                        routes_gone),
        cmocka_unit_test_setup_teardown(test_events_unknown_type_and_wrong_method, routes_plain,
                                        routes_gone),
        cmocka_unit_test_setup_teardown(test_events_of_a_file_type, routes_plain, routes_gone),
        cmocka_unit_test_setup_teardown(test_events_counts_query_checked_first, routes_plain,
                                        routes_gone),
        cmocka_unit_test_setup_teardown(test_events_cors_preflight, routes_cors, routes_gone),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
