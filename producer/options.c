/*
 * options.c - tadak-producer's config tables. See options.h.
 *
 * A command's table is joined at load time from up to three parts: its own
 * leading rows, the shared rows, and its own trailing rows, in that order,
 * which is the order --help lists them in.
 */
#include "options.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define O(f) offsetof(struct producer_opts, f)

/* Every command has these: one definition, one help text. */
static const struct config_opt shared_rows[] = {
    {"brokers", 'b', "KAFKA_BOOTSTRAP_SERVERS", CONFIG_STR, PRODUCER_DEFAULT_BROKERS, 0, 0,
     O(brokers), "Kafka bootstrap servers"},
    {"topic", 't', "TADAK_TOPIC", CONFIG_STR, "votes", 0, 0, O(topic), "Kafka topic to publish to"},
    {"kafka", 'X', NULL, CONFIG_KV, NULL, 0, 0, O(extra),
     "librdkafka setting, repeatable (e.g. -X linger.ms=5); also from the environment as "
     "TADAK_KAFKA_<KEY>, e.g. TADAK_KAFKA_SASL_PASSWORD for sasl.password"},
    {"log-level", 0, "TADAK_LOG_LEVEL", CONFIG_LOG_LEVEL, "info", 0, 0, O(log_level),
     "error, warn, info or debug"},
    {"ack-log", 0, "TADAK_ACK_LOG", CONFIG_FILE, NULL, 0, 0, O(ack_log),
     "Append one JSON line per acknowledged event to this file"},
    CONFIG_END};

/* ---- serve ---------------------------------------------------------------- */

static const struct config_opt serve_head[] = {{"listen", 'l', "TADAK_LISTEN", CONFIG_ADDR,
                                                "127.0.0.1:8000", 0, 0, O(listen),
                                                "HTTP listen address HOST:PORT"},
                                               CONFIG_END};

