/*
 * provision.c - see provision.h.
 */
#include "provision.h"
#include "kafka.h"
#include "topics.h"

#include <stdio.h>

#define PROVISION_REACH_MS 5000 /* the first answer, as every command waits for it */
#define PROVISION_ADMIN_MS 15000

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
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            printf("created %s partitions=%d\n", topic, partitions);
            return 0;
        }
        if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) { /* another one was quicker */
            printf("exists  %s\n", topic);
            return 0;
        }
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
    if (provision_one(rk, o->topic, (int)o->partitions) == 0 &&
        provision_one(rk, o->dlq_topic, (int)o->partitions) == 0)
        status = 0;
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
