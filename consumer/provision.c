/*
 * provision.c - see provision.h.
 */
#include "provision.h"
#include "kafka.h"
#include "topics.h"

#include "util.h"

#include <stdio.h>
#include <time.h>

#define PROVISION_REACH_MS 5000 /* the first answer, as every command waits for it */
#define PROVISION_ADMIN_MS 15000
#define PROVISION_SEEN_MS  200 /* between looks for a topic just created */

/*
 * The partitions of a topic just created, once the broker's metadata has
 * it: CreateTopics answers when the controller has the topic, and a broker
 * that just started may list it a second later. "created" must mean that a
 * send can use it now. 0: not seen within PROVISION_ADMIN_MS.
 */
static int provision_seen(rd_kafka_t *rk, const char *topic)
{
    int64_t end = util_now_ms() + PROVISION_ADMIN_MS;
    rd_kafka_resp_err_t err;
    int n;

    while ((n = topics_partitions(rk, topic, PROVISION_ADMIN_MS, &err)) <= 0 &&
           util_now_ms() < end) {
        struct timespec nap = {.tv_nsec = PROVISION_SEEN_MS * 1000000L};
        nanosleep(&nap, NULL); /* a look a PROVISION_SEEN_MS, up to the deadline */
    }
    return n > 0 ? n : 0;
}

/* One topic: "created" or "exists", with its partitions, on stdout. 0 / -1. */
static int provision_one(rd_kafka_t *rk, const char *topic, int partitions)
{
    rd_kafka_resp_err_t err;
    char why[512];
    int n = topics_partitions(rk, topic, PROVISION_ADMIN_MS, &err);

    if (n > 0) {
        printf("exists  %s partitions=%d\n", topic, n);
        return 0;
    }
    if (n == 0) {
        err = topics_create(rk, topic, partitions, PROVISION_ADMIN_MS, why, sizeof(why));
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR && provision_seen(rk, topic) > 0) {
            printf("created %s partitions=%d\n", topic, partitions);
            return 0;
        }
        if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS &&
            (n = provision_seen(rk, topic)) > 0) { /* another one was quicker */
            printf("exists  %s partitions=%d\n", topic, n);
            return 0;
        }
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
            snprintf(why, sizeof(why), "the broker does not list it within %d ms",
                     PROVISION_ADMIN_MS);
    } else {
        snprintf(why, sizeof(why), "%s", rd_kafka_err2str(err));
    }
    fprintf(stderr, "tadak-consumer topics: cannot create topic %s: %s (%s)\n", topic, why,
            rd_kafka_err2name(err));
    return -1;
}

int provision_topics(const struct consumer_opts *o)
{
    char errstr[512];
    rd_kafka_conf_t *conf = kafka_conf_new(o->brokers, errstr, sizeof(errstr));
    rd_kafka_t *rk = NULL;
    rd_kafka_resp_err_t err;
    int status = 1;

    if (!conf || kafka_conf_set(conf, "log_level", "2", errstr, sizeof(errstr)) != 0 ||
        kafka_conf_apply(conf, &o->extra, errstr, sizeof(errstr)) != 0)
        goto fail;
    if (!(rk = kafka_new(RD_KAFKA_PRODUCER, &conf, "Kafka client", errstr, sizeof(errstr))))
        goto fail;
    /* Connect lines while we only wait are not news: log_level 2 above keeps them out. */
    if (topics_partitions(rk, o->topic, PROVISION_REACH_MS, &err) < 0 && topics_unreachable(err)) {
        fprintf(stderr, "tadak-consumer topics: cannot reach Kafka at %s within %.1f s (%s)\n",
                o->brokers, PROVISION_REACH_MS / 1000.0, kafka_reach_hint(o->brokers));
        goto out;
    }
    status = 0;
    for (size_t i = 0; i < (o->every_type ? evtypes_count(o->set) : 1) && status == 0; i++) {
        const struct evtype *t = o->every_type ? evtypes_at(o->set, i) : NULL;
        char dlq[EVTYPE_TOPIC_MAX + 8];

        if (t)
            snprintf(dlq, sizeof(dlq), "%s.dlq", t->topic);
        if (provision_one(rk, t ? t->topic : o->topic, (int)o->partitions) != 0 ||
            provision_one(rk, t ? dlq : o->dlq_topic, (int)o->partitions) != 0)
            status = 1;
    }
    goto out;
fail:
    fprintf(stderr, "tadak-consumer topics: %s\n", errstr);
out:
    if (conf)
        rd_kafka_conf_destroy(conf);
    if (rk)
        rd_kafka_destroy(rk);
    return status;
}
