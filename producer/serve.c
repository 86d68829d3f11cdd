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
 * topics that do); a Kafka that does not answer yet only delays it 2 s.
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
#include "shutdown.h"
#include "util.h"

#include <stdio.h>
#include <time.h>

/* How long start-up asks whether the topic exists; no answer: start anyway. */
#define SERVE_TOPIC_CHECK_MS 2000

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int serve_main(int argc, char **argv)
{
    struct producer_opts o;
    struct metrics *metrics = NULL;
    struct publisher *pub = NULL;
    struct http_server *http = NULL;
    struct reads *reads = NULL;
    struct idem *idem = NULL;
    struct edge *edge = NULL;
    char err[512];
    int rc;

    if ((rc = producer_opts_load(&o, PRODUCER_SERVE, argc, argv, err, sizeof(err))) != 0) {
        if (rc < 0)
            fprintf(stderr, "tadak-producer serve: %s\n", err);
        rc = rc > 0 ? 0 : 2;
        goto out;
    }
    if (shutdown_install() != 0) {
        snprintf(err, sizeof(err), "cannot install the signal handlers");
        goto fail;
    }
    metrics = metrics_new();
    struct publisher_opts po = {o.brokers, o.topic,      &o.extra,  o.delivery_timeout_ms,
                                o.ack_log, /*poller*/ 1, /*bulk*/ 0};
    if (!(pub = publisher_new(&po, metrics, err, sizeof(err))))
        goto fail;
    /*
     * A missing topic is a typo or a deployment step not taken: say so now,
     * not as a 503 per vote. Kafka not answering yet is /readyz's business.
     */
    char existing[256];
    if (publisher_topic(pub, SERVE_TOPIC_CHECK_MS, existing, sizeof(existing)) == 0) {
        snprintf(err, sizeof(err),
                 "topic %s does not exist at %s (existing: %s); create it with tadak-consumer "
                 "topics --topic %s, or use --topic",
                 o.topic, o.brokers, existing[0] ? existing : "none", o.topic);
        goto fail;
    }
    struct reads_opts ro = {.database_url = o.database_url,
                            .redis_url = o.redis_url,
                            .key_prefix = o.key_prefix,
                            .tallies_top = o.tallies_top,
                            .stats_group = o.stats_group,
                            .ballot = &o.ballot};
    if (!(reads = reads_new(&ro, metrics, err, sizeof(err))))
        goto fail;
    if (o.redis_url && *o.redis_url &&
        !(idem = idem_new(o.redis_url, o.key_prefix, o.idem_timeout_ms, err, sizeof(err))))
        goto fail;
    struct edge_opts eo = {.cors_origins = &o.cors_origins,
                           .cors_max_age_s = o.cors_max_age_s,
                           .public_origin = o.public_origin,
                           .auth = {.key_file = o.jwt_key,
                                    .secret_env = o.jwt_secret_env,
                                    .issuer = o.jwt_issuer,
                                    .audience = o.jwt_audience,
                                    .user_claim = o.jwt_user_claim,
                                    .leeway_s = o.jwt_leeway_s},
                           .rate_limit = o.rate_limit,
                           .rate_burst = o.rate_burst,
                           .rate_slots = o.rate_slots,
                           .rate_ipv6_prefix = o.rate_ipv6_prefix,
                           .trusted_proxies = &o.trusted_proxies};
    if (!(edge = edge_new(&eo, metrics, err, sizeof(err))))
        goto fail;
    struct http_opts ho = {.listen = o.listen,
                           .max_body = o.max_body,
                           .delivery_timeout_ms = o.delivery_timeout_ms,
                           .reads = reads,
                           .idem = idem,
                           .idem_window_ms = o.idem_window_s * 1000,
                           .idem_timeout_ms = o.idem_timeout_ms,
                           .candidates = &o.ballot,
                           .request_timeout_ms = o.request_timeout_s * 1000,
                           .per_ip_limit = (unsigned int)o.per_ip,
                           .edge = edge};
    if (!(http = http_start(&ho, pub, metrics, err, sizeof(err))))
        goto fail;
    log_info("serving", "listen=%s topic=%s brokers=%s status_db=%s status_redis=%s", o.listen,
             o.topic, o.brokers, reads_has_db(reads) ? "yes" : "no",
             reads_has_redis(reads) ? "yes" : "no");
    edge_log(edge);

    while (!shutdown_requested())
        nap_ms(100);

    log_info("shutting down", "in_flight=%lld", (long long)http_active(http));
    http_quiesce(http);
    for (int64_t deadline = util_now_ms() + o.delivery_timeout_ms + 2000;
         http_active(http) > 0 && util_now_ms() < deadline;)
        nap_ms(10);
    http_stop(http);
    publisher_free(pub); /* flush: late reports still reach the HTTP state */
    pub = NULL;
    log_info("stopped", "topic=%s", o.topic);
    rc = 0;
    goto out;
fail:
    log_error("cannot start", "error=\"%s\"", err);
    rc = 1;
    if (http)
        http_stop(http);
out:
    publisher_free(pub);
    http_free(http);
    reads_free(reads);
    idem_free(idem);
    edge_free(edge);
    metrics_free(metrics);
    producer_opts_free(&o);
    return rc;
}
