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
 */
#ifndef TADAK_KAFKA_H
#define TADAK_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "config.h"

rd_kafka_conf_t *kafka_conf_new(const char *bootstrap, char *errstr, size_t errsize);
int kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *val, char *errstr,
                   size_t errsize);
int kafka_conf_apply(rd_kafka_conf_t *conf, const struct config_kv *extra, char *errstr,
                     size_t errsize);

#endif
