/*
 * kafka.h - librdkafka configuration shared by the producer and consumer.
 *
 * Both binaries build their rd_kafka_conf_t the same way: bootstrap servers
 * from KAFKA_BOOTSTRAP_SERVERS (or the flag), the program's own required
 * settings, then TADAK_KAFKA_<KEY> from the environment (kafkaenv.h: secrets
 * need not be on a command line), then any number of kcat-style
 * "-X key=value" overrides (SASL, SSL, tuning), which win, so tadak can
 * join an existing cluster without code changes.
 * librdkafka's own log lines are routed into tadak's logfmt.
 *
 *   conf = kafka_conf_new(bootstrap, errstr, sizeof errstr);
 *   kafka_conf_set(conf, "acks", "all", errstr, sizeof errstr);
 *   kafka_conf_apply(conf, &cfg.extra_or_null, errstr, sizeof errstr);   env, then -X
 *   rk = kafka_new(RD_KAFKA_PRODUCER, &conf, "Kafka producer", errstr, sizeof errstr);
 *   fprintf(stderr, "cannot reach Kafka at %s (%s)", b, kafka_reach_hint(b));
 */
#ifndef TADAK_KAFKA_H
#define TADAK_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "config.h"

/* An outage's error lines again, at most this often, while it lasts (log_every_due). */
#define KAFKA_OUTAGE_LOG_EVERY_MS 30000

/* Kafka's standard port, not the local stack's (scripts/stack env prints that). */
#define KAFKA_DEFAULT_BROKERS "127.0.0.1:9092"

rd_kafka_conf_t *kafka_conf_new(const char *bootstrap, char *errstr, size_t errsize);
int kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *val, char *errstr,
                   size_t errsize);
int kafka_conf_apply(rd_kafka_conf_t *conf, const struct config_kv *extra, char *errstr,
                     size_t errsize);
/*
 * rd_kafka_new with tadak's error wording: on success the handle owns the
 * configuration and *conf is NULL; on failure *conf is still the caller's
 * and errstr says "cannot create the <what>: <librdkafka's reason>".
 */
rd_kafka_t *kafka_new(rd_kafka_type_t type, rd_kafka_conf_t **conf, const char *what, char *errstr,
                      size_t errsize);
/*
 * The tail of a "cannot reach Kafka" line: where the address came from and,
 * for the built-in default, the local stack's environment.
 */
const char *kafka_reach_hint(const char *brokers);
/*
 * 1 for the errors of brokers that cannot be reached (transport, resolve,
 * all brokers down), which librdkafka repeats with every failed reconnect.
 */
int kafka_err_is_outage(int err);

#endif
