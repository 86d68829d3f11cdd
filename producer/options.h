/*
 * options.h - tadak-producer's settings: the config tables of `serve` and of
 * the CLI subcommands (send, replay, load) and the struct they fill. See
 * common/config.h for the table format.
 *
 * The rows every command has (brokers, topic, -X, log-level, ack-log) are
 * defined once and joined to each command's own rows, so a default or a
 * help text cannot differ between `serve` and the CLI; the rows the consumer
 * has too (Kafka, Redis, PostgreSQL, log level, key prefix) come from
 * common/sharedopts.h, so they cannot differ between the programs either. Loading also checks
 * what the table cannot (positional arguments, required flags, the
 * --candidates ballot), loads --types (evtypes_load: a bad file is an error
 * with its problem) and finds --type in it, sets the log level and prints --help; README's
 * "Configuration reference" says what --help says (tests/integration/test_docs.py).
 *
 *   rc = producer_opts_load(&o, PRODUCER_SEND, argc, argv, err, sizeof err);
 *        0 ok, 1 --help was shown, -1 error (reason in err)
 *   producer_opts_free(&o);
 *
 * argv[0] is the subcommand name, as main.c passes it.
 */
#ifndef TADAK_PRODUCER_OPTIONS_H
#define TADAK_PRODUCER_OPTIONS_H

#include "api.h"
#include "config.h"
#include "evtype.h"
#include "log.h"

#include <stddef.h>
#include <stdint.h>

#define PRODUCER_OPTS_MAX 48 /* rows in one command's table, CONFIG_END included */

enum producer_cmd { PRODUCER_SERVE, PRODUCER_SEND, PRODUCER_REPLAY, PRODUCER_LOAD };

struct producer_opts {
    /* Every command: the shared rows. */
    const char *brokers, *topic, *ack_log;
    struct config_kv extra; /* -X key=value for librdkafka */
    enum log_level log_level;
    int64_t delivery_timeout_ms; /* serve's default and range are not the CLI's */
    const char *types_path;      /* --types: event types beyond the vote, or NULL */
    struct evtypes *types;       /* loaded from it (the vote only without one); owned */

    /* serve */
    const char *listen, *database_url, *redis_url, *key_prefix, *stats_group;
    const char *candidates;       /* the ballot as given, e.g. "1-4,7", or NULL */
    struct api_candidates ballot; /* candidates parsed; n == 0: any id */
    int64_t max_body, idem_window_s, idem_timeout_ms, request_timeout_s, per_ip, tallies_top;
    /* serve: the frontend edge (edge.h), each part off unless set */
    struct config_list cors_origins, trusted_proxies;
    int64_t cors_max_age_s, jwt_leeway_s, rate_burst, rate_slots, rate_ipv6_prefix;
    const char *jwt_key, *jwt_secret_env, *jwt_issuer, *jwt_audience, *jwt_user_claim, *rate_limit;
    const char *public_origin;

    /* send, replay, load: the event type (--type, "vote" by default) */
    const char *type_name;
    const struct evtype *type;

    /* send */
    int64_t user, candidate, repeat;
    struct config_kv fields; /* --field NAME=VALUE */

    /* load */
    int64_t users, dup, rate, seed, candidate_count;

    /* replay: FILE (or -) is pos[0] */
    char **pos;
    int npos;

    struct config_opt table[PRODUCER_OPTS_MAX]; /* the command's rows, for config_free() */
};

int producer_opts_load(struct producer_opts *o, enum producer_cmd cmd, int argc, char **argv,
                       char *errstr, size_t errsize);
void producer_opts_free(struct producer_opts *o);

#endif
