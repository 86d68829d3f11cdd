/*
 * options.c - the consumer's config table. See options.h.
 */
#include "options.h"
#include "kafka.h"
#include "kafkaenv.h"
#include "log.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define O(f) offsetof(struct consumer_opts, f)

static const struct config_opt table[] = {
    {"brokers", 0, "KAFKA_BOOTSTRAP_SERVERS", CONFIG_STR, KAFKA_DEFAULT_BROKERS, 0, 0, O(brokers),
     "Kafka bootstrap servers"},
    {"redis-url", 0, "REDIS_URL", CONFIG_URL, "redis://127.0.0.1:6379/0", 0, 0, O(redis_url),
     "Redis for the dedupe gate"},
    {"require-redis", 0, "TADAK_REQUIRE_REDIS", CONFIG_BOOL, "0", 0, 0, O(require_redis),
     "Exit 1 when Redis cannot be reached at start, instead of deduping in PostgreSQL only"},
    {"database-url", 0, "DATABASE_URL", CONFIG_URL, "postgresql://localhost/tadak", 0, 0,
     O(database_url), "PostgreSQL connection URL"},
    {"topic", 0, "TADAK_TOPIC", CONFIG_STR, "votes", 0, 0, O(topic), "Kafka topic to read"},
    {"group", 0, "TADAK_GROUP", CONFIG_STR, "tadak", 0, 0, O(group), "Kafka consumer group"},
    {"dlq-topic", 0, "TADAK_DLQ_TOPIC", CONFIG_STR, NULL, 0, 0, O(dlq_topic),
     "Dead-letter topic for invalid messages (default <topic>.dlq)"},
    {"partitions", 0, "TADAK_PARTITIONS", CONFIG_INT, "6", 1, 10000, O(partitions),
     "tadak-consumer topics: partitions of a topic it creates (an existing one keeps its own)"},
    {"batch-size", 0, "TADAK_BATCH_SIZE", CONFIG_INT, "1000", 1, 100000, O(batch_size),
     "Most messages per batch"},
    {"inserts-in-flight", 0, "TADAK_INSERTS_IN_FLIGHT", CONFIG_INT, "2", 1, 2, O(inserts_in_flight),
     "Batch INSERTs PostgreSQL may run at once, each on its own connection"},
    {"batch-wait-ms", 0, "TADAK_BATCH_WAIT_MS", CONFIG_INT, "100", 0, 60000, O(batch_wait_ms),
     "Longest wait to fill a batch"},
    {"lock-ttl-ms", 0, "TADAK_LOCK_TTL_MS", CONFIG_INT, "30000", 100, 86400000, O(lock_ttl_ms),
     "Lifetime of a Redis in-flight lock"},
    {"dedupe-window-s", 0, "TADAK_DEDUPE_WINDOW_S", CONFIG_INT, "86400", 1, 315360000,
     O(dedupe_window_s), "How long Redis remembers a recorded vote"},
    {"key-prefix", 0, "TADAK_KEY_PREFIX", CONFIG_STR, "", 0, 0, O(key_prefix),
     "Prefix for Redis keys"},
    {"start-at", 0, "TADAK_START_AT", CONFIG_STR, "earliest", 0, 0, O(start_at),
     "Where a group without a committed offset starts: earliest (every vote in the log) or "
     "latest (only votes produced after it joined: votes already acknowledged are never "
     "recorded)"},
    {"from-beginning", 0, NULL, CONFIG_BOOL, "0", 0, 0, O(from_beginning),
     "Same as --start-at earliest"},
    {"idle-exit", 0, NULL, CONFIG_INT, "0", 0, 31536000, O(idle_exit_s),
     "Exit 0 after this many seconds with partitions assigned and nothing to consume (0: never)"},
    {"join-timeout-s", 0, "TADAK_JOIN_TIMEOUT_S", CONFIG_INT, "60", 1, 31536000, O(join_timeout_s),
     "With --idle-exit: exit 3 when the topic or an assignment is not there within this long"},
    {"group-protocol", 0, "TADAK_GROUP_PROTOCOL", CONFIG_STR, "consumer", 0, 0, O(group_protocol),
     "consumer: KIP-848, the broker assigns and rebalances incrementally (Kafka >= 4.0); classic: "
     "the older protocol with the cooperative-sticky assignor (for older brokers)"},
    {"session-timeout-ms", 0, "TADAK_SESSION_TIMEOUT_MS", CONFIG_INT, "6000", 1000, 3600000,
     O(session_timeout_ms),
     "With --group-protocol classic: a consumer that stops heartbeating loses its partitions "
     "after this long (heartbeats every sixth of it); with consumer the broker's "
     "group.consumer.session.timeout.ms decides"},
    {"instance-id", 0, "TADAK_INSTANCE_ID", CONFIG_STR, NULL, 0, 0, O(instance_id),
     "Static group membership (e.g. the pod name): a restart under the same id takes its "
     "partitions back without a rebalance; [A-Za-z0-9._-], at most 64"},
    {"statement-timeout-ms", 0, "TADAK_STATEMENT_TIMEOUT_MS", CONFIG_INT, "4000", 100, 3600000,
     O(statement_timeout_ms),
     "PostgreSQL statement timeout; a batch that times out is held and retried like an outage"},
    {"kafka", 'X', NULL, CONFIG_KV, NULL, 0, 0, O(extra),
     "librdkafka setting key=value (repeatable); also from the environment as TADAK_KAFKA_<KEY>, "
     "e.g. TADAK_KAFKA_SASL_PASSWORD for sasl.password"},
    {"metrics", 0, NULL, CONFIG_ADDR, NULL, 0, 0, O(metrics),
     "Serve Prometheus metrics on HOST:PORT"},
    {"log-level", 0, "TADAK_LOG_LEVEL", CONFIG_LOG_LEVEL, "info", 0, 0, O(log_level),
     "error, warn, info or debug"},
    CONFIG_END,
};