static const struct config_opt serve_rows[] = {
    {"max-body", 0, "TADAK_MAX_BODY", CONFIG_INT, "4096", 16, 1048576, O(max_body),
     "Largest accepted request body in bytes"},
    {"delivery-timeout-ms", 0, "TADAK_DELIVERY_TIMEOUT_MS", CONFIG_INT, "5000", 100, 600000,
     O(delivery_timeout_ms),
     "Answer 503 if the broker has not acknowledged a vote after this long"},
    {"database-url", 0, "DATABASE_URL", CONFIG_URL, NULL, 0, 0, O(database_url),
     "PostgreSQL for GET /votes/{user_id}/{candidate_id} and /tallies (unset: they answer 503)"},
    {"redis-url", 0, "REDIS_URL", CONFIG_URL, NULL, 0, 0, O(redis_url),
     "Redis for Idempotency-Key, pending status and /stats (unset: key ignored, 503)"},
    {"key-prefix", 0, "TADAK_KEY_PREFIX", CONFIG_STR, "", 0, 0, O(key_prefix),
     "Prefix of Redis keys, as the consumers' --key-prefix"},
    {"stats-group", 0, "TADAK_STATS_GROUP", CONFIG_NAME, "tadak", 0, 0, O(stats_group),
     "The consumer group whose counters GET /stats and the page show (A-Z a-z 0-9 . _ -)"},
    {"idempotency-window-s", 0, "TADAK_IDEMPOTENCY_WINDOW_S", CONFIG_INT, "86400", 1, 31536000,
     O(idem_window_s), "How long an accepted Idempotency-Key answers with the same 202"},
    {"idempotency-timeout-ms", 0, "TADAK_IDEMPOTENCY_TIMEOUT_MS", CONFIG_INT, "500", 10, 60000,
     O(idem_timeout_ms),
     "Answer 503 + Retry-After when Redis has not answered an Idempotency-Key claim after this "
     "long (votes without the header never wait for Redis)"},
    {"request-timeout-s", 0, "TADAK_REQUEST_TIMEOUT_S", CONFIG_INT, "10", 1, 3600,
     O(request_timeout_s),
     "Close a connection whose request (headers and body) has not all arrived this long "
     "after it could start"},
    {"max-connections-per-ip", 0, "TADAK_MAX_CONNECTIONS_PER_IP", CONFIG_INT, "64", 1, 1000000,
     O(per_ip),
     "Most connections one client address may hold (a --trusted-proxy address: no cap; behind "
     "a NAT or an untrusted proxy all clients share one)"},
    {"candidates", 0, "TADAK_CANDIDATES", CONFIG_STR, NULL, 0, 0, O(candidates),
     "Candidate ids on the ballot, e.g. 1-4,7 (others: 400 unknown_candidate, and neither "
     "the page nor GET /tallies shows them; unset: any)"},
    {"tallies-top", 0, "TADAK_TALLIES_TOP", CONFIG_INT, "100", 1, 100000, O(tallies_top),
     "GET /tallies lists this many candidates, most votes first (with the total of all; "
     "with --candidates, of the ballot's)"},
    /* The frontend edge: every part off unless set. */
    {"cors-origin", 0, "TADAK_CORS_ORIGINS", CONFIG_LIST, NULL, 0, 0, O(cors_origins),
     "Web origin allowed to call the API from a browser, e.g. https://app.example; repeatable "
     "(env: comma separated); * allows any (unset: CORS off)"},
    {"public-origin", 0, "TADAK_PUBLIC_ORIGIN", CONFIG_STR, NULL, 0, 0, O(public_origin),
     "The vote page's own origin as browsers see it, e.g. https://votes.example (unset: an "
     "http:// Origin naming the Host header)"},
    {"cors-max-age-s", 0, "TADAK_CORS_MAX_AGE_S", CONFIG_INT, "600", 0, 86400, O(cors_max_age_s),
     "How long a browser may cache a preflight answer"},
    {"jwt-key", 0, "TADAK_JWT_KEY", CONFIG_FILE, NULL, 0, 0, O(jwt_key),
     "PEM public key (RSA: RS256, EC P-256: ES256): POST /votes then needs Authorization: "
     "Bearer <JWT>"},
    {"jwt-secret-env", 0, "TADAK_JWT_SECRET_ENV", CONFIG_NAME, NULL, 0, 0, O(jwt_secret_env),
     "Name of the environment variable holding an HS256 secret (32+ bytes), instead of "
     "--jwt-key"},
    {"jwt-issuer", 0, "TADAK_JWT_ISSUER", CONFIG_STR, NULL, 0, 0, O(jwt_issuer),
     "Required iss claim (unset: not checked)"},
    {"jwt-audience", 0, "TADAK_JWT_AUDIENCE", CONFIG_STR, NULL, 0, 0, O(jwt_audience),
     "Required aud claim, or one of its items (unset: not checked)"},
    {"jwt-user-claim", 0, "TADAK_JWT_USER_CLAIM", CONFIG_STR, "sub", 0, 0, O(jwt_user_claim),
     "Claim holding the voter's user_id (an integer or a decimal string)"},
    {"jwt-leeway-s", 0, "TADAK_JWT_LEEWAY_S", CONFIG_INT, "30", 0, 3600, O(jwt_leeway_s),
     "Clock skew allowed on exp and nbf"},
    {"rate-limit", 0, "TADAK_RATE_LIMIT", CONFIG_STR, NULL, 0, 0, O(rate_limit),
     "Requests per client, e.g. 20/s, 600/m (the verified user, else the address; unset: no "
     "limit)"},
    {"rate-burst", 0, "TADAK_RATE_BURST", CONFIG_INT, "0", 0, 1000000000, O(rate_burst),
     "Requests a client may send at once (0: one second's worth)"},
    {"rate-table-size", 0, "TADAK_RATE_TABLE_SIZE", CONFIG_INT, "65536", 64, 67108864,
     O(rate_slots), "Clients the rate limit remembers (a fixed table, least recently seen out)"},
    {"rate-ipv6-prefix", 0, "TADAK_RATE_IPV6_PREFIX", CONFIG_INT, "64", 1, 128, O(rate_ipv6_prefix),
     "An IPv6 client is counted by its first N bits (a host usually holds a whole /64); IPv4 "
     "by its address"},
    {"trusted-proxy", 0, "TADAK_TRUSTED_PROXIES", CONFIG_LIST, NULL, 0, 0, O(trusted_proxies),
     "Address or CIDR of a reverse proxy whose X-Forwarded-For names the client; repeatable "
     "(env: comma separated)"},
    CONFIG_END};

