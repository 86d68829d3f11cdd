/*
 * group.h - the consumer's membership of its Kafka consumer group: the
 * consumer handle, the rebalance callback, pause and resume, lag, the wait
 * for the topic, the join and idle clocks, and the offsets handed to Kafka.
 *
 * The round (pipeline.c) drives it and is called back only through hooks
 * registered here: `revoke` when partitions are taken away (so the pipeline
 * can settle what it can and drop its messages of them), `hold_all` when the
 * group must decide whether every partition stays paused (PostgreSQL down,
 * too much held).
 *
 *   g = group_new(&opts, offsets, metrics, hold_limit, &hooks, err, sizeof err);
 *   rc = group_wait_topic(g)        0 it exists; 1 a signal came; GROUP_FATAL,
 *                                   GROUP_NOT_JOINED (--idle-exit, --join-timeout-s)
 *   rc = group_subscribe(g)         0 or GROUP_FATAL
 *   k = group_consume(g, ms, msgs, max)   a batch; error messages handled, NULL
 *   group_store_offsets(g)          the settled offsets (offsets.h), to librdkafka
 *   group_update_paused(g)          pause or resume partitions as hooks and offsets say
 *   group_update_lag(g, now)        tadak_consumer_lag, once a second
 *   group_touch(g, now)             there was work: not idle
 *   rc = group_idle_check(g, now, busy)   0 go on, 1 idle long enough, GROUP_NOT_JOINED
 *   group_fatal(g)                  1 after a fatal Kafka error
 *   rc = group_rejoin(g)            after one: 0 joined again, 1 a signal, GROUP_FATAL
 *   group_close(g)                  store, commit (unless Kafka failed), leave
 *   group_left_running(g)           1 when the close gave up on an unreachable Kafka
 *   group_free(g)                   (then librdkafka's threads are left to the exit)
 *
 * The group borrows opts, the offsets table and metrics.
 */
#ifndef TADAK_GROUP_H
#define TADAK_GROUP_H

#include "metrics.h"
#include "offsets.h"
#include "options.h"

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define GROUP_FATAL      (-1)
#define GROUP_NOT_JOINED (-2)

struct group_hooks {
    /*
     * Partitions are being taken away. handover 1 (a revoke): read every
     * INSERT in flight first, so the offsets handed over cover exactly what
     * is recorded; handover 0 (a failed rebalance): rows in flight stay.
     * Then drop the other messages of those partitions, unsettled.
     */
    void (*revoke)(void *arg, const rd_kafka_topic_partition_list_t *parts, int handover);
    /* 1 while every assigned partition must stay paused. */
    int (*hold_all)(void *arg);
    void *arg;
};

struct group;

/* hold_limit: a partition with this many messages unsettled is paused alone. */
struct group *group_new(const struct consumer_opts *o, struct offsets *offsets,
                        struct metrics *metrics, size_t hold_limit, const struct group_hooks *hooks,
                        char *errstr, size_t errsize);
int group_wait_topic(struct group *g);
int group_subscribe(struct group *g);
ssize_t group_consume(struct group *g, int timeout_ms, rd_kafka_message_t **msgs, size_t max);
void group_store_offsets(struct group *g);
void group_update_paused(struct group *g);
void group_update_lag(struct group *g, int64_t now);
void group_touch(struct group *g, int64_t now);
int group_idle_check(struct group *g, int64_t now, int busy);
int group_fatal(const struct group *g);
int group_rejoin(struct group *g);
void group_close(struct group *g);
int group_left_running(const struct group *g);
void group_free(struct group *g);

#endif
