/*
 * kcount.c - the consume ceiling for `make bench`: read a topic from the
 * beginning and only count the messages.
 *
 *   kcount BROKERS TOPIC EXPECTED [-X key=value ...]
 *
 * Every partition is assigned at its beginning (no group, nothing
 * committed); librdkafka keeps its default fetch settings but for what -X
 * sets (bench.py: the consumer's fetch queue back-off). The clock runs from the first message to
 * the EXPECTED-th, so connecting and the first fetch round trip are left out, as they are from the
 * consumer's figure. Prints {"messages":N,"seconds":S,"per_s":R}.
 */
#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KCOUNT_DEADLINE_S 600

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char err[256];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "kcount: %s=%s: %s\n", k, v, err);
        return -1;
    }
    return 0;
}

/* All partitions of topic, each at its beginning; NULL when unknown. */
static rd_kafka_topic_partition_list_t *all_partitions(rd_kafka_t *rk, const char *topic)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_topic_partition_list_t *l = NULL;

    if (rd_kafka_metadata(rk, 0, t, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1 && md->topics[0].err == 0) {
        l = rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
        for (int i = 0; i < md->topics[0].partition_cnt; i++)
            rd_kafka_topic_partition_list_add(l, topic, md->topics[0].partitions[i].id)->offset =
                RD_KAFKA_OFFSET_BEGINNING;
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    return l;
}

/* The consumer's settings from BROKERS and the -X key=value pairs. 0 / -1. */
static int conf_from_args(rd_kafka_conf_t *conf, int argc, char **argv)
{
    if (conf_set(conf, "bootstrap.servers", argv[1]) || conf_set(conf, "group.id", "kcount") ||
        conf_set(conf, "enable.auto.commit", "false"))
        return -1;
    for (int i = 4; i + 1 < argc; i += 2) {
        char kv[512], *eq;
        snprintf(kv, sizeof(kv), "%s", argv[i + 1]);
        eq = strchr(kv, '=');
        if (strcmp(argv[i], "-X") != 0 || !eq) {
            fprintf(stderr, "kcount: expected -X key=value, got %s %s\n", argv[i], argv[i + 1]);
            return -1;
        }
        *eq = '\0';
        if (conf_set(conf, kv, eq + 1))
            return -1;
    }
    return 0;
}

/* Read until `expected` messages or the deadline; print the rate. 0 / -1. */
static int count_messages(rd_kafka_t *rk, long long expected)
{
    long long count = 0;
    double first = 0, last = 0, deadline = now_s() + KCOUNT_DEADLINE_S;

    while (count < expected && now_s() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (!m->err) {
            if (count++ == 0)
                first = now_s();
            last = now_s();
        }
        rd_kafka_message_destroy(m);
    }
    if (count < expected) {
        fprintf(stderr, "kcount: read %lld of %lld messages\n", count, expected);
        return -1;
    }
    printf("{\"messages\":%lld,\"seconds\":%.3f,\"per_s\":%.0f}\n", count, last - first,
           (double)(count - 1) / (last - first));
    return 0;
}

int main(int argc, char **argv)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_t *rk = NULL;
    char err[512], *end = NULL;
    long long expected = argc < 4 ? 0 : strtoll(argv[3], &end, 10);
    int rc = 1;

    if (argc < 4 || !end || *end != '\0' || expected <= 0) {
        fprintf(stderr, "usage: kcount BROKERS TOPIC EXPECTED [-X key=value ...]\n");
        rd_kafka_conf_destroy(conf);
        return 2;
    }
    if (conf_from_args(conf, argc, argv) != 0)
        goto out;
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk) {
        fprintf(stderr, "kcount: %s\n", err);
        goto out;
    }
    conf = NULL; /* now owned by rk */
    rd_kafka_poll_set_consumer(rk);
    parts = all_partitions(rk, argv[2]);
    if (!parts || rd_kafka_assign(rk, parts) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "kcount: cannot assign the partitions of %s\n", argv[2]);
        goto out;
    }
    rc = count_messages(rk, expected) == 0 ? 0 : 1;
out:
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    if (rk) {
        rd_kafka_consumer_close(rk);
        rd_kafka_destroy(rk);
    }
    if (conf)
        rd_kafka_conf_destroy(conf);
    return rc;
}