/* ---- send, replay, load ------------------------------------------------------- */

/* After the shared rows: the CLI waits longer than an HTTP client would. */
static const struct config_opt cli_rows[] = {
    {"delivery-timeout-ms", 0, "TADAK_DELIVERY_TIMEOUT_MS", CONFIG_INT, "30000", 100, 3600000,
     O(delivery_timeout_ms),
     "Give up on a message the broker has not acknowledged after this long"},
    CONFIG_END};

static const struct config_opt send_rows[] = {
    {"user", 'u', NULL, CONFIG_INT, NULL, 1, INT64_MAX, O(user), "Voting user id (required)"},
    {"candidate", 'c', NULL, CONFIG_INT, NULL, 1, INT64_MAX, O(candidate),
     "Candidate id (required)"},
    {"repeat", 'n', NULL, CONFIG_INT, "1", 1, 100000000, O(repeat),
     "Send N copies (distinct event ids, one token): a click burst"},
    CONFIG_END};

static const struct config_opt load_rows[] = {
    {"users", 'N', NULL, CONFIG_INT, NULL, 1, UINT32_MAX, O(users),
     "Number of distinct voters (required)"},
    {"dup-factor", 'D', NULL, CONFIG_INT, "1", 1, 1000000, O(dup), "Copies of every vote"},
    {"rate", 'r', NULL, CONFIG_INT, "0", 0, 100000000, O(rate),
     "Events per second, 0 = as fast as possible"},
    {"seed", 's', NULL, CONFIG_INT, "1", 0, INT64_MAX, O(seed),
     "Seed of the shuffle and of the candidate choice"},
    {"candidates", 'k', NULL, CONFIG_INT, "4", 1, 1000000, O(candidate_count),
     "Number of candidates, 1..N (4: the demo's clicks go to 1-4 too)"},
    CONFIG_END};

static const struct command {
    const struct config_opt *parts[3]; /* own leading rows, shared rows, own trailing rows */
    const char *synopsis;
} commands[] = {
    [PRODUCER_SERVE] = {{serve_head, shared_rows, serve_rows},
                        "usage: tadak-producer serve [options]\n\n"
                        "HTTP API: POST /votes {\"user_id\":U,\"candidate_id\":C} answers 202 "
                        "once Kafka\nacknowledged the vote (Idempotency-Key honoured with Redis); "
                        "GET /, /votes/U/C,\n/tallies, /stats, /healthz, /readyz, /metrics."},
    [PRODUCER_SEND] = {{send_rows, shared_rows, cli_rows},
                       "usage: tadak-producer send --user U --candidate C [--repeat N] "
                       "[options]\n\n"
                       "Publish one vote (or a burst of N copies with one token) and wait for "
                       "the broker."},
    [PRODUCER_REPLAY] = {{NULL, shared_rows, cli_rows},
                         "usage: tadak-producer replay FILE|- [options]\n\n"
                         "Publish one vote per JSON line ({\"user_id\":U,\"candidate_id\":C}, "
                         "optionally\n\"event_id\", \"token\", \"ts\"). Bad lines (and lines over "
                         "1 MiB, never held in\nmemory) are reported on stderr and skipped; the "
                         "exit status is 1 if any line\nwas bad, any delivery failed or the input "
                         "could not be read (the log names the line)."},
    [PRODUCER_LOAD] = {{load_rows, shared_rows, cli_rows},
                       "usage: tadak-producer load --users N [--dup-factor D] [--rate R] "
                       "[--seed S] [--candidates K] [options]\n\n"
                       "Publish a deterministic, shuffled stream of N x D votes: user i (1..N) "
                       "votes once\nfor a seeded candidate, each vote sent D times. The same "
                       "seed gives the same\nsequence of tokens."},
};

