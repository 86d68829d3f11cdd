/*
 * publisher.c - idempotent Kafka producer for votes. See publisher.h.
 *
 * The delivery report callback is the heart of the acknowledgement
 * guarantee: an event is written to the ack log and reported as
 * acknowledged only when librdkafka says the broker has it (acks=all), and
 * the ack log line is flushed before the caller's completion runs, so a
 * client never sees 202 for a vote the ack log does not hold.
 */
#include "publisher.h"
#include "kafka.h"
#include "kafkaenv.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* librdkafka gives up this long after the HTTP layer already answered 503. */
#define PUBLISHER_TIMEOUT_MARGIN_MS 1000

struct publisher {
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;
    FILE *ack_log;
    pthread_mutex_t ack_lock;

    pthread_t poller;
    int has_poller;
    atomic_int running;
    _Atomic int64_t in_flight;
    int flush_ms;

    struct metric *m_latency, *m_in_flight, *m_failures, *m_acked;
};

static const double latency_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                        0.1,   0.25,   0.5,   1,    2.5,   5};

/* Append "{...event...,"partition":P,"offset":O}" and flush: correctness over speed. */
static void ack_log_write(struct publisher *p, const rd_kafka_message_t *m)
{
    char line[1024];
    size_t n = m->len;
    int w;

    if (n == 0 || n >= sizeof(line) - 64 || ((const char *)m->payload)[n - 1] != '}') {
        log_error("ack log: unexpected payload", "len=%zu", n);
        return;
    }
    memcpy(line, m->payload, n - 1);
    w = snprintf(line + n - 1, sizeof(line) - (n - 1),
                 ",\"partition\":%" PRId32 ",\"offset\":%" PRId64 "}\n", m->partition, m->offset);
    if (w < 0 || (size_t)w >= sizeof(line) - (n - 1))
        return;
    pthread_mutex_lock(&p->ack_lock);
    if (fwrite(line, 1, n - 1 + (size_t)w, p->ack_log) != n - 1 + (size_t)w ||
        fflush(p->ack_log) != 0)
        log_error("ack log write failed", "error=\"%s\"", strerror(errno));
    pthread_mutex_unlock(&p->ack_lock);
}

static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct publisher *p = opaque;
    struct publish_done *done = m->_private;
    struct publish_report r;
    int64_t lat_us = rd_kafka_message_latency(m);

    (void)rk;
    atomic_fetch_sub(&p->in_flight, 1);
    if (p->m_in_flight)
        metric_add(p->m_in_flight, -1);
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (p->ack_log)
            ack_log_write(p, m);
        if (p->m_acked)
            metric_add(p->m_acked, 1);
        if (p->m_latency && lat_us >= 0)
            metric_observe(p->m_latency, (double)lat_us / 1e6);
    } else {
        if (p->m_failures)
            metric_add(p->m_failures, 1);
        log_warn("delivery failed", "error=\"%s\" partition=%" PRId32, rd_kafka_err2str(m->err),
                 m->partition);
    }
    if (!done || !done->fn)
        return;
    r.err = (int)m->err;
    r.errname = rd_kafka_err2str(m->err);
    r.partition = m->partition;
    r.offset = m->offset;
    r.payload = m->payload;
    r.len = m->len;
    done->fn(done, &r);
}

static void *poller_main(void *arg)
{
    struct publisher *p = arg;

    while (atomic_load(&p->running))
        rd_kafka_poll(p->rk, 100);
    return NULL;
}

static int configure(rd_kafka_conf_t *conf, const struct publisher_opts *o, char *errstr,
                     size_t errsize)
{
    char timeout[32];
    struct {
        const char *key, *val;
    } rows[] = {
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"linger.ms", o->bulk ? "20" : "5"},
        {"message.timeout.ms", timeout},
        /* Only the bulk profile trades CPU for throughput. */
        {"compression.type", o->bulk ? "lz4" : "none"},
        {"batch.size", o->bulk ? "1000000" : "65536"},
        {"queue.buffering.max.messages", o->bulk ? "500000" : "100000"},
    };

    snprintf(timeout, sizeof(timeout), "%" PRId64,
             o->delivery_timeout_ms + PUBLISHER_TIMEOUT_MARGIN_MS);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(rows); i++)
        if (kafka_conf_set(conf, rows[i].key, rows[i].val, errstr, errsize) != 0)
            return -1;
    /* TADAK_KAFKA_* (secrets off the command line), then -X, which wins. */
    if (kafkaenv_apply(conf, environ, o->extra, errstr, errsize) < 0)
        return -1;
    if (o->extra && kafka_conf_apply(conf, o->extra, errstr, errsize) != 0)
        return -1;
    return 0;
}

