/*
 * options.c - tadak-producer's config tables. See options.h.
 *
 * A command's table is joined at load time from up to three parts: its own
 * leading rows, the shared rows, and its own trailing rows, in that order,
 * which is the order --help lists them in.
 */
#include "options.h"
#include "sharedopts.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define O(f) offsetof(struct producer_opts, f)

/*
 * Every command has these: one definition, one help text. Brokers, topic, -X
 * and the log level are the rows the consumer has too (sharedopts.h).
 */
static const struct config_opt shared_rows[] = {
    SHAREDOPTS_BROKERS(struct producer_opts),
    SHAREDOPTS_TOPIC(struct producer_opts),
    SHAREDOPTS_KAFKA(struct producer_opts),
    SHAREDOPTS_LOG_LEVEL(struct producer_opts),
    {.name = "ack-log",
     .env = "TADAK_ACK_LOG",
     .type = CONFIG_FILE,
     .offset = O(ack_log),
     .help = "Append one JSON line per acknowledged event to this file"},
    SHAREDOPTS_TYPES(struct producer_opts),
    CONFIG_END};

/* ---- serve ---------------------------------------------------------------- */

static const struct config_opt serve_head[] = {
    {.name = "listen",
     .short_name = 'l',
     .env = "TADAK_LISTEN",
     .type = CONFIG_ADDR,
     .def = "127.0.0.1:8000",
     .offset = O(listen),
     .help = "HTTP listen address HOST:PORT"},
    CONFIG_END,
};

