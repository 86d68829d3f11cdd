/*
 * options.c - the consumer's config table. See options.h. The rows the
 * producer has too (Kafka, Redis, PostgreSQL, log level, key prefix) are
 * common/sharedopts.h's, placed where --help has always listed them.
 */
#include "options.h"
#include "kafkaenv.h"
#include "log.h"
#include "sharedopts.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define O(f) offsetof(struct consumer_opts, f)

static const struct config_opt table[] = {
    SHAREDOPTS_BROKERS(struct consumer_opts),
    SHAREDOPTS_REDIS_URL(struct consumer_opts, "redis://127.0.0.1:6379/0"),
    {.name = "require-redis",
     .env = "TADAK_REQUIRE_REDIS",
     .type = CONFIG_BOOL,
     .def = "0",
     .offset = O(require_redis),
     .help =
         "Exit 1 when Redis cannot be reached at start, instead of deduping in PostgreSQL only"},
    SHAREDOPTS_DATABASE_URL(struct consumer_opts, "postgresql://localhost/tadak"),
    SHAREDOPTS_TOPIC(struct consumer_opts),
    SHAREDOPTS_TYPES(struct consumer_opts),
    SHAREDOPTS_TYPE(struct consumer_opts),
    {.name = "group",
     .env = "TADAK_GROUP",
     .type = CONFIG_STR,
     .def = "tadak",
     .offset = O(group),
     .help = "Kafka consumer group (for a --type other than vote: tadak-<type>)"},
    {.name = "dlq-topic",
     .env = "TADAK_DLQ_TOPIC",
     .type = CONFIG_STR,
     .offset = O(dlq_topic),
     .help = "Dead-letter topic for invalid messages (default <topic>.dlq)"},
    {.name = "partitions",
     .env = "TADAK_PARTITIONS",
     .type = CONFIG_INT,
     .def = "6",
     .min = 1,
     .max = 10000,
     .offset = O(partitions),
     .help =
         "tadak-consumer topics: partitions of a topic it creates (an existing one keeps its own)"},
    {.name = "batch-size",
     .env = "TADAK_BATCH_SIZE",
     .type = CONFIG_INT,
     .def = "1000",
     .min = 1,
     .max = 100000,
     .offset = O(batch_size),
     .help = "Most messages per batch"},
    {.name = "inserts-in-flight",
     .env = "TADAK_INSERTS_IN_FLIGHT",
     .type = CONFIG_INT,
     .def = "2",
     .min = 1,
     .max = 2,
     .offset = O(inserts_in_flight),
     .help = "Batch INSERTs PostgreSQL may run at once, each on its own connection"},
    {.name = "batch-wait-ms",
     .env = "TADAK_BATCH_WAIT_MS",
     .type = CONFIG_INT,
     .def = "100",
     .max = 60000,
     .offset = O(batch_wait_ms),
     .help = "Longest wait to fill a batch"},
    {.name = "lock-ttl-ms",
     .env = "TADAK_LOCK_TTL_MS",
     .type = CONFIG_INT,
     .def = "30000",
     .min = 100,
     .max = 86400000,
     .offset = O(lock_ttl_ms),
     .help = "Lifetime of a Redis in-flight lock"},
    {.name = "dedupe-window-s",
     .env = "TADAK_DEDUPE_WINDOW_S",
     .type = CONFIG_INT,
     .def = "86400",
     .min = 1,
     .max = 315360000,
     .offset = O(dedupe_window_s),
     .help = "How long Redis remembers a recorded vote"},
    SHAREDOPTS_KEY_PREFIX(struct consumer_opts),
    {.name = "start-at",
     .env = "TADAK_START_AT",
     .type = CONFIG_STR,
     .def = "earliest",
     .offset = O(start_at),
     .help = "Where a group without a committed offset starts: earliest (every vote in the log) or "
             "latest (only votes produced after it joined: votes already acknowledged are never "
             "recorded)"},
    {.name = "from-beginning",
     .type = CONFIG_BOOL,
     .def = "0",
     .offset = O(from_beginning),
     .help = "Same as --start-at earliest"},
    {.name = "idle-exit",
     .type = CONFIG_INT,
     .def = "0",
     .max = 31536000,
     .offset = O(idle_exit_s),
     .help = "Exit 0 after this many seconds with partitions assigned and nothing to consume (0: "
             "never)"},
    {.name = "join-timeout-s",
     .env = "TADAK_JOIN_TIMEOUT_S",
     .type = CONFIG_INT,
     .def = "60",
     .min = 1,
     .max = 31536000,
     .offset = O(join_timeout_s),
     .help =
         "With --idle-exit: exit 3 when the topic or an assignment is not there within this long"},
    {.name = "group-protocol",
     .env = "TADAK_GROUP_PROTOCOL",
     .type = CONFIG_STR,
     .def = "consumer",
     .offset = O(group_protocol),
     .help = "consumer: KIP-848, the broker assigns and rebalances incrementally (Kafka >= 4.0); "
             "classic: "
             "the older protocol with the cooperative-sticky assignor (for older brokers)"},
    {.name = "session-timeout-ms",
     .env = "TADAK_SESSION_TIMEOUT_MS",
     .type = CONFIG_INT,
     .def = "6000",
     .min = 1000,
     .max = 3600000,
     .offset = O(session_timeout_ms),
     .help =
         "With --group-protocol classic: a consumer that stops heartbeating loses its partitions "
         "after this long (heartbeats every sixth of it); with consumer the broker's "
         "group.consumer.session.timeout.ms decides"},
    {.name = "instance-id",
     .env = "TADAK_INSTANCE_ID",
     .type = CONFIG_STR,
     .offset = O(instance_id),
     .help = "Static group membership (e.g. the pod name): a restart under the same id takes its "
             "partitions back without a rebalance; [A-Za-z0-9._-], at most 64"},
    {.name = "statement-timeout-ms",
     .env = "TADAK_STATEMENT_TIMEOUT_MS",
     .type = CONFIG_INT,
     .def = "4000",
     .min = 100,
     .max = 3600000,
     .offset = O(statement_timeout_ms),
     .help =
         "PostgreSQL statement timeout; a batch that times out is held and retried like an outage"},
    SHAREDOPTS_KAFKA(struct consumer_opts),
    {.name = "metrics",
     .type = CONFIG_ADDR,
     .offset = O(metrics),
     .help = "Serve Prometheus metrics on HOST:PORT"},
    SHAREDOPTS_LOG_LEVEL(struct consumer_opts),
    CONFIG_END,
};

