/*
 * serve.c - `tadak-producer serve`: config, start-up and graceful drain.
 * See serve.h.
 *
 * Shutdown order matters for the no-loss guarantee: stop accepting (and
 * suspend no new request: keep-alive clients get 503 shutting_down), let
 * every request in flight get its answer (the HTTP timer 503s whatever the
 * broker does not acknowledge in time), stop HTTP, then flush Kafka, and
 * only then free the HTTP state that late delivery reports still touch.
 */
#include "serve.h"
#include "api.h"
#include "config.h"
#include "http.h"
#include "idem.h"
#include "log.h"
#include "metrics.h"
#include "publisher.h"
#include "reads.h"
#include "shutdown.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct serve_cfg {
    const char *listen, *topic, *brokers, *ack_log;
    enum log_level log_level;
    const char *database_url, *redis_url, *key_prefix, *candidates;
    int64_t max_body, delivery_timeout_ms, idem_window_s, request_timeout_s, per_ip, tallies_top;
    struct config_kv extra;
};

static const struct config_opt serve_opts[] = {
    {"listen", 'l', "TADAK_LISTEN", CONFIG_STR, "127.0.0.1:8000", 0, 0,
     offsetof(struct serve_cfg, listen), "HTTP listen address HOST:PORT"},
    {"topic", 't', "TADAK_TOPIC", CONFIG_STR, "votes", 0, 0, offsetof(struct serve_cfg, topic),
     "Kafka topic to publish to"},
    {"brokers", 'b', "KAFKA_BOOTSTRAP_SERVERS", CONFIG_STR, "127.0.0.1:9092", 0, 0,
     offsetof(struct serve_cfg, brokers), "Kafka bootstrap servers"},
    {"max-body", 0, "TADAK_MAX_BODY", CONFIG_INT, "4096", 16, 1048576,
     offsetof(struct serve_cfg, max_body), "Largest accepted request body in bytes"},
    {"delivery-timeout-ms", 0, "TADAK_DELIVERY_TIMEOUT_MS", CONFIG_INT, "5000", 100, 600000,
     offsetof(struct serve_cfg, delivery_timeout_ms),
     "Answer 503 if the broker has not acknowledged a vote after this long"},
    {"kafka", 'X', NULL, CONFIG_KV, NULL, 0, 0, offsetof(struct serve_cfg, extra),
     "librdkafka setting, repeatable (e.g. -X linger.ms=1); also from the environment as "
     "TADAK_KAFKA_<KEY>, e.g. TADAK_KAFKA_SASL_PASSWORD for sasl.password"},
    {"log-level", 0, "TADAK_LOG_LEVEL", CONFIG_LOG_LEVEL, "info", 0, 0,
     offsetof(struct serve_cfg, log_level), "error, warn, info or debug"},
    {"ack-log", 0, "TADAK_ACK_LOG", CONFIG_STR, NULL, 0, 0, offsetof(struct serve_cfg, ack_log),
     "Append one JSON line per acknowledged event to this file"},
    {"database-url", 0, "DATABASE_URL", CONFIG_STR, NULL, 0, 0,
     offsetof(struct serve_cfg, database_url),
     "PostgreSQL for GET /votes/{user_id}/{candidate_id} and /tallies (unset: they answer 503)"},
    {"redis-url", 0, "REDIS_URL", CONFIG_STR, NULL, 0, 0, offsetof(struct serve_cfg, redis_url),
     "Redis for Idempotency-Key, pending status and /stats (unset: key ignored, 503)"},
    {"key-prefix", 0, "TADAK_KEY_PREFIX", CONFIG_STR, "", 0, 0,
     offsetof(struct serve_cfg, key_prefix),
     "Prefix of Redis keys, as the consumers' --key-prefix"},
    {"idempotency-window-s", 0, "TADAK_IDEMPOTENCY_WINDOW_S", CONFIG_INT, "86400", 1, 31536000,
     offsetof(struct serve_cfg, idem_window_s),
     "How long an accepted Idempotency-Key answers with the same 202"},
    {"request-timeout-s", 0, "TADAK_REQUEST_TIMEOUT_S", CONFIG_INT, "10", 1, 3600,
     offsetof(struct serve_cfg, request_timeout_s),
     "Close a connection whose request (headers and body) has not all arrived this long "
     "after it could start"},
    {"max-connections-per-ip", 0, "TADAK_MAX_CONNECTIONS_PER_IP", CONFIG_INT, "3000", 1, 1000000,
     offsetof(struct serve_cfg, per_ip),
     "Most connections one client address may hold (behind a proxy, all clients share one)"},
    {"candidates", 0, "TADAK_CANDIDATES", CONFIG_STR, NULL, 0, 0,
     offsetof(struct serve_cfg, candidates),
     "Candidate ids on the ballot, e.g. 1-4,7 (others: 400 unknown_candidate; unset: any)"},
    {"tallies-top", 0, "TADAK_TALLIES_TOP", CONFIG_INT, "100", 1, 100000,
     offsetof(struct serve_cfg, tallies_top),
     "GET /tallies lists this many candidates, most votes first (with the total of all)"},
    CONFIG_END};