static const struct config_opt serve_rows[] = {
    {.name = "max-body",
     .env = "TADAK_MAX_BODY",
     .type = CONFIG_INT,
     .def = "4096",
     .min = 16,
     .max = 1048576,
     .offset = O(max_body),
     .help = "Largest accepted request body in bytes"},
    {.name = "delivery-timeout-ms",
     .env = "TADAK_DELIVERY_TIMEOUT_MS",
     .type = CONFIG_INT,
     .def = "5000",
     .min = 100,
     .max = 600000,
     .offset = O(delivery_timeout_ms),
     .help = "Answer 503 if the broker has not acknowledged a vote after this long"},
    SHAREDOPTS_DATABASE_URL(struct producer_opts, NULL), /* unset: no reads */
    SHAREDOPTS_REDIS_URL(struct producer_opts, NULL),    /* unset: no Idempotency-Key */
    SHAREDOPTS_KEY_PREFIX(struct producer_opts),
    {.name = "stats-group",
     .env = "TADAK_STATS_GROUP",
     .type = CONFIG_NAME,
     .def = "tadak",
     .offset = O(stats_group),
     .help = "The consumer group whose counters GET /stats and the page show (A-Z a-z 0-9 . _ -)"},
    {.name = "idempotency-window-s",
     .env = "TADAK_IDEMPOTENCY_WINDOW_S",
     .type = CONFIG_INT,
     .def = "86400",
     .min = 1,
     .max = 31536000,
     .offset = O(idem_window_s),
     .help = "How long an accepted Idempotency-Key answers with the same 202"},
    {.name = "idempotency-timeout-ms",
     .env = "TADAK_IDEMPOTENCY_TIMEOUT_MS",
     .type = CONFIG_INT,
     .def = "500",
     .min = 10,
     .max = 60000,
     .offset = O(idem_timeout_ms),
     .help =
         "Answer 503 + Retry-After when Redis has not answered an Idempotency-Key claim after this "
         "long (votes without the header never wait for Redis)"},
    {.name = "request-timeout-s",
     .env = "TADAK_REQUEST_TIMEOUT_S",
     .type = CONFIG_INT,
     .def = "10",
     .min = 1,
     .max = 3600,
     .offset = O(request_timeout_s),
     .help = "Close a connection whose request (headers and body) has not all arrived this long "
             "after it could start"},
    {.name = "max-connections-per-ip",
     .env = "TADAK_MAX_CONNECTIONS_PER_IP",
     .type = CONFIG_INT,
     .def = "64",
     .min = 1,
     .max = 1000000,
     .offset = O(per_ip),
     .help =
         "Most connections one client address may hold (a --trusted-proxy address: no cap; behind "
         "a NAT or an untrusted proxy all clients share one)"},
    {.name = "candidates",
     .env = "TADAK_CANDIDATES",
     .type = CONFIG_STR,
     .offset = O(candidates),
     .help = "Candidate ids on the ballot, e.g. 1-4,7 (others: 400 unknown_candidate, and neither "
             "the page nor GET /tallies shows them; unset: any)"},
    {.name = "tallies-top",
     .env = "TADAK_TALLIES_TOP",
     .type = CONFIG_INT,
     .def = "100",
     .min = 1,
     .max = 100000,
     .offset = O(tallies_top),
     .help = "GET /tallies lists this many candidates, most votes first (with the total of all; "
             "with --candidates, of the ballot's)"},
    /* The frontend edge: every part off unless set. */
    {.name = "cors-origin",
     .env = "TADAK_CORS_ORIGINS",
     .type = CONFIG_LIST,
     .offset = O(cors_origins),
     .help =
         "Web origin allowed to call the API from a browser, e.g. https://app.example; repeatable "
         "(env: comma separated); * allows any (unset: CORS off)"},
    {.name = "public-origin",
     .env = "TADAK_PUBLIC_ORIGIN",
     .type = CONFIG_STR,
     .offset = O(public_origin),
     .help = "The vote page's own origin as browsers see it, e.g. https://votes.example (unset: an "
             "http:// Origin naming the Host header)"},
    {.name = "cors-max-age-s",
     .env = "TADAK_CORS_MAX_AGE_S",
     .type = CONFIG_INT,
     .def = "600",
     .max = 86400,
     .offset = O(cors_max_age_s),
     .help = "How long a browser may cache a preflight answer"},
    {.name = "jwt-key",
     .env = "TADAK_JWT_KEY",
     .type = CONFIG_FILE,
     .offset = O(jwt_key),
     .help = "PEM public key (RSA: RS256, EC P-256: ES256): POST /votes then needs Authorization: "
             "Bearer <JWT>"},
    {.name = "jwt-secret-env",
     .env = "TADAK_JWT_SECRET_ENV",
     .type = CONFIG_NAME,
     .offset = O(jwt_secret_env),
     .help = "Name of the environment variable holding an HS256 secret (32+ bytes), instead of "
             "--jwt-key"},
    {.name = "jwt-issuer",
     .env = "TADAK_JWT_ISSUER",
     .type = CONFIG_STR,
     .offset = O(jwt_issuer),
     .help = "Required iss claim (unset: not checked)"},
    {.name = "jwt-audience",
     .env = "TADAK_JWT_AUDIENCE",
     .type = CONFIG_STR,
     .offset = O(jwt_audience),
     .help = "Required aud claim, or one of its items (unset: not checked)"},
    {.name = "jwt-user-claim",
     .env = "TADAK_JWT_USER_CLAIM",
     .type = CONFIG_STR,
     .def = "sub",
     .offset = O(jwt_user_claim),
     .help = "Claim holding the voter's user_id (an integer or a decimal string)"},
    {.name = "jwt-leeway-s",
     .env = "TADAK_JWT_LEEWAY_S",
     .type = CONFIG_INT,
     .def = "30",
     .max = 3600,
     .offset = O(jwt_leeway_s),
     .help = "Clock skew allowed on exp and nbf"},
    {.name = "rate-limit",
     .env = "TADAK_RATE_LIMIT",
     .type = CONFIG_STR,
     .offset = O(rate_limit),
     .help =
         "Requests per client, e.g. 20/s, 600/m (the verified user, else the address; unset: no "
         "limit)"},
    {.name = "rate-burst",
     .env = "TADAK_RATE_BURST",
     .type = CONFIG_INT,
     .def = "0",
     .max = 1000000000,
     .offset = O(rate_burst),
     .help = "Requests a client may send at once (0: one second's worth)"},
    {.name = "rate-table-size",
     .env = "TADAK_RATE_TABLE_SIZE",
     .type = CONFIG_INT,
     .def = "65536",
     .min = 64,
     .max = 67108864,
     .offset = O(rate_slots),
     .help = "Clients the rate limit remembers (a fixed table, least recently seen out)"},
    {.name = "rate-ipv6-prefix",
     .env = "TADAK_RATE_IPV6_PREFIX",
     .type = CONFIG_INT,
     .def = "64",
     .min = 1,
     .max = 128,
     .offset = O(rate_ipv6_prefix),
     .help =
         "An IPv6 client is counted by its first N bits (a host usually holds a whole /64); IPv4 "
         "by its address"},
    {.name = "trusted-proxy",
     .env = "TADAK_TRUSTED_PROXIES",
     .type = CONFIG_LIST,
     .offset = O(trusted_proxies),
     .help =
         "Address or CIDR of a reverse proxy whose X-Forwarded-For names the client; repeatable "
         "(env: comma separated)"},
    CONFIG_END};

