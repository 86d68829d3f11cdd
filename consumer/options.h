/*
 * options.h - the consumer's settings: one config table (flag, env, default,
 * range, help) and the struct it fills. See common/config.h; the rows shared
 * with tadak-producer are common/sharedopts.h's.
 *
 *   rc = options_load(&o, argc, argv, err, sizeof err);  0 ok, 1 --help shown, -1 error
 *   options_free(&o);
 *
 * The event types are loaded here (--types FILE, else the vote alone) and
 * --type picked from them, so a bad file or an unknown name is a usage
 * error (exit 2) before anything connects. --topic defaults to the type's
 * topic (the vote's is "votes", the row's default), --dlq-topic to
 * <topic>.dlq.
 */
#ifndef TADAK_OPTIONS_H
#define TADAK_OPTIONS_H

#include "config.h"
#include "evtype.h"
#include "log.h"

#include <stddef.h>
#include <stdint.h>

struct consumer_opts {
    const char *brokers, *redis_url, *database_url;
    const char *topic, *group, *dlq_topic;
    const char *types_path;    /* --types FILE, or NULL: the vote alone */
    const char *type_name;     /* --type */
    struct evtypes *set;       /* every type: the file's and the vote */
    const struct evtype *type; /* the one this consumer reads (in set) */
    int64_t batch_size, batch_wait_ms, lock_ttl_ms, dedupe_window_s, idle_exit_s;
    int64_t inserts_in_flight; /* 1 or 2: batches PostgreSQL runs at once */
    int64_t statement_timeout_ms, session_timeout_ms, join_timeout_s;
    const char *instance_id;    /* static group membership, or NULL */
    const char *start_at;       /* earliest | latest: where a group without offsets starts */
    const char *group_protocol; /* consumer (KIP-848) | classic (cooperative-sticky) */
    const char *key_prefix;
    int from_beginning;
    int require_redis;      /* Redis unreachable at start: exit 1 instead of PostgreSQL only */
    struct config_kv extra; /* -X key=value for librdkafka */
    const char *metrics;    /* HOST:PORT or NULL */
    enum log_level log_level;
    int migrate_only;   /* the "migrate" subcommand (or "new-identity") */
    int new_identity;   /* "new-identity": migrate, then a new id for this database */
    int topics_only;    /* the "topics" subcommand: create the type's and its dead-letter topic */
    int64_t partitions; /* of a topic "topics" creates */
    int every_type;     /* --types given, but no --type, --topic or --dlq-topic */
    char dlq_default[512];
    char group_default[64]; /* "tadak-<type>" */
};

int options_load(struct consumer_opts *o, int argc, char **argv, char *errstr, size_t errsize);
void options_free(struct consumer_opts *o);

#endif
