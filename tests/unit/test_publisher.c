/*
 * test_publisher.c - a fatal error of the idempotent producer is recovered
 * from by the publisher itself, on librdkafka's mock cluster (three brokers
 * in this process, no Kafka needed): the probe says not ready, every message
 * the fatal producer held gets exactly one completion, a vote sent after the
 * recovery is acknowledged, and the recovery is counted.
 *
 * Each event type's events go to the type's own topic, the vote's to
 * --topic; a message is read back from the mock cluster to show where it
 * landed.
 *
 * The fatal error is injected with rd_kafka_test_fatal_error() through
 * publisher_test_fatal(); the mock cluster belongs to a separate handle, so it
 * outlives the producer the publisher throws away. Every wait polls a
 * condition until a deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "event.h"
#include "log.h"
#include "metrics.h"
#include "publisher.h"
#include "util.h"

#define TOPIC       "votes"
#define BROKERS     3
#define HELD        32    /* messages outstanding when the fatal error hits */
#define DEADLINE_MS 15000 /* under the messages' own timeout (30 s + 1 s) */

struct cluster {
    rd_kafka_t *rk; /* owns the mock cluster */
    rd_kafka_mock_cluster_t *mc;
    const char *bootstraps;
};

/* One message's completions: how many, and the last error. */
struct tracked {
    struct publish_completion completion; /* first member: the report finds us by it */
    atomic_int calls;
    atomic_int err;
};

static void on_done(struct publish_completion *cb, const struct publish_report *r)
{
    struct tracked *t = (struct tracked *)cb;

    atomic_store(&t->err, r->err);
    atomic_fetch_add(&t->calls, 1);
}

static int setup(void **state)
{
    static struct cluster c;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[512];

    log_set_level(LOG_WARN);
    assert_int_equal(rd_kafka_conf_set(conf, "test.mock.num.brokers", "3", err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    /* The cluster's owner logs nothing: its lines are not the publisher's. */
    assert_int_equal(rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err)), RD_KAFKA_CONF_OK);
    c.rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    assert_non_null(c.rk);
    c.mc = rd_kafka_handle_mock_cluster(c.rk);
    assert_non_null(c.mc);
    assert_int_equal(rd_kafka_mock_topic_create(c.mc, TOPIC, 6, BROKERS), 0);
    assert_int_equal(rd_kafka_mock_topic_create(c.mc, "poll_answers", 1, BROKERS), 0);
    c.bootstraps = rd_kafka_mock_cluster_bootstraps(c.mc);
    *state = &c;
    return 0;
}

static int teardown(void **state)
{
    struct cluster *c = *state;

    rd_kafka_destroy(c->rk);
    return 0;
}

static void nap_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* The publisher as `serve` has it (poller thread) or as the CLI (poller 0). */
static struct publisher *open_publisher(struct cluster *c, struct metrics *m, int poller)
{
    struct publisher_opts o = {
        .brokers = c->bootstraps, .topic = TOPIC, .delivery_timeout_ms = 30000, .poller = poller};
    char err[512];
    struct publisher *p = publisher_new(&o, m, err, sizeof(err));

    if (!p)
        fail_msg("publisher_new: %s", err);
    return p;
}

static void send_vote(struct publisher *p, int64_t user, struct tracked *t)
{
    struct event v;
    char err[256];

    event_vote(&v, user, 1 + user % 4);
    v.ts_ms = util_wall_ms();
    event_new_id(v.event_id);
    t->completion.fn = on_done;
    atomic_store(&t->calls, 0);
    atomic_store(&t->err, -1);
    if (publisher_send(p, &v, &t->completion, PUBLISH_NOWAIT, err, sizeof(err)) != 0)
        fail_msg("publisher_send: %s", err);
}

/* Wait for t's completion, serving reports here when there is no poller. */
static void wait_done(struct publisher *p, int poller, struct tracked *t, const char *what)
{
    int64_t end = util_now_ms() + DEADLINE_MS;

    while (atomic_load(&t->calls) == 0) {
        if (util_now_ms() > end)
            fail_msg("no completion for %s within %d ms", what, DEADLINE_MS);
        if (poller)
            nap_ms(10);
        else
            publisher_poll(p, 10);
    }
}

