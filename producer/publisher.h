/*
 * publisher.h - the one place where votes become Kafka messages.
 *
 * Both `serve` and the CLI subcommands publish through a publisher: one
 * idempotent rd_kafka_t (acks=all, enable.idempotence=true), every event
 * encoded by event_encode() and keyed by its token, so a burst, a retry and
 * a replay of the same vote all land on the same partition. Each event goes
 * to its type's topic (evtype.h; the vote's is opts.topic): one topic handle
 * per type, made with the producer, so a send looks nothing up by name.
 *
 * The caller learns the fate of each message through a completion it owns:
 * a struct publish_completion embedded (as first member, or via offsetof) in its
 * own per-request state and passed to publisher_send(). The publisher calls
 * its fn exactly once per message it accepted, from the thread serving
 * delivery reports, after the optional ack log line has been written. No
 * allocation happens per message on the publisher side.
 *
 * Delivery reports are served either by a dedicated poller thread
 * (opts.poller = 1, used by `serve`) or, without one (the CLI, on its one
 * thread), inside the calls that wait on librdkafka: publisher_poll(),
 * publisher_flush(), a PUBLISH_WAIT publisher_send() waiting for room in a
 * full queue, and publisher_free()'s last flush.
 *
 * A fatal error (librdkafka's idempotent producer can raise one after a
 * partition leader change: "Local: Inconsistent state", a fenced producer
 * epoch, a sequence desynchronization) leaves its rd_kafka_t refusing every
 * message for good. The publisher recovers by itself:
 *   - the fatal error is logged once, as one line with librdkafka's real cause
 *     (rd_kafka_fatal_error): msg="kafka producer fatal error" error=... ;
 *   - publisher_probe() answers 0 while the producer is fatal, and once more
 *     at its first call after the recovery, so a once-a-second prober
 *     (/readyz) reports every fatal error even when the rebuild takes
 *     milliseconds; with a poller, sends meanwhile fail at once (the HTTP
 *     layer answers 503);
 *   - the thread serving reports (the poller, or the caller of publisher_poll,
 *     publisher_flush or publisher_send without one) builds a new rd_kafka_t
 *     from the same configuration and swaps it in for new sends, then purges
 *     the old one: every message it still held gets its one completion, with
 *     an error (librdkafka's "Purged in queue/in flight", or the fatal error),
 *     and the old handle is destroyed only once nobody uses it. Without a
 *     poller, a send refused by the fatal producer (nothing was queued) is
 *     sent again on the new one;
 *   - msg="kafka producer rebuilt" is logged and the counter
 *     tadak_kafka_producer_rebuilds_total goes up by one.
 * A failed vote may still have reached Kafka; its retry gets a new event from
 * a new producer id, so the two copies share only their token, and the
 * consumers record a token once.
 *
 * librdkafka's message.timeout.ms is the delivery timeout plus a margin, so
 * librdkafka itself gives up on a message rather than retrying forever.
 * Settings are applied in this order, the last one winning: tadak's own,
 * TADAK_KAFKA_* from the environment (kafkaenv.h), then opts.extra (-X).
 *
 *   struct publisher *p = publisher_new(&opts, metrics_or_null, err, sizeof err);
 *   publisher_send(p, &vote, &req->completion, PUBLISH_NOWAIT, err, sizeof err);   0 / -1
 *   publisher_flush(p, timeout_ms);   remaining messages after the wait
 *   publisher_probe(p, timeout_ms);   1 if a broker answered a metadata request
 *                                     (0 while fatal, see above)
 *   publisher_topic(p, timeout_ms, existing, sizeof existing);   partitions, 0: missing
 *   publisher_topic_named(p, topic, ...)   the same for another type's topic
 *   publisher_topic_of(p, type)      the topic type's events go to (NULL: not ours)
 *   publisher_free(p);                stops the poller, flushes, purges the rest
 */
#ifndef TADAK_PUBLISHER_H
#define TADAK_PUBLISHER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "event.h"

struct metrics;
struct publisher;

/* What became of one message. */
struct publish_report {
    int err;             /* 0 = acknowledged by the broker, else an rd_kafka_resp_err_t */
    const char *errname; /* librdkafka's text for err */
    int32_t partition;
    int64_t offset;
    const char *payload; /* the encoded event, valid during the callback only */
    size_t len;
};

/* A completion owned by the caller; fn is called once per accepted message. */
struct publish_completion {
    void (*fn)(struct publish_completion *cb, const struct publish_report *report);
};

struct publisher_opts {
    const char *brokers;
    const char *topic; /* topic_type's (NULL: the vote's) */
    const struct evtype *topic_type;
    const struct evtypes *types;   /* each type to its topic; NULL: the vote only */
    const struct config_kv *extra; /* -X overrides, applied last; may be NULL */
    int64_t delivery_timeout_ms;
    const char *ack_log; /* append one line per acknowledged event, or NULL */
    int poller;          /* 1: serve delivery reports from an own thread */
    int bulk;            /* 1: batching profile for `load` (linger, lz4) */
};

enum publish_mode {
    PUBLISH_NOWAIT, /* a full local queue is an error (HTTP answers 503) */
    PUBLISH_WAIT,   /* a full local queue is waited out by polling (CLI) */
};

struct publisher *publisher_new(const struct publisher_opts *opts, struct metrics *metrics,
                                char *errstr, size_t errsize);
int publisher_send(struct publisher *p, const struct event *v, struct publish_completion *cb,
                   enum publish_mode mode, char *errstr, size_t errsize);
void publisher_poll(struct publisher *p, int timeout_ms);
int publisher_flush(struct publisher *p, int timeout_ms);
int publisher_probe(struct publisher *p, int timeout_ms);
int publisher_reach(struct publisher *p, int timeout_ms); /* probe, without connect lines */
/* The topic's partitions; 0 when it does not exist (existing: the ones that do); -1 unknown. */
int publisher_topic(struct publisher *p, int timeout_ms, char *existing, size_t existing_size);
int publisher_topic_named(struct publisher *p, const char *topic, int timeout_ms, char *existing,
                          size_t existing_size);
const char *publisher_topic_of(const struct publisher *p, const struct evtype *type);
void publisher_free(struct publisher *p);

/*
 * For the tests: raise a fatal error in the current producer the way
 * librdkafka would (rd_kafka_test_fatal_error, cause OUT_OF_ORDER_SEQUENCE_NUMBER),
 * 0 / -1 if one was raised already; and the number of recoveries so far.
 */
int publisher_test_fatal(struct publisher *p);
int64_t publisher_rebuilds(const struct publisher *p);

#endif
