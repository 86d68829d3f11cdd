/*
 * topics.c - see topics.h.
 */
#include "topics.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int topics_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, rd_kafka_resp_err_t *errp)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
    int n = 0;

    if (err) {
        *errp = err;
        return -1;
    }
    *errp = RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    for (int i = 0; i < md->topic_cnt; i++) {
        if (strcmp(md->topics[i].topic, topic) != 0)
            continue;
        *errp = md->topics[i].err;
        n = md->topics[i].err ? -1 : md->topics[i].partition_cnt;
        if (md->topics[i].err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE)
            n = md->topics[i].partition_cnt > 0 ? md->topics[i].partition_cnt : 1; /* just made */
        else if (md->topics[i].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
            n = 0;
        break;
    }
    rd_kafka_metadata_destroy(md);
    return n;
}

struct named {
    const char *name;
    size_t d;
};

static int named_cmp(const void *x, const void *y)
{
    const struct named *a = x, *b = y;

    if (a->d != b->d)
        return a->d < b->d ? -1 : 1;
    return strcmp(a->name, b->name);
}

void topics_list(rd_kafka_t *rk, int timeout_ms, const char *near, char *out, size_t outsize)
{
    const struct rd_kafka_metadata *md = NULL;
    struct named *v;
    size_t n = 0, len = 0, shown = 0;
    int k;

    snprintf(out, outsize, "?");
    if (rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    v = xcalloc((size_t)md->topic_cnt + 1, sizeof(*v));
    for (int i = 0; i < md->topic_cnt; i++) {
        const char *t = md->topics[i].topic;
        if (strncmp(t, "__", 2) == 0)
            continue; /* the broker's own (__consumer_offsets) */
        v[n].name = t;
        v[n++].d = near ? util_edit_distance(near, strlen(near), t, strlen(t)) : 0;
    }
    qsort(v, n, sizeof(*v), named_cmp);
    out[0] = '\0';
    for (; shown < n && shown < TOPICS_LIST_MAX; shown++) {
        /* Room is kept for the ",... (N in all)" tail. */
        k = snprintf(out + len, outsize - len, "%s%s", len ? "," : "", v[shown].name);
        if (k < 0 || (size_t)k + 24 >= outsize - len) {
            out[len] = '\0';
            break;
        }
        len += (size_t)k;
    }
    if (shown < n)
        snprintf(out + len, outsize - len, ",... (%zu in all)", n);
    free(v);
    rd_kafka_metadata_destroy(md);
}

rd_kafka_resp_err_t topics_create(rd_kafka_t *rk, const char *topic, int partitions, int timeout_ms,
                                  char *why, size_t whysize)
{
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, -1, why, whysize);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_AdminOptions_t *opt = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__INVALID_ARG;
    rd_kafka_event_t *ev = NULL;

    if (!nt)
        goto out;
    rd_kafka_AdminOptions_set_request_timeout(opt, timeout_ms, NULL, 0);
    rd_kafka_CreateTopics(rk, &nt, 1, opt, q);
    ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
    if (!ev) {
        err = RD_KAFKA_RESP_ERR__TIMED_OUT;
        snprintf(why, whysize, "no answer to CreateTopics");
    } else if ((err = rd_kafka_event_error(ev)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(why, whysize, "%s", rd_kafka_event_error_string(ev));
    } else {
        size_t n = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        err = n == 1 ? rd_kafka_topic_result_error(res[0]) : RD_KAFKA_RESP_ERR__FAIL;
        if (err)
            snprintf(why, whysize, "%s",
                     n == 1 && rd_kafka_topic_result_error_string(res[0])
                         ? rd_kafka_topic_result_error_string(res[0])
                         : rd_kafka_err2str(err));
    }
out:
    if (ev)
        rd_kafka_event_destroy(ev);
    if (nt)
        rd_kafka_NewTopic_destroy(nt);
    rd_kafka_AdminOptions_destroy(opt);
    rd_kafka_queue_destroy(q);
    return err;
}

int topics_unreachable(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__TIMED_OUT ||
           err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__RESOLVE;
}