struct publisher *publisher_new(const struct publisher_opts *o, struct metrics *metrics,
                                char *errstr, size_t errsize)
{
    struct publisher *p = xcalloc(1, sizeof(*p));
    rd_kafka_conf_t *conf = NULL;
    char why[512];

    pthread_mutex_init(&p->ack_lock, NULL);
    p->flush_ms = (int)(o->delivery_timeout_ms + PUBLISHER_TIMEOUT_MARGIN_MS);
    if (o->ack_log) {
        p->ack_log = fopen(o->ack_log, "a");
        if (!p->ack_log) {
            snprintf(errstr, errsize, "cannot open ack log %s: %s", o->ack_log, strerror(errno));
            goto fail;
        }
        setvbuf(p->ack_log, NULL, _IOLBF, 0);
    }
    if (metrics) {
        p->m_latency = metrics_histogram(metrics, "tadak_produce_latency_seconds", "",
                                         "Time from produce to broker acknowledgement",
                                         latency_bounds, UTIL_ARRAY_LEN(latency_bounds));
        p->m_in_flight = metrics_gauge(metrics, "tadak_produce_in_flight", "",
                                       "Messages waiting for their delivery report");
        p->m_failures = metrics_counter(metrics, "tadak_delivery_failures_total", "",
                                        "Messages the broker did not acknowledge");
        p->m_acked = metrics_counter(metrics, "tadak_delivery_acked_total", "",
                                     "Messages acknowledged by the broker");
    }

    conf = kafka_conf_new(o->brokers, errstr, errsize);
    if (!conf || configure(conf, o, errstr, errsize) != 0)
        goto fail;
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    rd_kafka_conf_set_opaque(conf, p);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!p->rk) {
        snprintf(errstr, errsize, "cannot create Kafka producer: %s", why);
        goto fail;
    }
    conf = NULL; /* now owned by rk */
    p->rkt = rd_kafka_topic_new(p->rk, o->topic, NULL);
    if (!p->rkt) {
        snprintf(errstr, errsize, "cannot create topic handle %s: %s", o->topic,
                 rd_kafka_err2str(rd_kafka_last_error()));
        goto fail;
    }
    if (o->poller) {
        atomic_store(&p->running, 1);
        if (pthread_create(&p->poller, NULL, poller_main, p) != 0) {
            snprintf(errstr, errsize, "cannot start the delivery report thread");
            goto fail;
        }
        p->has_poller = 1;
    }
    return p;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    publisher_free(p);
    return NULL;
}

int publisher_send(struct publisher *p, const struct vote *v, struct publish_done *done,
                   enum publish_mode mode, char *errstr, size_t errsize)
{
    char payload[512];
    int n = event_encode(v, payload, sizeof(payload));

    if (n < 0) {
        snprintf(errstr, errsize, "event does not fit the encoding buffer");
        return -1;
    }
    /* Count first: the delivery report may run before rd_kafka_produce returns. */
    atomic_fetch_add(&p->in_flight, 1);
    if (p->m_in_flight)
        metric_add(p->m_in_flight, 1);
    for (;;) {
        if (rd_kafka_produce(p->rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, payload, (size_t)n,
                             v->token, strlen(v->token), done) == 0)
            return 0;
        rd_kafka_resp_err_t err = rd_kafka_last_error();
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && mode == PUBLISH_WAIT) {
            /* Serving delivery reports makes room in the queue. */
            rd_kafka_poll(p->rk, 10);
            continue;
        }
        atomic_fetch_sub(&p->in_flight, 1);
        if (p->m_in_flight)
            metric_add(p->m_in_flight, -1);
        if (p->m_failures)
            metric_add(p->m_failures, 1);
        snprintf(errstr, errsize, "%s", rd_kafka_err2str(err));
        return -1;
    }
}

void publisher_poll(struct publisher *p, int timeout_ms)
{
    rd_kafka_poll(p->rk, timeout_ms);
}

int publisher_flush(struct publisher *p, int timeout_ms)
{
    rd_kafka_flush(p->rk, timeout_ms);
    return rd_kafka_outq_len(p->rk);
}

int publisher_probe(struct publisher *p, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(p->rk, 0, p->rkt, &md, timeout_ms);
    int ok = err == RD_KAFKA_RESP_ERR_NO_ERROR && md && md->broker_cnt > 0;

    if (md)
        rd_kafka_metadata_destroy(md);
    return ok;
}

int64_t publisher_in_flight(const struct publisher *p)
{
    return atomic_load(&((struct publisher *)p)->in_flight);
}

void publisher_free(struct publisher *p)
{
    if (!p)
        return;
    if (p->has_poller) {
        atomic_store(&p->running, 0);
        pthread_join(p->poller, NULL);
    }
    if (p->rk) {
        /* Whatever could not be delivered is failed through its report, not dropped. */
        rd_kafka_flush(p->rk, p->flush_ms);
        if (rd_kafka_outq_len(p->rk) > 0) {
            rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_flush(p->rk, 1000);
        }
    }
    if (p->rkt)
        rd_kafka_topic_destroy(p->rkt);
    if (p->rk)
        rd_kafka_destroy(p->rk);
    if (p->ack_log)
        fclose(p->ack_log);
    pthread_mutex_destroy(&p->ack_lock);
    free(p);
}
