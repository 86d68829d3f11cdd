/*
 * publisher.c - idempotent Kafka producer for votes. See publisher.h.
 *
 * The delivery report callback is the heart of the acknowledgement
 * guarantee: an event is written to the ack log and reported as
 * acknowledged only when librdkafka says the broker has it (acks=all), and
 * the ack log line is flushed before the caller's completion runs, so a
 * client never sees 202 for a vote the ack log does not hold.
 *
 * A fatal error (librdkafka 2.0.2's idempotent producer raises one now and
 * then after a leader change) leaves an rd_kafka_t that refuses every
 * message for good. The rd_kafka_t therefore lives in a struct producer that
 * can be replaced whole: the thread serving delivery reports builds a new one
 * from a copy of the same configuration, swaps it in under a write lock, then
 * purges the old one and serves its reports, so every message it still held
 * gets its one completion (an error), and only then destroys it. Users of the
 * current producer hold a reference, taken under the read lock, for as long as
 * they touch it: a handle is never destroyed under them.
 */
#include "publisher.h"
#include "kafka.h"
#include "log.h"
#include "topics.h"
#include "metrics.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* librdkafka gives up this long after the HTTP layer already answered 503. */
#define PUBLISHER_TIMEOUT_MARGIN_MS 1000
/* A rebuild that failed (rd_kafka_new refused) is tried again this much later. */
#define PUBLISHER_REBUILD_RETRY_MS 1000
/* "All broker connections are down" comes with every failed reconnect: a line this often. */
#define PUBLISHER_DOWN_LOG_EVERY_MS 10000
/* A topic missing twice this far apart is missing (publisher_topic). */
#define PUBLISHER_TOPIC_CONFIRM_MS 500

/* One rd_kafka_t and its topic handles: replaced whole after a fatal error. */
struct producer {
    struct publisher *pub;
    rd_kafka_t *rk;
    rd_kafka_topic_t *rkt;          /* the vote's: rkts[0] */
    rd_kafka_topic_t **rkts;        /* per type, as pub->types */
    atomic_int fatal;               /* error_cb saw RD_KAFKA_RESP_ERR__FATAL, or a send did */
    atomic_int logged;              /* the fatal error has its log line */
    atomic_int users;               /* references taken by producer_get() */
    _Atomic int64_t failed;         /* reports with an error */
    _Atomic int64_t down_logged_at; /* last "all brokers down" line (0: none yet) */
    _Atomic int64_t down_unlogged;  /* repeats of it since */
    atomic_int reaching;            /* publisher_reach() waits: connection errors are not news */
};

struct publisher {
    rd_kafka_conf_t *conf; /* the template every producer is built from */
    char *topic;           /* the vote's: topics[0] */
    size_t ntypes;
    const struct evtype **types; /* [0] the vote */
    char **topics;               /* types[i]'s */
    pthread_rwlock_t swap;       /* read: take a reference to cur; write: replace cur */
    struct producer *cur;        /* replaced only by the thread serving reports */
    atomic_int fatal_unseen;
    _Atomic int64_t rebuilds;
    int64_t next_rebuild_ms;

    FILE *ack_log;
    pthread_mutex_t ack_lock;

    pthread_t poller;
    int has_poller;
    atomic_int running;
    int flush_ms;

    struct metric *m_latency, *m_in_flight, *m_failures, *m_acked, *m_rebuilds;
};

/* Append "{...event...,"partition":P,"offset":O}" and flush: correctness over speed. */
static void ack_log_write(struct publisher *p, const rd_kafka_message_t *m)
{
    char line[EVENT_ENCODED_MAX + 64]; /* the longest event any type encodes, and the position */
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
    struct producer *k = opaque;
    struct publisher *p = k->pub;
    struct publish_completion *cb = m->_private;
    struct publish_report r;
    int64_t lat_us = rd_kafka_message_latency(m);

    (void)rk;
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
        atomic_fetch_add(&k->failed, 1);
        if (p->m_failures)
            metric_add(p->m_failures, 1);
        log_warn("delivery failed", "error=\"%s\" partition=%" PRId32, rd_kafka_err2str(m->err),
                 m->partition);
    }
    if (!cb || !cb->fn)
        return;
    r.err = (int)m->err;
    r.errname = rd_kafka_err2str(m->err);
    r.partition = m->partition;
    r.offset = m->offset;
    r.payload = m->payload;
    r.len = m->len;
    cb->fn(cb, &r);
}

