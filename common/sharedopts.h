/*
 * sharedopts.h - the option rows tadak-producer and tadak-consumer share:
 * Kafka (--brokers, --topic, -X), Redis (--redis-url), PostgreSQL
 * (--database-url), --log-level, --key-prefix and the event types file
 * (--types). Each is defined here once,
 * with its flag, short form, environment variable, type, default and its
 * one help text, so the two programs' --help cannot drift apart
 * (tests/integration/test_options.py compares them).
 *
 * Each macro is one struct config_opt row (config.h) for the options struct
 * `opts_type` of the program whose table it sits in; that struct has a field of
 * the row's name, which the row's offset points at:
 *
 *   static const struct config_opt table[] = {
 *       SHAREDOPTS_BROKERS(struct consumer_opts),
 *       SHAREDOPTS_REDIS_URL(struct consumer_opts, "redis://127.0.0.1:6379/0"),
 *       ...
 *       CONFIG_END};
 *
 * Rows, not a struct both programs embed: the programs' modules read these
 * settings as o->brokers, o->topic..., and each program lists them where its
 * --help has always listed them. The Redis and PostgreSQL URLs take their
 * default from the program's table: the consumer cannot run without them
 * (it defaults to the local servers), serve runs without them (no default:
 * the features that need them answer 503).
 */
#ifndef TADAK_SHAREDOPTS_H
#define TADAK_SHAREDOPTS_H

#include "config.h"
#include "kafka.h"

#include <stddef.h>

#define SHAREDOPTS_BROKERS(opts_type)                                                              \
    {                                                                                              \
        .name = "brokers", .short_name = 'b', .env = "KAFKA_BOOTSTRAP_SERVERS",                    \
        .type = CONFIG_STR, .def = KAFKA_DEFAULT_BROKERS, .offset = offsetof(opts_type, brokers),  \
        .help = "Kafka bootstrap servers, comma separated"                                         \
    }

#define SHAREDOPTS_TOPIC(opts_type)                                                                \
    {                                                                                              \
        .name = "topic", .short_name = 't', .env = "TADAK_TOPIC", .type = CONFIG_STR,              \
        .def = "votes", .offset = offsetof(opts_type, topic),                                      \
        .help = "Kafka topic of the events (a --type other than vote: its own unless given)"       \
    }

#define SHAREDOPTS_KAFKA(opts_type)                                                                \
    {                                                                                              \
        .name = "kafka", .short_name = 'X', .type = CONFIG_KV,                                     \
        .offset = offsetof(opts_type, extra),                                                      \
        .help = "librdkafka setting, repeatable (e.g. -X client.id=tadak-1); also from the "       \
                "environment as TADAK_KAFKA_<KEY>, e.g. TADAK_KAFKA_SASL_PASSWORD for "            \
                "sasl.password"                                                                    \
    }

#define SHAREDOPTS_LOG_LEVEL(opts_type)                                                            \
    {                                                                                              \
        .name = "log-level", .env = "TADAK_LOG_LEVEL", .type = CONFIG_LOG_LEVEL, .def = "info",    \
        .offset = offsetof(opts_type, log_level), .help = "error, warn, info or debug"             \
    }

#define SHAREDOPTS_KEY_PREFIX(opts_type)                                                           \
    {                                                                                              \
        .name = "key-prefix", .env = "TADAK_KEY_PREFIX", .type = CONFIG_STR, .def = "",            \
        .offset = offsetof(opts_type, key_prefix),                                                 \
        .help = "Prefix of the Redis keys: the producer's and the consumers' must be the same"     \
    }

/*
 * The event types (common/evtype.h) both programs read, so a producer and
 * its consumers agree on every type's fields, token, topic and table. No
 * default: without a file there is the built-in vote alone.
 */
#define SHAREDOPTS_TYPES(opts_type)                                                                \
    {                                                                                              \
        .name = "types", .env = "TADAK_TYPES", .type = CONFIG_FILE,                                \
        .offset = offsetof(opts_type, types_path),                                                 \
        .help = "Event types beyond the vote, a JSON file (see README; unset: votes only)"         \
    }

/* The type a command publishes or consumes (serve takes every type of the file). */
#define SHAREDOPTS_TYPE(opts_type)                                                                 \
    {                                                                                              \
        .name = "type", .env = "TADAK_TYPE", .type = CONFIG_NAME, .def = "vote",                   \
        .offset = offsetof(opts_type, type_name),                                                  \
        .help = "Event type: vote, or one of the --types file's"                                   \
    }

/* default_url: the program's own default, NULL for none. */
#define SHAREDOPTS_REDIS_URL(opts_type, default_url)                                               \
    {                                                                                              \
        .name = "redis-url", .env = "REDIS_URL", .type = CONFIG_URL, .def = (default_url),         \
        .offset = offsetof(opts_type, redis_url),                                                  \
        .help = "Redis of the dedupe gate (in tadak-producer serve: Idempotency-Key, "             \
                "pending state and /stats; unset there, the key is ignored and /stats "            \
                "answers 503); redis://, rediss:// (TLS) or "                                      \
                "redis+sentinel://h1:p1,h2:p2/MASTER (the master found through Sentinel)"          \
    }

/* default_url: the program's own default, NULL for none. */
#define SHAREDOPTS_DATABASE_URL(opts_type, default_url)                                            \
    {                                                                                              \
        .name = "database-url", .env = "DATABASE_URL", .type = CONFIG_URL, .def = (default_url),   \
        .offset = offsetof(opts_type, database_url),                                               \
        .help = "PostgreSQL the votes are recorded in (in tadak-producer serve: GET "              \
                "/votes/{user_id}/{candidate_id} and /tallies; unset there, they answer 503)"      \
    }

#endif