static void wait_probe(struct publisher *p, int want, const char *what)
{
    int64_t end = util_now_ms() + DEADLINE_MS;

    while (publisher_probe(p, 500) != want) {
        if (util_now_ms() > end)
            fail_msg("publisher_probe never answered %d: %s", want, what);
        nap_ms(20);
    }
}

/* A first vote acknowledged: the producer has its producer id. */
static void warm_up(struct publisher *p, int poller)
{
    struct tracked t;

    wait_probe(p, 1, "the mock brokers at start");
    send_vote(p, 1, &t);
    wait_done(p, poller, &t, "the first vote");
    assert_int_equal(atomic_load(&t.err), 0);
}

static int64_t rebuilds_metric(struct metrics *m)
{
    return metric_value(metrics_counter(m, "tadak_kafka_producer_rebuilds_total", "", ""));
}

static void test_fatal_error_is_not_ready_then_recovers(void **state)
{
    struct cluster *c = *state;
    struct metrics *m = metrics_new();
    struct publisher *p = open_publisher(c, m, 1);
    struct tracked after;

    warm_up(p, 1);
    assert_int_equal(publisher_test_fatal(p), 0);
    /* The brokers answer, yet the producer is useless: not ready. */
    assert_int_equal(publisher_probe(p, 500), 0);
    wait_probe(p, 1, "ready again after the fatal error");
    assert_int_equal(publisher_rebuilds(p), 1);
    assert_int_equal(rebuilds_metric(m), 1);

    send_vote(p, 2, &after);
    wait_done(p, 1, &after, "the vote sent after the recovery");
    assert_int_equal(atomic_load(&after.err), 0);
    publisher_free(p);
    assert_int_equal(atomic_load(&after.calls), 1);
    metrics_free(m);
}

static void test_held_messages_fail_once_and_later_votes_pass(void **state)
{
    struct cluster *c = *state;
    struct publisher *p = open_publisher(c, NULL, 1);
    static struct tracked held[HELD];
    struct tracked after;
    int64_t end;

    warm_up(p, 1);
    /* No broker reachable: the messages stay in the producer's queues. */
    for (int32_t b = 1; b <= BROKERS; b++)
        assert_int_equal(rd_kafka_mock_broker_set_down(c->mc, b), 0);
    for (int i = 0; i < HELD; i++)
        send_vote(p, 100 + i, &held[i]);
    assert_int_equal(publisher_test_fatal(p), 0);

    end = util_now_ms() + DEADLINE_MS;
    for (int i = 0; i < HELD; i++)
        while (atomic_load(&held[i].calls) == 0) {
            if (util_now_ms() > end)
                fail_msg("message %d held by the fatal producer was never reported", i);
            nap_ms(10);
        }
    while (publisher_rebuilds(p) < 1) {
        if (util_now_ms() > end)
            fail_msg("the fatal producer was never replaced");
        nap_ms(10);
    }
    assert_int_equal(publisher_probe(p, 500), 0); /* no broker up, and once for the error */

    for (int32_t b = 1; b <= BROKERS; b++)
        assert_int_equal(rd_kafka_mock_broker_set_up(c->mc, b), 0);
    wait_probe(p, 1, "brokers back");
    send_vote(p, 200, &after);
    wait_done(p, 1, &after, "the vote sent after the recovery");
    assert_int_equal(atomic_load(&after.err), 0);

    publisher_free(p); /* would report anything still held a second time */
    for (int i = 0; i < HELD; i++) {
        if (atomic_load(&held[i].calls) != 1)
            fail_msg("message %d: %d completions", i, atomic_load(&held[i].calls));
        assert_int_not_equal(atomic_load(&held[i].err), 0); /* no broker could ack it */
    }
    assert_int_equal(atomic_load(&after.calls), 1);
}