/*
 * Runs wherever reports are served. A fatal error is logged once, with
 * librdkafka's real cause; the thread serving reports then rebuilds. "All
 * broker connections are down", which librdkafka repeats with every failed
 * reconnect, at most every PUBLISHER_DOWN_LOG_EVERY_MS with the repeats
 * counted. Other errors are logged as librdkafka logs them when no error_cb
 * is set.
 */
static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct producer *k = opaque;
    char cause[512] = "";
    rd_kafka_resp_err_t orig;

    if (atomic_load(&k->reaching) && kafka_err_is_outage(err))
        return;
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
        int64_t now = util_now_ms(), at = atomic_load(&k->down_logged_at);
        if (at && now - at < PUBLISHER_DOWN_LOG_EVERY_MS) {
            atomic_fetch_add(&k->down_unlogged, 1);
            return;
        }
        atomic_store(&k->down_logged_at, now);
        log_error("librdkafka", "facility=ERROR detail=\"%s: %s: %s\" repeated=%" PRId64,
                  rd_kafka_name(rk), rd_kafka_err2str((rd_kafka_resp_err_t)err), reason,
                  atomic_exchange(&k->down_unlogged, 0));
        return;
    }
    if (err != RD_KAFKA_RESP_ERR__FATAL) {
        log_error("librdkafka", "facility=ERROR detail=\"%s: %s: %s\"", rd_kafka_name(rk),
                  rd_kafka_err2str((rd_kafka_resp_err_t)err), reason);
        return;
    }
    if (atomic_exchange(&k->logged, 1))
        return;
    atomic_store(&k->fatal, 1);
    atomic_store(&k->pub->fatal_unseen, 1);
    orig = rd_kafka_fatal_error(rk, cause, sizeof(cause));
    log_error("kafka producer fatal error", "error=%s detail=\"%s\" action=rebuild",
              rd_kafka_err2name(orig), cause);
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
        /*
         * A vote's 202 waits for its ack, so linger is on every request's
         * latency: 1 ms doubled serve's rate at 64 connections (9.2k -> 22k/s,
         * p99 24 -> 9 ms) and the consumer reads the smaller batches as fast.
         */
        {"linger.ms", o->bulk ? "20" : "1"},
        {"message.timeout.ms", timeout},
        /* Only the bulk profile trades CPU for throughput. */
        {"compression.type", o->bulk ? "lz4" : "none"},
        {"batch.size", o->bulk ? "1000000" : "65536"},
        {"queue.buffering.max.messages", o->bulk ? "500000" : "100000"},
        /* Topics are created on purpose (topics.h): a typo in --topic must not make one. */
        {"allow.auto.create.topics", "false"},
    };

    snprintf(timeout, sizeof(timeout), "%" PRId64,
             o->delivery_timeout_ms + PUBLISHER_TIMEOUT_MARGIN_MS);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(rows); i++)
        if (kafka_conf_set(conf, rows[i].key, rows[i].val, errstr, errsize) != 0)
            return -1;
    /* TADAK_KAFKA_* (secrets off the command line), then -X, which wins. */
    if (kafka_conf_apply(conf, o->extra, errstr, errsize) != 0)
        return -1;
    return 0;
}

static void producer_destroy(struct producer *k)
{
    for (size_t i = 0; i < k->pub->ntypes; i++)
        if (k->rkts[i])
            rd_kafka_topic_destroy(k->rkts[i]);
    rd_kafka_destroy(k->rk);
    free(k->rkts);
    free(k);
}

/* A producer built from a copy of the template: the first, or a replacement. */
static struct producer *producer_new(struct publisher *p, char *errstr, size_t errsize)
{
    struct producer *k = xcalloc(1, sizeof(*k));
    rd_kafka_conf_t *conf = rd_kafka_conf_dup(p->conf);

