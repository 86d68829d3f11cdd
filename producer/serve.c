/*
 * serve.c - `tadak-producer serve`: start-up and graceful drain. See
 * serve.h; its options are in options.c.
 *
 * Shutdown order matters for the no-loss guarantee: stop accepting (and
 * suspend no new request: keep-alive clients get 503 shutting_down), let
 * every request in flight get its answer (the HTTP timer 503s whatever the
 * broker does not acknowledge in time), stop HTTP, then flush Kafka, and
 * only then free the HTTP state that late delivery reports still touch.
 *
 * Start-up refuses a topic Kafka says does not exist (exit 1, naming the
 * topics that do), the vote's or any --types type's; a Kafka that does not
 * answer yet only delays it 2 s.
 *
 * Wiring: the routes (routes.h) are the handler table the HTTP core
 * (http.h) is started with; the core reaches nothing else.
 */
#include "serve.h"
#include "edge.h"
#include "http.h"
#include "idem.h"
#include "log.h"
#include "metrics.h"
#include "options.h"
#include "publisher.h"
#include "reads.h"
#include "ready.h"
#include "routes.h"
#include "shutdown.h"
#include "util.h"

#include <stdio.h>
#include <time.h>

/* How long start-up asks whether the topic exists; no answer: start anyway. */
#define SERVE_TOPIC_CHECK_MS 2000
/* The drain waits for the delivery timeout and this much more. */
#define SERVE_DRAIN_MARGIN_MS 2000

/* What serve runs, in the order it starts; torn down in reverse. */
struct serve {
    struct producer_opts o;
    struct metrics *metrics;
    struct publisher *pub;
    struct reads *reads;
    struct idem *idem;
    struct edge *edge;
    struct ready *ready;
    struct routes *routes;
    struct http_handlers handlers; /* the routes', for the core */
    struct http_server *http;
};

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/*
 * The publisher, and its topic checked: a missing topic is a typo or a
 * deployment step not taken: say so now, not as a 503 per vote. Kafka not
 * answering yet is /readyz's business.
 */
static int start_publisher(struct serve *sv, char *err, size_t errsize)
{
    const struct producer_opts *o = &sv->o;
    struct publisher_opts po = {.brokers = o->brokers,
                                .topic = o->topic,
                                .types = o->types,
                                .extra = &o->extra,
                                .delivery_timeout_ms = o->delivery_timeout_ms,
                                .ack_log = o->ack_log,
                                .poller = 1,
                                .bulk = 0};
    char existing[256];

    if (!(sv->pub = publisher_new(&po, sv->metrics, err, errsize)))
        return -1;
    for (size_t i = 0; i < evtypes_count(o->types); i++) {
        const char *topic = publisher_topic_of(sv->pub, evtypes_at(o->types, i));
        if (publisher_topic_named(sv->pub, topic, SERVE_TOPIC_CHECK_MS, existing,
                                  sizeof(existing)) != 0)
            continue;
        snprintf(err, errsize,
                 "topic %s does not exist at %s (existing: %s); create it with tadak-consumer "
                 "topics --topic %s%s",
                 topic, o->brokers, existing[0] ? existing : "none", topic,
                 i == 0 ? ", or use --topic" : "");
        return -1;
    }
    return 0;
}

/* Status reads, and Idempotency-Key when there is a Redis. */
static int start_stores(struct serve *sv, char *err, size_t errsize)
{
    const struct producer_opts *o = &sv->o;
    struct reads_opts ro = {.database_url = o->database_url,
                            .redis_url = o->redis_url,
                            .key_prefix = o->key_prefix,
                            .tallies_top = o->tallies_top,
                            .stats_group = o->stats_group,
                            .ballot = &o->ballot};

    if (!(sv->reads = reads_new(&ro, sv->metrics, err, errsize)))
        return -1;
    if (o->redis_url && *o->redis_url &&
        !(sv->idem = idem_new(o->redis_url, o->key_prefix, o->idem_timeout_ms, err, errsize)))
        return -1;
    return 0;
}

static int start_edge(struct serve *sv, char *err, size_t errsize)
{
    const struct producer_opts *o = &sv->o;
    struct edge_opts eo = {.cors_origins = &o->cors_origins,
                           .cors_max_age_s = o->cors_max_age_s,
                           .public_origin = o->public_origin,
                           .auth = {.key_file = o->jwt_key,
                                    .secret_env = o->jwt_secret_env,
                                    .issuer = o->jwt_issuer,
                                    .audience = o->jwt_audience,
                                    .user_claim = o->jwt_user_claim,
                                    .leeway_s = o->jwt_leeway_s},
                           .rate_limit = o->rate_limit,
                           .rate_burst = o->rate_burst,
                           .rate_slots = o->rate_slots,
                           .rate_ipv6_prefix = o->rate_ipv6_prefix,
                           .trusted_proxies = &o->trusted_proxies};

    sv->edge = edge_new(&eo, sv->metrics, err, errsize);
    return sv->edge ? 0 : -1;
}