/* The CLI has no poller thread: serving reports (publisher_poll) recovers. */
static void test_without_poller_the_caller_recovers(void **state)
{
    struct cluster *c = *state;
    struct publisher *p = open_publisher(c, NULL, 0);
    struct tracked after;
    int64_t end = util_now_ms() + DEADLINE_MS;

    warm_up(p, 0);
    assert_int_equal(publisher_test_fatal(p), 0);
    while (publisher_rebuilds(p) < 1) {
        if (util_now_ms() > end)
            fail_msg("the fatal producer was never replaced");
        publisher_poll(p, 10);
    }
    send_vote(p, 300, &after);
    wait_done(p, 0, &after, "the vote sent after the recovery");
    assert_int_equal(atomic_load(&after.err), 0);
    assert_int_equal(publisher_flush(p, 5000), 0);
    publisher_free(p);
    assert_int_equal(atomic_load(&after.calls), 1);
}

/* ...and a send that finds the producer fatal rebuilds it and goes to the new one. */
static void test_without_poller_a_send_recovers(void **state)
{
    struct cluster *c = *state;
    struct publisher *p = open_publisher(c, NULL, 0);
    struct tracked after;

    warm_up(p, 0);
    assert_int_equal(publisher_test_fatal(p), 0);
    send_vote(p, 400, &after); /* nothing polled in between: the send meets the error */
    assert_int_equal(publisher_rebuilds(p), 1);
    wait_done(p, 0, &after, "the vote sent on the fatal producer");
    assert_int_equal(atomic_load(&after.err), 0);
    publisher_free(p);
    assert_int_equal(atomic_load(&after.calls), 1);
}

static const char poll_types[] =
    "{\"types\":{\"poll_answer\":{\"fields\":{\"poll_id\":\"id\",\"user_id\":\"id\","
    "\"option_id\":{\"kind\":\"int\",\"min\":1,\"max\":64}},"
    "\"key\":[\"poll_id\",\"user_id\"],\"identity\":\"user_id\"}}}";