    k->pub = p;
    rd_kafka_conf_set_opaque(conf, k); /* reports and errors find their producer */
    if (!(k->rk = kafka_new(RD_KAFKA_PRODUCER, &conf, "Kafka producer", errstr, errsize))) {
        rd_kafka_conf_destroy(conf);
        free(k);
        return NULL;
    }
    conf = NULL; /* now owned by rk */
    k->rkts = xcalloc(p->ntypes, sizeof(*k->rkts));
    for (size_t i = 0; i < p->ntypes; i++)
        if (!(k->rkts[i] = rd_kafka_topic_new(k->rk, p->topics[i], NULL))) {
            snprintf(errstr, errsize, "cannot create topic handle %s: %s", p->topics[i],
                     rd_kafka_err2str(rd_kafka_last_error()));
            producer_destroy(k);
            return NULL;
        }
    k->rkt = k->rkts[0];
    return k;
}

/* The current producer, safe to use until producer_put(). */
static struct producer *producer_get(struct publisher *p)
{
    struct producer *k;

    pthread_rwlock_rdlock(&p->swap);
    k = p->cur;
    atomic_fetch_add(&k->users, 1);
    pthread_rwlock_unlock(&p->swap);
    return k;
}

static void producer_put(struct producer *k)
{
    atomic_fetch_sub(&k->users, 1);
}

static int producer_is_fatal(struct producer *k)
{
    char cause[256];

    return atomic_load(&k->fatal) || rd_kafka_fatal_error(k->rk, cause, sizeof(cause)) != 0;
}

/*
 * Fail whatever k still holds through its report, then destroy it: a
 * message rd_kafka_destroy() dropped would leave its caller waiting. A send
 * that took its reference before the swap may still add one, so purge again
 * until nobody holds a reference. Returns the messages failed here.
 */
static int64_t producer_retire(struct producer *k, int wait_ms)
{
    int64_t deadline = util_now_ms() + wait_ms;
    int64_t before = atomic_load(&k->failed), failed;

    for (;;) {
        int users = atomic_load(&k->users);
        int outq = rd_kafka_outq_len(k->rk);

        if (users == 0 && outq == 0)
            break;
        if (users == 0 && util_now_ms() > deadline) {
            log_error("kafka producer destroyed with reports pending", "outq=%d", outq);
            break;
        }
        rd_kafka_purge(k->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(k->rk, 10); /* serves the purged messages' reports */
    }
    failed = atomic_load(&k->failed) - before;
    producer_destroy(k);
    return failed;
}

/* Replace a fatal producer; only the thread serving reports calls this. */
static void publisher_rebuild(struct publisher *p)
{
    struct producer *old = p->cur, *k;
    int64_t t0 = util_now_ms(), failed, n;
    char err[512];

    if (t0 < p->next_rebuild_ms)
        return;
    if (!(k = producer_new(p, err, sizeof(err)))) {
        p->next_rebuild_ms = t0 + PUBLISHER_REBUILD_RETRY_MS;
        log_error("kafka producer rebuild failed", "error=\"%s\" retry_ms=%d", err,
                  PUBLISHER_REBUILD_RETRY_MS);
        return;
    }
    pthread_rwlock_wrlock(&p->swap);
    p->cur = k; /* every new send goes to k from here on */
    pthread_rwlock_unlock(&p->swap);
    failed = producer_retire(old, p->flush_ms);
    n = atomic_fetch_add(&p->rebuilds, 1) + 1;
    if (p->m_rebuilds)
        metric_add(p->m_rebuilds, 1);
    log_info("kafka producer rebuilt", "rebuilds=%" PRId64 " failed=%" PRId64 " ms=%" PRId64, n,
             failed, util_now_ms() - t0);
}

/* The CLI has no poller thread: whoever serves its reports rebuilds. */
static void rebuild_if_fatal(struct publisher *p)
{
    if (!p->has_poller && atomic_load(&p->cur->fatal))
        publisher_rebuild(p);
}

static void *poller_main(void *arg)
{
    struct publisher *p = arg;

    /* p->cur without the lock: this thread is the only one to replace it. */
    while (atomic_load(&p->running)) {
        rd_kafka_poll(p->cur->rk, 100);
        if (atomic_load(&p->cur->fatal))
            publisher_rebuild(p);
    }
    return NULL;
}

/* Every type and its topic: topic_type's (the vote's) is o->topic, another's its own. */
static void set_types(struct publisher *p, const struct publisher_opts *o)
{
    p->ntypes = o->types ? evtypes_count(o->types) : 1;
    p->types = xcalloc(p->ntypes, sizeof(*p->types));
    p->topics = xcalloc(p->ntypes, sizeof(*p->topics));
    for (size_t i = 0; i < p->ntypes; i++) {
        p->types[i] = o->types ? evtypes_at(o->types, i) : evtype_vote();
        p->topics[i] = xstrdup(p->types[i] == (o->topic_type ? o->topic_type : evtype_vote())
                                   ? o->topic
                                   : p->types[i]->topic);
    }
    p->topic = p->topics[0];
}

struct publisher *publisher_new(const struct publisher_opts *o, struct metrics *metrics,
                                char *errstr, size_t errsize)
{
    struct publisher *p = xcalloc(1, sizeof(*p));
    pthread_rwlockattr_t attr;

    pthread_mutex_init(&p->ack_lock, NULL);
    /* A steady stream of sends must not keep a swap waiting. */
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&p->swap, &attr);
    pthread_rwlockattr_destroy(&attr);
    set_types(p, o);
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
        p->m_latency = metrics_latency_histogram(metrics, "tadak_produce_latency_seconds", "",
                                                 "Time from produce to broker acknowledgement");
        p->m_in_flight = metrics_gauge(metrics, "tadak_produce_in_flight", "",
                                       "Messages waiting for their delivery report");
        p->m_failures = metrics_counter(metrics, "tadak_delivery_failures_total", "",
                                        "Messages the broker did not acknowledge");
        p->m_acked = metrics_counter(metrics, "tadak_delivery_acked_total", "",
                                     "Messages acknowledged by the broker");
        p->m_rebuilds = metrics_counter(metrics, "tadak_kafka_producer_rebuilds_total", "",
                                        "Kafka producers replaced after a fatal error");
    }

    p->conf = kafka_conf_new(o->brokers, errstr, errsize);
    if (!p->conf || configure(p->conf, o, errstr, errsize) != 0)
        goto fail;
    rd_kafka_conf_set_dr_msg_cb(p->conf, dr_msg_cb);
    rd_kafka_conf_set_error_cb(p->conf, error_cb);
    if (!(p->cur = producer_new(p, errstr, errsize)))
        goto fail;
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
    publisher_free(p);
    return NULL;
}