static const char synopsis[] =
    "usage: tadak-consumer [options]               consume votes (or --type's events) into "
    "PostgreSQL\n"
    "       tadak-consumer migrate [options]       apply the schema (every type's table) and exit\n"
    "       tadak-consumer topics [options]        create the type's and the dead-letter topics\n"
    "                                              (--type, --topic, --dlq-topic, --partitions)\n"
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
    {.key = "enable.auto.offset.store",
     .keep = "false",
     .why = "tadak stores an offset only once its message is recorded; librdkafka storing every "
            "polled "
            "message lets auto-commit pass votes never recorded"},
    {.key = "partition.assignment.strategy",
     .keep = NULL,
     .why = "the consumer's rebalance handling is written for its own assignor"},
    {.key = "group.protocol", .keep = NULL, .why = "use --group-protocol (consumer or classic)"},
    {.key = "enable.partition.eof",
     .keep = "false",
     .why = "end-of-partition events are not messages the consumer reads"},
    {.key = "auto.offset.reset",
     .keep = NULL,
     .why = "use --start-at (earliest or latest) or --from-beginning"},
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

/* The subcommand, the one positional argument there may be: 0, or -1 for another. */
static int pick_subcommand(struct consumer_opts *o, char **pos, int npos, char *errstr,
                           size_t errsize)
{
    if (npos == 0)
        return 0;
    if (npos == 1 && strcmp(pos[0], "migrate") == 0) {
        o->migrate_only = 1;
    } else if (npos == 1 && strcmp(pos[0], "topics") == 0) {
        o->topics_only = 1;
    } else if (npos == 1 && strcmp(pos[0], "new-identity") == 0) {
        o->migrate_only = o->new_identity = 1;
    } else {
        snprintf(errstr, errsize, "unexpected argument \"%s\" (try --help)", pos[0]);
        return -1;
    }
    return 0;
}

/*
 * Whether the row `name` kept its default: config_load points a string at
 * the row's own default text, and at argv or environ when one was given,
 * so "--topic votes" is told apart from no --topic at all.
 */
static int from_default(const char *value, const char *name)
{
    for (const struct config_opt *r = table; r->name; r++)
        if (strcmp(r->name, name) == 0)
            return value == r->def;
    return 0;
}

/* The types (the file's, or the vote alone) and --type among them: 0, or -1 (usage). */
static int pick_type(struct consumer_opts *o, char *errstr, size_t errsize)
{
    char known[512];
    size_t len = 0;

    if (!(o->set = evtypes_load(o->types_path, errstr, errsize)))
        return -1;
    if ((o->type = evtypes_find(o->set, o->type_name)) != NULL) {
        /* `topics --types FILE` alone: every type's topics (provision.c). */
        o->every_type = o->types_path && from_default(o->type_name, "type") &&
                        from_default(o->topic, "topic") && !o->dlq_topic;
        if (from_default(o->topic, "topic"))
            o->topic = o->type->topic;
        /* A group per type: the vote's stays "tadak", a poll_answer's is "tadak-poll_answer". */
        if (from_default(o->group, "group") && o->type != evtype_vote()) {
            snprintf(o->group_default, sizeof(o->group_default), "%s-%s", o->group, o->type->name);
            o->group = o->group_default;
        }
        return 0;
    }
    known[0] = '\0';
    for (size_t i = 0; i < evtypes_count(o->set) && len < sizeof(known); i++)
        len += (size_t)snprintf(known + len, sizeof(known) - len, "%s%s", i ? ", " : "",
                                evtypes_at(o->set, i)->name);
    snprintf(errstr, errsize, "--type %s: no such type (known: %s%s)", o->type_name, known,
             o->types_path ? "" : "; others come from --types FILE");
    return -1;
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
    if (pick_subcommand(o, pos, npos, errstr, errsize) != 0)
        goto out;
    log_set_level(o->log_level);
    if (o->types_path && !*o->types_path)
        o->types_path = NULL;
    if (pick_type(o, errstr, errsize) != 0)
        goto out;
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
    evtypes_free(o->set);
    o->set = NULL;
    config_free(table, o);
}