/* The key of the message at offset 0 of topic's partition 0 on the mock cluster. */
static void first_key(struct cluster *c, const char *topic, char *key, size_t size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *tp = rd_kafka_topic_partition_list_new(1);
    rd_kafka_message_t *m = NULL;
    int64_t end = util_now_ms() + DEADLINE_MS;
    char err[256];
    rd_kafka_t *rk;

    rd_kafka_conf_set(conf, "bootstrap.servers", c->bootstraps, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", "test-publisher", err, sizeof(err));
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    assert_non_null(rk);
    rd_kafka_topic_partition_list_add(tp, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(rk, tp), 0);
    while (!m || m->err) {
        if (m)
            rd_kafka_message_destroy(m);
        if (util_now_ms() > end)
            fail_msg("no message on %s within %d ms", topic, DEADLINE_MS);
        m = rd_kafka_consumer_poll(rk, 100);
    }
    assert_true(m->key_len < size);
    memcpy(key, m->key, m->key_len);
    key[m->key_len] = '\0';
    rd_kafka_message_destroy(m);
    rd_kafka_topic_partition_list_destroy(tp);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
}

/* An event of another type goes to its type's topic; a publisher without the type refuses it. */
static void test_each_type_to_its_topic(void **state)
{
    struct cluster *c = *state;
    char err[256], text[EVTYPE_TEXT_MAX], key[EVENT_TOKEN_LEN];
    struct evtypes *set = evtypes_parse(poll_types, strlen(poll_types), "test", err, sizeof(err));
    struct publisher_opts o = {.brokers = c->bootstraps,
                               .topic = TOPIC,
                               .types = set,
                               .delivery_timeout_ms = 30000,
                               .poller = 1};
    static const char body[] = "{\"poll_id\":7,\"user_id\":3,\"option_id\":2}";
    struct publisher *p, *votes_only;
    struct tracked t;
    enum event_err e;
    struct event ev;

    if (!set)
        fail_msg("evtypes_parse: %s", err);
    event_init(&ev, evtypes_find(set, "poll_answer"), text);
    assert_int_equal(event_parse(&ev, body, strlen(body), 0, &e, err, sizeof(err)), 0);
    event_new_id(ev.event_id);
    if (!(p = publisher_new(&o, NULL, err, sizeof(err))))
        fail_msg("publisher_new: %s", err);
    assert_string_equal(publisher_topic_of(p, ev.type), "poll_answers");
    assert_string_equal(publisher_topic_of(p, evtype_vote()), TOPIC);
    assert_int_equal(publisher_topic_named(p, "poll_answers", 5000, err, sizeof(err)), 1);
    warm_up(p, 1);
    t.completion.fn = on_done;
    atomic_store(&t.calls, 0);
    assert_int_equal(publisher_send(p, &ev, &t.completion, PUBLISH_NOWAIT, err, sizeof(err)), 0);
    wait_done(p, 1, &t, "the poll answer");
    assert_int_equal(atomic_load(&t.err), 0);
    first_key(c, "poll_answers", key, sizeof(key));
    assert_string_equal(key, "poll_answer:7:3");
    publisher_free(p);

    votes_only = open_publisher(c, NULL, 1);
    assert_null(publisher_topic_of(votes_only, ev.type));
    assert_int_equal(
        publisher_send(votes_only, &ev, &t.completion, PUBLISH_NOWAIT, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "poll_answer"));
    publisher_free(votes_only);
    evtypes_free(set);
}

/* The ack log holds every acknowledged event, the longest a type can make too. */
static void test_ack_log_holds_a_long_event(void **state)
{
    static const char types[] =
        "{\"types\":{\"note\":{\"fields\":{\"a\":{\"kind\":\"string\",\"max_length\":250},"
        "\"b\":{\"kind\":\"string\",\"max_length\":250},"
        "\"c\":{\"kind\":\"string\",\"max_length\":250},"
        "\"d\":{\"kind\":\"string\",\"max_length\":250},\"n\":\"id\"},"
        "\"key\":[\"n\"],\"topic\":\"poll_answers\"}}}";
    struct cluster *c = *state;
    char err[256], text[EVTYPE_TEXT_MAX], path[] = "/tmp/tadak-ack-XXXXXX", line[4096];
    struct evtypes *set = evtypes_parse(types, strlen(types), "test", err, sizeof(err));
    struct publisher_opts o = {.brokers = c->bootstraps,
                               .topic = TOPIC,
                               .types = set,
                               .delivery_timeout_ms = 30000,
                               .ack_log = path,
                               .poller = 1};
    struct publisher *p;
    struct tracked t = {.completion = {.fn = on_done}};
    struct event ev;
    int fd = mkstemp(path);
    FILE *f;

    if (!set)
        fail_msg("evtypes_parse: %s", err);
    assert_true(fd >= 0);
    close(fd);
    event_init(&ev, evtypes_find(set, "note"), text);
    for (size_t i = 0; i < 4; i++) { /* 1000 characters: all an event's text may hold */
        memset(text + ev.type->fields[i].text_off, 'x', 250);
        text[ev.type->fields[i].text_off + 250] = '\0';
        ev.v[i] = 250;
    }
    ev.v[4] = 1;
    assert_int_equal(event_make_token(&ev), 0);
    event_new_id(ev.event_id);
    if (!(p = publisher_new(&o, NULL, err, sizeof(err))))
        fail_msg("publisher_new: %s", err);
    assert_int_equal(publisher_send(p, &ev, &t.completion, PUBLISH_NOWAIT, err, sizeof(err)), 0);
    wait_done(p, 1, &t, "the long event");
    assert_int_equal(atomic_load(&t.err), 0);
    publisher_free(p);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(line, sizeof(line), f));
    fclose(f);
    unlink(path);
    assert_true(strlen(line) > 4 * 250);
    assert_non_null(strstr(line, ev.event_id));
    assert_non_null(strstr(line, "\"partition\":"));
    evtypes_free(set);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fatal_error_is_not_ready_then_recovers),
        cmocka_unit_test(test_held_messages_fail_once_and_later_votes_pass),
        cmocka_unit_test(test_without_poller_the_caller_recovers),
        cmocka_unit_test(test_without_poller_a_send_recovers),
        cmocka_unit_test(test_each_type_to_its_topic),
        cmocka_unit_test(test_ack_log_holds_a_long_event),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