int publisher_send(struct publisher *p, const struct event *v, struct publish_completion *cb,
                   enum publish_mode mode, char *errstr, size_t errsize)
{
    char payload[EVENT_ENCODED_MAX];
    int n = event_encode(v, payload, sizeof(payload)), retried = 0;
    struct producer *k;
    size_t t = 0;

    if (n < 0) {
        snprintf(errstr, errsize, "event does not fit the encoding buffer");
        return -1;
    }
    while (p->types[t] != v->type) /* the vote first: its send finds it at once */
        if (++t == p->ntypes) {
            snprintf(errstr, errsize, "no topic for events of type %s", v->type->name);
            return -1;
        }
    rebuild_if_fatal(p);
    k = producer_get(p);
    /* Count first: the delivery report may run before rd_kafka_produce returns. */
    if (p->m_in_flight)
        metric_add(p->m_in_flight, 1);
    for (;;) {
        if (rd_kafka_produce(k->rkts[t], RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, payload,
                             (size_t)n, v->token, strlen(v->token), cb) == 0) {
            producer_put(k);
            return 0;
        }
        rd_kafka_resp_err_t err = rd_kafka_last_error();
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL && mode == PUBLISH_WAIT) {
            /* Serving delivery reports makes room in the queue. */
            rd_kafka_poll(k->rk, 10);
            continue;
        }
        if (err == RD_KAFKA_RESP_ERR__FATAL && !p->has_poller && !retried) {
            /* Nothing was queued: rebuild here (no poller does) and send once more. */
            atomic_store(&k->fatal, 1);
            producer_put(k);
            publisher_rebuild(p);
            k = producer_get(p);
            retried = 1;
            continue;
        }
        producer_put(k);
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
    struct producer *k = producer_get(p);

    rd_kafka_poll(k->rk, timeout_ms);
    producer_put(k);
    rebuild_if_fatal(p);
}

int publisher_flush(struct publisher *p, int timeout_ms)
{
    struct producer *k = producer_get(p);
    int left;

    rd_kafka_flush(k->rk, timeout_ms);
    producer_put(k);
    rebuild_if_fatal(p); /* the old producer's messages are reported failed */
    k = producer_get(p);
    left = rd_kafka_outq_len(k->rk);
    producer_put(k);
    return left;
}