static void nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int load_config(struct serve_cfg *cfg, struct api_candidates *cands, int argc, char **argv,
                       int *rc)
{
    char **pos = xcalloc((size_t)argc + 1, sizeof(*pos));
    char err[512];
    int npos = 0, r;

    r = config_load(serve_opts, cfg, argc - 1, argv + 1, pos, &npos, err, sizeof(err));
    if (r == 1)
        config_usage(stdout, serve_opts,
                     "usage: tadak-producer serve [options]\n\n"
                     "HTTP API: POST /votes {\"user_id\":U,\"candidate_id\":C} answers 202 once "
                     "Kafka\nacknowledged the vote (Idempotency-Key honoured with Redis); GET /, "
                     "/votes/U/C,\n/tallies, /stats, /healthz, /readyz, /metrics.");
    if (r == 0 && npos > 0)
        snprintf(err, sizeof(err), "unexpected argument \"%s\"", pos[0]), r = -1;
    memset(cands, 0, sizeof(*cands));
    if (r == 0 && cfg->candidates && api_candidates_parse(cfg->candidates, cands, err, sizeof(err)))
        r = -1;
    if (r < 0)
        fprintf(stderr, "tadak-producer serve: %s\n", err);
    free(pos);
    if (r == 0)
        log_set_level(cfg->log_level);
    *rc = r == 1 ? 0 : 2;
    return r;
}

int serve_main(int argc, char **argv)
{
    struct serve_cfg cfg;
    struct metrics *metrics = NULL;
    struct publisher *pub = NULL;
    struct http_server *http = NULL;
    struct reads *reads = NULL;
    struct idem *idem = NULL;
    struct api_candidates cands;
    char err[512];
    int rc = 2;

    memset(&cfg, 0, sizeof(cfg));
    if (load_config(&cfg, &cands, argc, argv, &rc) != 0)
        goto out;
    if (shutdown_install() != 0) {
        snprintf(err, sizeof(err), "cannot install the signal handlers");
        goto fail;
    }
    metrics = metrics_new();
    struct publisher_opts po = {cfg.brokers, cfg.topic,    &cfg.extra, cfg.delivery_timeout_ms,
                                cfg.ack_log, /*poller*/ 1, /*bulk*/ 0};
    if (!(pub = publisher_new(&po, metrics, err, sizeof(err))))
        goto fail;
    struct reads_opts ro = {cfg.database_url, cfg.redis_url, cfg.key_prefix, cfg.tallies_top};
    if (!(reads = reads_new(&ro, metrics, err, sizeof(err))))
        goto fail;
    if (cfg.redis_url && *cfg.redis_url &&
        !(idem = idem_new(cfg.redis_url, cfg.key_prefix, err, sizeof(err))))
        goto fail;
    struct http_opts ho = {cfg.listen,
                           cfg.max_body,
                           cfg.delivery_timeout_ms,
                           reads,
                           idem,
                           cfg.idem_window_s * 1000,
                           &cands,
                           cfg.request_timeout_s * 1000,
                           (unsigned int)cfg.per_ip};
    if (!(http = http_start(&ho, pub, metrics, err, sizeof(err))))
        goto fail;
    log_info("serving", "listen=%s topic=%s brokers=%s status_db=%s status_redis=%s", cfg.listen,
             cfg.topic, cfg.brokers, reads_has_db(reads) ? "yes" : "no",
             reads_has_redis(reads) ? "yes" : "no");

    while (!shutdown_requested())
        nap_ms(100);

    log_info("shutting down", "in_flight=%lld", (long long)http_active(http));
    http_quiesce(http);
    for (int64_t deadline = util_now_ms() + cfg.delivery_timeout_ms + 2000;
         http_active(http) > 0 && util_now_ms() < deadline;)
        nap_ms(10);
    http_stop(http);
    publisher_free(pub); /* flush: late reports still reach the HTTP state */
    pub = NULL;
    log_info("stopped", "topic=%s", cfg.topic);
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
    metrics_free(metrics);
    config_free(serve_opts, &cfg);
    return rc;
}
