/*
 * dlq.h - the dead-letter producer: invalid messages go, unchanged (key and
 * value), to the DLQ topic with headers that say why and where from:
 *
 *   tadak-error             event_err_name(), e.g. "invalid_json", or
 *                           "rejected_by_database"
 *   tadak-detail            the parser's explanation, or PostgreSQL's message
 *   tadak-sqlstate          the SQLSTATE of PostgreSQL's refusal (only then)
 *   tadak-source-topic      tadak-source-partition      tadak-source-offset
 *
 * Its own producer (acks=all, idempotent), so a dead letter counts as
 * settled only when the broker confirmed it: dlq_poll() reports each
 * delivery by the sequence number the caller chose when sending.
 *
 *   d = dlq_new(brokers, &extra, topic, err, sizeof err);
 *   dlq_check(d, timeout_ms, err, sizeof err)  the topic exists or was created: 0;
 *                                   -1 it cannot be (err names it); 1 no answer
 *   dlq_send(d, msg, "invalid_json", detail, sqlstate, max_value, seq);   0 or a Kafka error
 *                                   (sqlstate NULL or "": no tadak-sqlstate header)
 *   dlq_poll(d, done, arg);   done(arg, seq, err) per delivery report arrived; never waits
 */
#ifndef TADAK_DLQ_H
#define TADAK_DLQ_H

#include "config.h"

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>

struct dlq;

typedef void (*dlq_done_fn)(void *arg, uint64_t seq, rd_kafka_resp_err_t err);

struct dlq *dlq_new(const char *brokers, const struct config_kv *extra, const char *topic,
                    char *errstr, size_t errsize);
void dlq_free(struct dlq *d);
/* Values longer than max_value are cut to it (header tadak-original-size). */
rd_kafka_resp_err_t dlq_send(struct dlq *d, const rd_kafka_message_t *src, const char *error,
                             const char *detail, const char *sqlstate, size_t max_value,
                             uint64_t seq);
void dlq_poll(struct dlq *d, dlq_done_fn done, void *arg);
int dlq_check(struct dlq *d, int timeout_ms, char *errstr, size_t errsize);
/* 1 (and the reason) when the producer hit a fatal error. */
int dlq_fatal(struct dlq *d, char *errstr, size_t errsize);

#endif