/* ---- send, replay, load ------------------------------------------------------- */

/* After the shared rows: the CLI waits longer than an HTTP client would. */
static const struct config_opt cli_rows[] = {
    SHAREDOPTS_TYPE(struct producer_opts),
    {.name = "delivery-timeout-ms",
     .env = "TADAK_DELIVERY_TIMEOUT_MS",
     .type = CONFIG_INT,
     .def = "30000",
     .min = 100,
     .max = 3600000,
     .offset = O(delivery_timeout_ms),
     .help = "Give up on a message the broker has not acknowledged after this long"},
    CONFIG_END};

static const struct config_opt send_rows[] = {
    {.name = "user",
     .short_name = 'u',
     .type = CONFIG_INT,
     .min = 1,
     .max = INT64_MAX,
     .offset = O(user),
     .help = "Voting user id (required)"},
    {.name = "candidate",
     .short_name = 'c',
     .type = CONFIG_INT,
     .min = 1,
     .max = INT64_MAX,
     .offset = O(candidate),
     .help = "Candidate id (required)"},
    {.name = "repeat",
     .short_name = 'n',
     .type = CONFIG_INT,
     .def = "1",
     .min = 1,
     .max = 100000000,
     .offset = O(repeat),
     .help = "Send N copies (distinct event ids, one token): a click burst"},
    {.name = "field",
     .short_name = 'f',
     .type = CONFIG_KV,
     .offset = O(fields),
     .help = "NAME=VALUE, repeatable: the event's fields (instead of --user and --candidate; "
             "needed for a --type other than vote), e.g. -f poll_id=7 -f user_id=3"},
    CONFIG_END};

static const struct config_opt load_rows[] = {
    {.name = "users",
     .short_name = 'N',
     .type = CONFIG_INT,
     .min = 1,
     .max = UINT32_MAX,
     .offset = O(users),
     .help = "Number of distinct voters (required)"},
    {.name = "dup-factor",
     .short_name = 'D',
     .type = CONFIG_INT,
     .def = "1",
     .min = 1,
     .max = 1000000,
     .offset = O(dup),
     .help = "Copies of every vote"},
    {.name = "rate",
     .short_name = 'r',
     .type = CONFIG_INT,
     .def = "0",
     .max = 100000000,
     .offset = O(rate),
     .help = "Events per second, 0 = as fast as possible"},
    {.name = "seed",
     .short_name = 's',
     .type = CONFIG_INT,
     .def = "1",
     .max = INT64_MAX,
     .offset = O(seed),
     .help = "Seed of the shuffle and of the candidate choice"},
    {.name = "candidates",
     .short_name = 'k',
     .type = CONFIG_INT,
     .def = "4",
     .min = 1,
     .max = 1000000,
     .offset = O(candidate_count),
     .help = "Number of candidates, 1..N (4: the demo's clicks go to 1-4 too)"},
    CONFIG_END};