int publisher_probe(struct publisher *p, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    struct producer *k;
    int ok = 0;

    /*
     * Once per fatal error, however quickly the rebuild went: a prober sees it.
     * The producer first, the flag second: a k taken before the rebuild is
     * itself fatal (librdkafka sets that at once), and a k taken after it was
     * made after error_cb had set the flag. The other order let a rebuild
     * land between the two and the probe pass on the new producer.
     */
    k = producer_get(p);
    if (!atomic_exchange(&p->fatal_unseen, 0) && !producer_is_fatal(k)) {
        rd_kafka_resp_err_t err = rd_kafka_metadata(k->rk, 0, k->rkt, &md, timeout_ms);
        ok = err == RD_KAFKA_RESP_ERR_NO_ERROR && md && md->broker_cnt > 0;
    }
    producer_put(k);
    if (md)
        rd_kafka_metadata_destroy(md);
    return ok;
}

int publisher_reach(struct publisher *p, int timeout_ms)
{
    struct producer *k = producer_get(p);
    char level[16] = "6";
    size_t n = sizeof(level);
    int ok;

    /*
     * librdkafka logs every failed connect: while we only wait, those are not
     * news. A producer that never answered stays quiet to its end.
     */
    rd_kafka_conf_get(rd_kafka_conf(k->rk), "log_level", level, &n);
    rd_kafka_set_log_level(k->rk, 2);
    atomic_store(&k->reaching, 1);
    producer_put(k);
    ok = publisher_probe(p, timeout_ms);
    k = producer_get(p);
    if (ok) {
        int64_t was = 6;
        util_parse_i64(level, &was); /* librdkafka's own value; 6 if it were not a number */
        rd_kafka_set_log_level(k->rk, (int)was);
        atomic_store(&k->reaching, 0);
    }
    producer_put(k);
    return ok;
}

int publisher_topic(struct publisher *p, int timeout_ms, char *existing, size_t existing_size)
{
    return publisher_topic_named(p, p->topic, timeout_ms, existing, existing_size);
}

const char *publisher_topic_of(const struct publisher *p, const struct evtype *type)
{
    for (size_t i = 0; i < p->ntypes; i++)
        if (p->types[i] == type)
            return p->topics[i];
    return NULL;
}

int publisher_topic_named(struct publisher *p, const char *topic, int timeout_ms, char *existing,
                          size_t existing_size)
{
    struct producer *k = producer_get(p);
    rd_kafka_resp_err_t err;
    int n = topics_partitions(k->rk, topic, timeout_ms, &err);

    /*
     * A broker learns of a topic the controller just created a moment later:
     * "missing" is the answer only when it holds PUBLISHER_TOPIC_CONFIRM_MS on.
     */
    if (n == 0) {
        struct timespec ts = {0, PUBLISHER_TOPIC_CONFIRM_MS * 1000000L};
        nanosleep(&ts, NULL);
        n = topics_partitions(k->rk, topic, timeout_ms, &err);
    }
    if (n == 0)
        topics_list(k->rk, timeout_ms, topic, existing, existing_size);
    producer_put(k);
    return n;
}

int publisher_test_fatal(struct publisher *p)
{
    struct producer *k = producer_get(p);
    rd_kafka_resp_err_t err = rd_kafka_test_fatal_error(
        k->rk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, "injected by a test");

    producer_put(k);
    return err == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : -1;
}

int64_t publisher_rebuilds(const struct publisher *p)
{
    return atomic_load(&((struct publisher *)p)->rebuilds);
}

void publisher_free(struct publisher *p)
{
    if (!p)
        return;
    if (p->has_poller) {
        atomic_store(&p->running, 0);
        pthread_join(p->poller, NULL);
    }
    if (p->cur) {
        /* Whatever could not be delivered is failed through its report, not dropped. */
        rd_kafka_flush(p->cur->rk, p->flush_ms);
        producer_retire(p->cur, 1000);
    }
    if (p->conf)
        rd_kafka_conf_destroy(p->conf);
    if (p->ack_log)
        fclose(p->ack_log);
    pthread_rwlock_destroy(&p->swap);
    pthread_mutex_destroy(&p->ack_lock);
    for (size_t i = 0; i < p->ntypes; i++)
        free(p->topics[i]);
    free(p->topics);
    free(p->types);
    free(p);
}