/* The readiness prober, the routes, and the HTTP core started with them. */
static int start_http(struct serve *sv, char *err, size_t errsize)
{
    const struct producer_opts *o = &sv->o;
    struct routes_opts rto = {.core = &http_core,
                              .pub = sv->pub,
                              .metrics = sv->metrics,
                              .reads = sv->reads,
                              .idem = sv->idem,
                              .edge = sv->edge,
                              .max_body = o->max_body,
                              .delivery_timeout_ms = o->delivery_timeout_ms,
                              .idem_window_ms = o->idem_window_s * 1000,
                              .idem_timeout_ms = o->idem_timeout_ms,
                              .candidates = &o->ballot,
                              .types = o->types};
    struct http_opts ho = {.listen = o->listen,
                           .max_body = o->max_body,
                           .suspend_max_ms = o->delivery_timeout_ms,
                           .request_timeout_ms = o->request_timeout_s * 1000,
                           .per_ip_limit = (unsigned int)o->per_ip,
                           .uncapped = edge_trusted_proxy, /* a --trusted-proxy: no cap */
                           .uncapped_arg = sv->edge};

    if (!(sv->ready = ready_start(sv->pub, err, errsize)))
        return -1;
    rto.ready = sv->ready;
    sv->routes = routes_new(&rto);
    sv->handlers = routes_handlers(sv->routes);
    sv->http = http_start(&ho, &sv->handlers, sv->metrics, err, errsize);
    return sv->http ? 0 : -1;
}

static int serve_start(struct serve *sv, char *err, size_t errsize)
{
    if (shutdown_install() != 0) {
        snprintf(err, errsize, "cannot install the signal handlers");
        return -1;
    }
    sv->metrics = metrics_new();
    if (start_publisher(sv, err, errsize) != 0 || start_stores(sv, err, errsize) != 0 ||
        start_edge(sv, err, errsize) != 0 || start_http(sv, err, errsize) != 0)
        return -1;
    log_info("serving", "listen=%s topic=%s brokers=%s status_db=%s status_redis=%s types=%zu",
             sv->o.listen, sv->o.topic, sv->o.brokers, reads_has_db(sv->reads) ? "yes" : "no",
             reads_has_redis(sv->reads) ? "yes" : "no", evtypes_count(sv->o.types));
    edge_log(sv->edge);
    return 0;
}

/* Until a signal; then the drain: every request in flight answered, Kafka flushed. */
static void serve_run(struct serve *sv)
{
    while (!shutdown_requested())
        nap_ms(100);

    log_info("shutting down", "in_flight=%lld", (long long)http_active(sv->http));
    http_quiesce(sv->http);
    for (int64_t deadline = util_now_ms() + sv->o.delivery_timeout_ms + SERVE_DRAIN_MARGIN_MS;
         http_active(sv->http) > 0 && util_now_ms() < deadline;)
        nap_ms(10);
    http_stop(sv->http);
    ready_stop(sv->ready); /* it probes through the publisher */
    sv->ready = NULL;
    publisher_free(sv->pub); /* flush: late reports still reach the HTTP state */
    sv->pub = NULL;
    log_info("stopped", "topic=%s", sv->o.topic);
}

static void serve_free(struct serve *sv)
{
    ready_stop(sv->ready);
    publisher_free(sv->pub);
    http_free(sv->http);
    routes_free(sv->routes);
    reads_free(sv->reads);
    idem_free(sv->idem);
    edge_free(sv->edge);
    metrics_free(sv->metrics);
    producer_opts_free(&sv->o);
}

int serve_main(int argc, char **argv)
{
    struct serve sv = {0};
    char err[512];
    int rc;

    if ((rc = producer_opts_load(&sv.o, PRODUCER_SERVE, argc, argv, err, sizeof(err))) != 0) {
        if (rc < 0)
            fprintf(stderr, "tadak-producer serve: %s\n", err);
        rc = rc > 0 ? 0 : 2;
        goto out;
    }
    if (serve_start(&sv, err, sizeof(err)) != 0) {
        log_error("cannot start", "error=\"%s\"", err);
        rc = 1;
        if (sv.http)
            http_stop(sv.http);
        goto out;
    }
    serve_run(&sv);
    rc = 0;
out:
    serve_free(&sv);
    return rc;
}