/* c's parts, joined into out[PRODUCER_OPTS_MAX]: 0, or -1 if they do not fit. */
static int build_table(const struct command *c, struct config_opt *out)
{
    static const struct config_opt end = CONFIG_END;
    size_t n = 0;

    for (size_t p = 0; p < UTIL_ARRAY_LEN(c->parts); p++)
        for (const struct config_opt *r = c->parts[p]; r && r->name; r++) {
            if (n == PRODUCER_OPTS_MAX - 1)
                return -1;
            out[n++] = *r;
        }
    out[n] = end;
    return 0;
}

/* What the table cannot say: arguments, required flags, the ballot. 0 / -1. */
static int check(struct producer_opts *o, enum producer_cmd cmd, char *errstr, size_t errsize)
{
    switch (cmd) {
    case PRODUCER_SERVE:
        if (o->npos > 0) {
            snprintf(errstr, errsize, "unexpected argument \"%s\"", o->pos[0]);
            return -1;
        }
        if (o->candidates && api_candidates_parse(o->candidates, &o->ballot, errstr, errsize))
            return -1;
        if (!*o->stats_group || strlen(o->stats_group) > 128 ||
            strspn(o->stats_group, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                   "0123456789._-") != strlen(o->stats_group)) {
            snprintf(errstr, errsize,
                     "--stats-group may hold only A-Z a-z 0-9 . _ - (1 to 128): \"%s\"",
                     o->stats_group);
            return -1;
        }
        return 0;
    case PRODUCER_SEND:
        if (o->user == 0 || o->candidate == 0 || o->npos > 0) {
            snprintf(errstr, errsize,
                     "--user and --candidate are required, no positional "
                     "arguments (try --help)");
            return -1;
        }
        return 0;
    case PRODUCER_REPLAY:
        if (o->npos != 1) {
            snprintf(errstr, errsize, "expected one FILE (or - for stdin)");
            return -1;
        }
        return 0;
    case PRODUCER_LOAD:
        if (o->users == 0 || o->npos > 0) {
            snprintf(errstr, errsize, "--users is required, no positional arguments (try --help)");
            return -1;
        }
        return 0;
    }
    return -1;
}

int producer_opts_load(struct producer_opts *o, enum producer_cmd cmd, int argc, char **argv,
                       char *errstr, size_t errsize)
{
    const struct command *c = &commands[cmd];
    int rc;

    memset(o, 0, sizeof(*o));
    if (build_table(c, o->table) != 0) {
        memset(o->table, 0, sizeof(o->table)); /* nothing for producer_opts_free() */
        snprintf(errstr, errsize, "more than %d options: raise PRODUCER_OPTS_MAX",
                 PRODUCER_OPTS_MAX - 1);
        return -1;
    }
    o->pos = xcalloc((size_t)argc + 1, sizeof(*o->pos));
    rc = config_load(o->table, o, argc - 1, argv + 1, o->pos, &o->npos, errstr, errsize);
    if (rc == 1)
        config_usage(stdout, o->table, c->synopsis);
    if (rc != 0)
        return rc;
    if (check(o, cmd, errstr, errsize) != 0)
        return -1;
    log_set_level(o->log_level);
    return 0;
}

void producer_opts_free(struct producer_opts *o)
{
    config_free(o->table, o);
    free(o->pos);
    o->pos = NULL;
}
