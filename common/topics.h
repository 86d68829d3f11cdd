/*
 * topics.h - Kafka topics as the programs see them: is one there (and with
 * how many partitions), which ones exist, create one.
 *
 * Topics are created on purpose (`tadak-consumer topics`, `scripts/stack up`),
 * never as a side effect of a send: a mistyped --topic must be an error that
 * names the topics that do exist, not a new empty topic. So the look-ups here
 * ask for the cluster's whole topic list, a request no broker answers by
 * creating anything, whatever its auto.create.topics.enable says.
 *
 *   n = topics_partitions(rk, "votes", 5000, &err);     >0 partitions, 0 missing, -1 err
 *   topics_list(rk, 5000, "votse", buf, sizeof buf);   "votes,votes.dlq" ("?" unknown)
 *       the nearest to the name first (NULL: by name), at most TOPICS_LIST_MAX
 *   err = topics_create(rk, "votes", 6, 5000, why, sizeof why);   -1: broker default
 *   topics_unreachable(err)                             no broker answered at all
 */
#ifndef TADAK_TOPICS_H
#define TADAK_TOPICS_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>

int topics_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, rd_kafka_resp_err_t *errp);
#define TOPICS_LIST_MAX 8

void topics_list(rd_kafka_t *rk, int timeout_ms, const char *near, char *out, size_t outsize);
rd_kafka_resp_err_t topics_create(rd_kafka_t *rk, const char *topic, int partitions, int timeout_ms,
                                  char *why, size_t whysize);
int topics_unreachable(rd_kafka_resp_err_t err);

#endif
