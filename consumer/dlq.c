/*
 * dlq.c - the dead-letter producer. See dlq.h.
 *
 * Nothing here blocks the consumer's round: dlq_poll() only serves the
 * delivery reports that have arrived. Only start-up (dlq_check) waits, for
 * the broker's word on the topic, so a DLQ that can never take a dead letter
 * stops the consumer before it reads anything instead of freezing a
 * partition behind the first poison message.
 */
#include "dlq.h"
#include "kafka.h"
#include "log.h"
#include "topics.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dlq {
    rd_kafka_t *rk;
    char *topic;
    size_t inflight;
    dlq_done_fn done; /* set for the duration of dlq_poll() */
    void *done_arg;
    struct log_every outage_log; /* brokers down, logged again every 30 s at most */
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct dlq *d = opaque;

    (void)rk;
    d->inflight--;
    if (d->done)
        d->done(d->done_arg, (uint64_t)(uintptr_t)m->_private, m->err);
}

/* Served by dlq_poll, on the round's thread. */
static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct dlq *d = opaque;
    int64_t held;

    (void)rk;
    if (!kafka_err_is_outage(err))
        log_warn("dead-letter producer error", "error=%s detail=\"%s\"",
                 rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
    else if (log_every_due(&d->outage_log, util_now_ms(), KAFKA_OUTAGE_LOG_EVERY_MS, &held))
        log_warn("dead-letter producer error", "error=%s detail=\"%s\" repeated=%" PRId64,
                 rd_kafka_err2name((rd_kafka_resp_err_t)err), reason, held);
}

struct dlq *dlq_new(const char *brokers, const struct config_kv *extra, const char *topic,
                    char *errstr, size_t errsize)
{
    struct dlq *d = xcalloc(1, sizeof(*d));
    rd_kafka_conf_t *conf = kafka_conf_new(brokers, errstr, errsize);

    if (!conf)
        goto fail;
    if (kafka_conf_set(conf, "acks", "all", errstr, errsize) != 0 ||
        kafka_conf_set(conf, "enable.idempotence", "true", errstr, errsize) != 0 ||
        kafka_conf_set(conf, "linger.ms", "5", errstr, errsize) != 0 ||
        kafka_conf_apply(conf, extra, errstr, errsize) != 0)
        goto fail;
    rd_kafka_conf_set_opaque(conf, d);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    if (!(d->rk = kafka_new(RD_KAFKA_PRODUCER, &conf, "dead-letter producer", errstr, errsize)))
        goto fail;
    d->topic = xstrdup(topic);
    return d;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    free(d);
    return NULL;
}

void dlq_free(struct dlq *d)
{
    if (!d)
        return;
    d->done = NULL;
    rd_kafka_flush(d->rk, 5000);
    rd_kafka_destroy(d->rk);
    free(d->topic);
    free(d);
}

rd_kafka_resp_err_t dlq_send(struct dlq *d, const rd_kafka_message_t *src, const char *error,
                             const char *detail, const char *sqlstate, size_t max_value,
                             uint64_t seq)
{
    const char *src_topic = rd_kafka_topic_name(src->rkt);
    size_t len = src->len > max_value ? max_value : src->len;
    char part[16], off[24], size[24];
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(7);
    rd_kafka_resp_err_t err;

    snprintf(part, sizeof(part), "%" PRId32, src->partition);
    snprintf(off, sizeof(off), "%" PRId64, src->offset);
    rd_kafka_header_add(hdrs, "tadak-error", -1, error, -1);
    rd_kafka_header_add(hdrs, "tadak-detail", -1, detail, -1);
    if (sqlstate && sqlstate[0])
        rd_kafka_header_add(hdrs, "tadak-sqlstate", -1, sqlstate, -1);
    rd_kafka_header_add(hdrs, "tadak-source-topic", -1, src_topic, -1);
    rd_kafka_header_add(hdrs, "tadak-source-partition", -1, part, -1);
    rd_kafka_header_add(hdrs, "tadak-source-offset", -1, off, -1);
    if (len < src->len) {
        /* Too large for the DLQ topic itself: keep the head, say how long it was. */
        snprintf(size, sizeof(size), "%zu", src->len);
        rd_kafka_header_add(hdrs, "tadak-original-size", -1, size, -1);
    }
    err = rd_kafka_producev(
        d->rk, RD_KAFKA_V_TOPIC(d->topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(src->key, src->key_len), RD_KAFKA_V_VALUE(src->payload, len),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE((void *)(uintptr_t)seq), RD_KAFKA_V_END);
    if (err) {
        rd_kafka_headers_destroy(hdrs); /* only owned by the message on success */
        return err;
    }
    d->inflight++;
    return RD_KAFKA_RESP_ERR_NO_ERROR;
}

void dlq_poll(struct dlq *d, dlq_done_fn done, void *arg)
{
    d->done = done;
    d->done_arg = arg;
    rd_kafka_poll(d->rk, 0);
    d->done = NULL;
}

/* The topic's error in a metadata answer for it alone, or the request's own error. */
static rd_kafka_resp_err_t topic_state(struct dlq *d, int timeout_ms)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(d->rk, d->topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err;

    if (!rkt)
        return rd_kafka_last_error();
    err = rd_kafka_metadata(d->rk, 0, rkt, &md, timeout_ms);
    if (!err)
        err = md->topic_cnt == 1 ? md->topics[0].err : RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return err;
}

int dlq_check(struct dlq *d, int timeout_ms, char *errstr, size_t errsize)
{
    char why[512] = "";
    rd_kafka_resp_err_t err = topic_state(d, timeout_ms);

    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    if (err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__TIMED_OUT) {
        snprintf(errstr, errsize, "no broker answered about dead-letter topic %s (%s)", d->topic,
                 rd_kafka_err2name(err));
        return 1;
    }
    if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
        err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE) {
        /* Not there (auto-creation off, or still being created): ask for it. */
        err = topics_create(d->rk, d->topic, -1, timeout_ms, why, sizeof(why));
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            return 0;
        if (err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__TRANSPORT) {
            snprintf(errstr, errsize, "dead-letter topic %s: %s (%s)", d->topic, why,
                     rd_kafka_err2name(err));
            return 1;
        }
    } else {
        snprintf(why, sizeof(why), "%s", rd_kafka_err2str(err));
    }
    snprintf(errstr, errsize,
             "dead-letter topic %s does not exist and cannot be created: %s (%s); create it or "
             "name another with --dlq-topic",
             d->topic, why, rd_kafka_err2name(err));
    return -1;
}

int dlq_fatal(struct dlq *d, char *errstr, size_t errsize)
{
    return rd_kafka_fatal_error(d->rk, errstr, errsize) != RD_KAFKA_RESP_ERR_NO_ERROR;
}
