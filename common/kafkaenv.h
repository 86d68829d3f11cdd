/*
 * kafkaenv.h - librdkafka settings from the environment, so that secrets
 * need not be on a command line (where ps and /proc show them).
 *
 * Every -X key=value setting can also be given as TADAK_KAFKA_<KEY>, the
 * key upper-cased with its dots as underscores:
 *
 *   TADAK_KAFKA_SASL_PASSWORD=...     is   -X sasl.password=...
 *   TADAK_KAFKA_SSL_CA_LOCATION=...   is   -X ssl.ca.location=...
 *
 * Applied before the -X settings, and a key given with -X is not taken from
 * the environment at all: the command line wins. A name that is no
 * librdkafka setting (TADAK_KAFKA_PORT belongs to scripts/stack) is skipped
 * with a debug line; a value librdkafka refuses stops start-up, and the
 * error names the variable but never repeats the value.
 *
 *   kafkaenv_key("TADAK_KAFKA_SASL_PASSWORD=x", key, sizeof key)   1 + "sasl.password", or 0
 *   kafkaenv_apply(conf, environ, &extra_or_null, err, sizeof err) settings applied, or -1
 */
#ifndef TADAK_KAFKAENV_H
#define TADAK_KAFKAENV_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

#include "config.h"

#define KAFKAENV_PREFIX "TADAK_KAFKA_"

int kafkaenv_key(const char *var, char *key, size_t keysize);
int kafkaenv_apply(rd_kafka_conf_t *conf, char **envp, const struct config_kv *extra, char *errstr,
                   size_t errsize);

#endif