static const char synopsis[] =
    "usage: tadak-consumer [options]               consume votes into PostgreSQL\n"
    "       tadak-consumer migrate [options]       apply the schema and exit\n"
    "       tadak-consumer topics [options]        create the vote and dead-letter topics\n"
    "                                              (--topic, --dlq-topic, --partitions)\n"
    "       tadak-consumer new-identity [options]  migrate, then give this database a new id\n"
    "                                              (run it on a copy: a restored backup, a\n"
    "                                              promoted replica)";

/*
 * librdkafka settings the delivery guarantee depends on: -X (or
 * TADAK_KAFKA_*) may not change them. `keep` is the one value allowed (the
 * consumer's own), NULL when the setting has a flag of its own or none.
 */
static const struct {
    const char *key, *keep, *why;
} guarded[] = {
    {"enable.auto.offset.store", "false",
     "tadak stores an offset only once its message is recorded; librdkafka storing every polled "
     "message lets auto-commit pass votes never recorded"},
    {"partition.assignment.strategy", NULL,
     "the consumer's rebalance handling is written for its own assignor"},
    {"group.protocol", NULL, "use --group-protocol (consumer or classic)"},
    {"enable.partition.eof", "false",
     "end-of-partition events are not messages the consumer reads"},
    {"auto.offset.reset", NULL, "use --start-at (earliest or latest) or --from-beginning"},
};

/* -1 (errstr names the key and why) when key=val would break a guarantee. */
static int check_guarded(const char *key, const char *val, const char *where, char *errstr,
                         size_t errsize)
{
    for (size_t i = 0; i < UTIL_ARRAY_LEN(guarded); i++) {
        if (strcmp(key, guarded[i].key) != 0 ||
            (guarded[i].keep && strcasecmp(val, guarded[i].keep) == 0))
            continue;
        snprintf(errstr, errsize, "%s %s is not allowed: %s", where, key, guarded[i].why);
        return -1;
    }
    return 0;
}

static int check_kafka_settings(const struct config_kv *extra, char *errstr, size_t errsize)
{
    char key[128], where[160];

    for (size_t i = 0; i < extra->n; i++)
        if (check_guarded(extra->keys[i], extra->vals[i], "-X", errstr, errsize) != 0)
            return -1;
    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || !kafkaenv_key(*e, key, sizeof(key)))
            continue;
        snprintf(where, sizeof(where), "environment %.*s (the Kafka setting)", (int)(eq - *e), *e);
        if (check_guarded(key, eq + 1, where, errstr, errsize) != 0)
            return -1;
    }
    return 0;
}

int options_load(struct consumer_opts *o, int argc, char **argv, char *errstr, size_t errsize)
{
    char **pos = xcalloc((size_t)argc + 1, sizeof(*pos));
    int npos = 0, rc;

    memset(o, 0, sizeof(*o));
    rc = config_load(table, o, argc - 1, argv + 1, pos, &npos, errstr, errsize);
    if (rc == 1)
        config_usage(stdout, table, synopsis);
    if (rc != 0)
        goto out;
    rc = -1;
    if (npos == 1 && strcmp(pos[0], "migrate") == 0) {
        o->migrate_only = 1;
    } else if (npos == 1 && strcmp(pos[0], "topics") == 0) {
        o->topics_only = 1;
    } else if (npos == 1 && strcmp(pos[0], "new-identity") == 0) {
        o->migrate_only = o->new_identity = 1;
    } else if (npos > 0) {
        snprintf(errstr, errsize, "unexpected argument \"%s\" (try --help)", pos[0]);
        goto out;
    }
    log_set_level(o->log_level);
    if (!o->dlq_topic || !*o->dlq_topic) {
        snprintf(o->dlq_default, sizeof(o->dlq_default), "%s.dlq", o->topic);
        o->dlq_topic = o->dlq_default;
    }
    if (o->from_beginning)
        o->start_at = "earliest";
    if (strcmp(o->start_at, "earliest") != 0 && strcmp(o->start_at, "latest") != 0) {
        snprintf(errstr, errsize, "--start-at must be earliest or latest, not \"%s\"", o->start_at);
        goto out;
    }
    if (o->instance_id && !*o->instance_id)
        o->instance_id = NULL;
    if (o->instance_id &&
        (strlen(o->instance_id) > 64 ||
         strspn(o->instance_id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                "0123456789._-") != strlen(o->instance_id))) {
        snprintf(errstr, errsize,
                 "--instance-id may hold only A-Z a-z 0-9 . _ - (at most 64): \"%s\"",
                 o->instance_id);
        goto out;
    }
    if (strcmp(o->group_protocol, "consumer") != 0 && strcmp(o->group_protocol, "classic") != 0) {
        snprintf(errstr, errsize, "--group-protocol must be consumer or classic, not \"%s\"",
                 o->group_protocol);
        goto out;
    }
    if (check_kafka_settings(&o->extra, errstr, errsize) != 0)
        goto out;
    if (strcmp(o->dlq_topic, o->topic) == 0) {
        snprintf(errstr, errsize, "the dead-letter topic must differ from --topic");
        goto out;
    }
    rc = 0;
out:
    free(pos);
    return rc;
}

void options_free(struct consumer_opts *o)
{
    config_free(table, o);
}