static const struct command {
    const struct config_opt *parts[3]; /* own leading rows, shared rows, own trailing rows */
    const char *synopsis;
} commands[] = {
    [PRODUCER_SERVE] =
        {.parts = {serve_head, shared_rows, serve_rows},
         .synopsis = "usage: tadak-producer serve [options]\n\n"
                     "HTTP API: POST /votes {\"user_id\":U,\"candidate_id\":C} answers 202 "
                     "once Kafka\nacknowledged the vote (Idempotency-Key honoured with Redis); "
                     "GET /, /votes/U/C,\n/tallies, /stats, /healthz, /readyz, /metrics."},
    [PRODUCER_SEND] = {.parts = {send_rows, shared_rows, cli_rows},
                       .synopsis =
                           "usage: tadak-producer send --user U --candidate C [--repeat N] "
                           "[options]\n"
                           "       tadak-producer send --type T --field NAME=VALUE... [--repeat N] "
                           "[options]\n\n"
                           "Publish one vote (or a burst of N copies with one token) and wait for "
                           "the broker.\nWith --field, one event of --type made of the fields "
                           "given (checked as POST\n/events/{type} checks them)."},
    [PRODUCER_REPLAY] =
        {.parts = {NULL, shared_rows, cli_rows},
         .synopsis = "usage: tadak-producer replay FILE|- [options]\n\n"
                     "Publish one vote per JSON line ({\"user_id\":U,\"candidate_id\":C}, "
                     "optionally\n\"event_id\", \"token\", \"ts\"); with --type T, one "
                     "event of type T per line. Bad lines (and lines over "
                     "1 MiB, never held in\nmemory) are reported on stderr and skipped; the "
                     "exit status is 1 if any line\nwas bad, any delivery failed or the input "
                     "could not be read (the log names the line)."},
    [PRODUCER_LOAD] = {.parts = {load_rows, shared_rows, cli_rows},
                       .synopsis =
                           "usage: tadak-producer load --users N [--dup-factor D] [--rate R] "
                           "[--seed S] [--candidates K] [options]\n\n"
                           "Publish a deterministic, shuffled stream of N x D votes: user i (1..N) "
                           "votes once\nfor a seeded candidate, each vote sent D times. The same "
                           "seed gives the same\nsequence of tokens. With --type T: user i fills "
                           "T's identity field (else its\nfirst key field), its candidate the "
                           "other key fields, every other field one of K\nseeded values: "
                           "N x D events, N keys."},
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

/* --types, and --type found in it (serve has no --type). 0 / -1. */
static int load_types(struct producer_opts *o, char *errstr, size_t errsize)
{
    char names[256];
    size_t at = 0;

    if (!(o->types = evtypes_load(o->types_path, errstr, errsize)))
        return -1;
    if (!o->type_name) {
        o->type = evtype_vote();
        return 0;
    }
    if ((o->type = evtypes_find(o->types, o->type_name)) != NULL) {
        /* A type's events go to its own topic unless --topic (or TADAK_TOPIC) names one. */
        if (o->type != evtype_vote() && o->topic == shared_rows[1].def)
            o->topic = o->type->topic;
        return 0;
    }
    names[0] = '\0';
    for (size_t i = 0; i < evtypes_count(o->types) && at < sizeof(names); i++)
        at += (size_t)snprintf(names + at, sizeof(names) - at, "%s%s", i ? ", " : "",
                               evtypes_at(o->types, i)->name);
    snprintf(errstr, errsize, "--type %s: no such event type (the types: %s)", o->type_name, names);
    return -1;
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
        if (o->npos > 0 || (o->fields.n == 0 && o->type != evtype_vote())) {
            snprintf(errstr, errsize,
                     "--field NAME=VALUE for each field of %s is required, no positional "
                     "arguments (try --help)",
                     o->type->name);
            return -1;
        }
        if (o->fields.n == 0 && (o->user == 0 || o->candidate == 0)) {
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
    if (load_types(o, errstr, errsize) != 0 || check(o, cmd, errstr, errsize) != 0)
        return -1;
    log_set_level(o->log_level);
    return 0;
}

void producer_opts_free(struct producer_opts *o)
{
    evtypes_free(o->types);
    o->types = NULL;
    config_free(o->table, o);
    free(o->pos);
    o->pos = NULL;
}
