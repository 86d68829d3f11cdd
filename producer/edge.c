/*
 * edge.c - CORS, identity and rate limits at header time. See edge.h.
 */
#include "edge.h"
#include "clientaddr.h"
#include "config.h"
#include "log.h"
#include "metrics.h"
#include "strbuf.h"
#include "util.h"

#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define EDGE_MAX_PROXIES    64
#define EDGE_LOG_EVERY_MS   1000 /* one line a second per kind of refusal, at most */
#define EDGE_LOG_ORIGIN_MAX 64   /* bytes of a refused Origin worth a log line */

/* What the edge refuses on its own (a 429 is the limiter's), each counted and logged. */
enum edge_refusal {
    EDGE_REFUSED_ORIGIN,
    EDGE_REFUSED_TOKEN_MISSING,
    EDGE_REFUSED_TOKEN_INVALID,
    EDGE_REFUSALS
};

static const char *const refusal_reasons[EDGE_REFUSALS] = {
    [EDGE_REFUSED_ORIGIN] = "origin_not_allowed",
    [EDGE_REFUSED_TOKEN_MISSING] = "token_missing",
    [EDGE_REFUSED_TOKEN_INVALID] = "token_invalid",
};

struct refusal_log {
    _Atomic int64_t next_ms; /* no line before this (monotonic) */
    _Atomic int64_t count;   /* refusals since the last line */
};

struct edge {
    struct cors cors;
    struct auth *auth;    /* NULL: identity off */
    struct ratelimit *rl; /* NULL: no limit */
    double rate;
    int64_t burst;
    int64_t window_s; /* RateLimit-Policy's w: seconds an empty bucket takes to fill */
    int ipv6_prefix;  /* an IPv6 client is counted by this many leading bits */
    struct clientaddr_cidr proxies[EDGE_MAX_PROXIES];
    size_t nproxies;
    struct metric *m_limited_user, *m_limited_address, *m_user_mismatch;
    struct metric *m_refused[EDGE_REFUSALS];
    struct refusal_log logs[EDGE_REFUSALS];
};

static int parse_limits(struct edge *e, const struct edge_opts *o, char *errstr, size_t errsize)
{
    char why[160];

    if (o->trusted_proxies)
        for (size_t i = 0; i < o->trusted_proxies->n; i++) {
            if (e->nproxies == EDGE_MAX_PROXIES) {
                snprintf(errstr, errsize, "--trusted-proxy: at most %d", EDGE_MAX_PROXIES);
                return -1;
            }
            if (clientaddr_cidr_parse(o->trusted_proxies->items[i], &e->proxies[e->nproxies++], why,
                                      sizeof(why)) != 0) {
                snprintf(errstr, errsize, "--trusted-proxy %s: %s", o->trusted_proxies->items[i],
                         why);
                return -1;
            }
        }
    e->ipv6_prefix = (int)o->rate_ipv6_prefix;
    if (!o->rate_limit || !*o->rate_limit)
        return 0;
    if (ratelimit_parse_rate(o->rate_limit, &e->rate, why, sizeof(why)) != 0) {
        snprintf(errstr, errsize, "--rate-limit %s: %s", o->rate_limit, why);
        return -1;
    }
    e->burst = o->rate_burst > 0 ? o->rate_burst : (int64_t)ceil(e->rate);
    if (e->burst < 1)
        e->burst = 1;
    e->window_s = (int64_t)fmin(ceil((double)e->burst / e->rate), 1e15);
    if (e->window_s < 1)
        e->window_s = 1;
    if (!(e->rl = ratelimit_new(e->rate, e->burst, (size_t)o->rate_slots))) {
        snprintf(errstr, errsize, "--rate-limit %s, --rate-burst %" PRId64 ": out of range",
                 o->rate_limit, e->burst);
        return -1;
    }
    return 0;
}

struct edge *edge_new(const struct edge_opts *o, struct metrics *metrics, char *errstr,
                      size_t errsize)
{
    struct edge *e = xcalloc(1, sizeof(*e));
    static const char limited[] = "tadak_http_rate_limited_total";
    static const char limited_help[] =
        "Requests refused 429 by the rate limit, by what was limited";
    static const char refused[] = "tadak_http_edge_refused_total";
    static const char refused_help[] =
        "Requests refused by the edge: a foreign Origin, a missing or invalid token, another "
        "user's status";

    if (cors_parse(&e->cors, o->cors_origins, o->cors_max_age_s, errstr, errsize) != 0 ||
        cors_public_origin(&e->cors, o->public_origin, errstr, errsize) != 0)
        goto fail;
    if (auth_configured(&o->auth) && !(e->auth = auth_new(&o->auth, errstr, errsize)))
        goto fail;
    if (parse_limits(e, o, errstr, errsize) != 0)
        goto fail;
    e->m_limited_user = metrics_counter(metrics, limited, "reason=\"user\"", limited_help);
    e->m_limited_address = metrics_counter(metrics, limited, "reason=\"address\"", limited_help);
    for (int i = 0; i < EDGE_REFUSALS; i++) {
        char label[64];
        snprintf(label, sizeof(label), "reason=\"%s\"", refusal_reasons[i]);
        e->m_refused[i] = metrics_counter(metrics, refused, label, refused_help);
    }
    e->m_user_mismatch =
        metrics_counter(metrics, refused, "reason=\"user_mismatch\"", refused_help);
    return e;
fail:
    edge_free(e);
    return NULL;
}

void edge_free(struct edge *e)
{
    if (!e)
        return;
    cors_free(&e->cors);
    auth_free(e->auth);
    ratelimit_free(e->rl);
    free(e);
}

int edge_trusted_proxy(void *edge, const struct sockaddr *peer)
{
    const struct edge *e = edge;
    struct clientaddr ca;

    if (!e || !e->nproxies || clientaddr_resolve(peer, NULL, NULL, 0, &ca) != 0)
        return 0;
    return clientaddr_in(e->proxies, e->nproxies, ca.family, ca.addr);
}

int edge_identity(const struct edge *e)
{
    return e && e->auth;
}

void edge_log(const struct edge *e)
{
    log_info("frontend edge",
             "cors_origins=%zu identity=%s rate_per_s=%g rate_burst=%" PRId64
             " rate_slots=%zu rate_ipv6_prefix=%d trusted_proxies=%zu",
             e->cors.n, e->auth ? auth_alg(e->auth) : "off", e->rl ? e->rate : 0.0, e->burst,
             e->rl ? ratelimit_slots(e->rl) : (size_t)0, e->ipv6_prefix, e->nproxies);
}

/* ---- at header time ------------------------------------------------------- */

/* Count one refusal of a kind: 1 when it is this one's turn to write the line (*count since). */
static int refusal_log_due(struct refusal_log *l, int64_t *count)
{
    int64_t now = util_now_ms(), next = atomic_load(&l->next_ms);

    atomic_fetch_add(&l->count, 1);
    if (now < next || !atomic_compare_exchange_strong(&l->next_ms, &next, now + EDGE_LOG_EVERY_MS))
        return 0;
    *count = atomic_exchange(&l->count, 0);
    return 1;
}

/* At most one line a second per kind, with how many there were: a flood writes no flood. */
static void log_refusal(struct edge *e, enum edge_refusal why, const struct edge_request *er,
                        const char *method, const struct api_reply *reply)
{
    int64_t n;

    if (!refusal_log_due(&e->logs[why], &n))
        return;
    /* The client's words go to log.c raw (it escapes them), cut to a length worth reading. */
    if (why == EDGE_REFUSED_ORIGIN)
        log_info("origin refused", "origin=%.*s origin_bytes=%zu method=%s route=%s count=%" PRId64,
                 EDGE_LOG_ORIGIN_MAX, er->origin ? er->origin : "",
                 er->origin ? strlen(er->origin) : (size_t)0, method, reply->route, n);
    else
        log_info("token refused", "reason=%s detail=\"%s\" method=%s route=%s count=%" PRId64,
                 refusal_reasons[why], er->auth_error, method, reply->route, n);
}

/* key's bucket, a token taken (take) or only looked at: 0 go on, 1 the reply is a 429. */
static int limit(struct edge *e, struct edge_request *er, const void *key, size_t keylen, int take,
                 struct metric *m, struct api_reply *reply)
{
    struct ratelimit_verdict v;
    char detail[128];
    int64_t now = util_now_ms();

    if (take ? ratelimit_take(e->rl, key, keylen, now, &v)
             : ratelimit_peek(e->rl, key, keylen, now, &v)) {
        if (take)
            er->limited = 1, er->rl = v;
        return 0;
    }
    er->limited = 1;
    er->rl = v;
    metric_add(m, 1);
    snprintf(detail, sizeof(detail), "too many requests from this client; retry in %" PRId64 " s",
             v.retry_after_s);
    api_error(reply, 429, "rate_limited", detail);
    return 1;
}

static enum MHD_Result join_forwarded_for(void *cls, enum MHD_ValueKind kind, const char *key,
                                          const char *value)
{
    struct strbuf *b = cls;

    (void)kind;
    if (strcasecmp(key, "X-Forwarded-For") == 0 && value) {
        if (b->len)
            strbuf_append(b, ", ", 2);
        strbuf_append(b, value, strlen(value));
    }
    return MHD_YES;
}

/* The client address' bucket (take or look, as limit()); not an IP client: 0. */
static int limit_address(struct edge *e, struct MHD_Connection *conn, struct edge_request *er,
                         int take, struct api_reply *reply)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    unsigned char key[CLIENTADDR_KEY_LEN];
    struct clientaddr ca;
    struct strbuf xff = {0};
    int rc;

    /*
     * Every X-Forwarded-For line, in order: a proxy that appends a line of
     * its own leaves the client's (maybe forged) line first, and only the
     * right end of the whole list was written by proxies we trust.
     */
    if (e->nproxies)
        MHD_get_connection_values(conn, MHD_HEADER_KIND, join_forwarded_for, &xff);
    rc = info ? clientaddr_resolve(info->client_addr, xff.s, e->proxies, e->nproxies, &ca) : -1;
    free(xff.s);
    if (rc != 0)
        return 0; /* not an IP client: nothing to count it against */
    clientaddr_key(&ca, e->ipv6_prefix, key);
    return limit(e, er, key, sizeof(key), take, e->m_limited_address, reply);
}

static int limit_user(struct edge *e, struct edge_request *er, struct api_reply *reply)
{
    unsigned char key[9] = {'u'};

    memcpy(key + 1, &er->user, sizeof(er->user));
    return limit(e, er, key, sizeof(key), 1, e->m_limited_user, reply);
}

/*
 * Refuse the request (always returns 1: the reply is final): counted, logged
 * at most once a second, and charged to its address, so refusals are limited
 * like anything else: an address out of tokens gets the 429 instead.
 */
static int refuse(struct edge *e, struct MHD_Connection *conn, struct edge_request *er,
                  enum edge_refusal why, const char *method, struct api_reply *reply)
{
    metric_add(e->m_refused[why], 1);
    log_refusal(e, why, er, method, reply);
    if (e->rl && limit_address(e, conn, er, 1, reply))
        return 1;
    if (why == EDGE_REFUSED_ORIGIN)
        api_error(reply, 403, "origin_not_allowed",
                  "this origin may not call the API; the server's --cors-origin lists those that "
                  "may");
    else
        api_error(reply, 401, "invalid_token", er->auth_error);
    return 1;
}

/* A token is needed here: 0 verified (er->user set), 1 the reply is final. */
static int identify(struct edge *e, struct MHD_Connection *conn, struct edge_request *er,
                    const char *method, struct api_reply *reply)
{
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    enum auth_result rc;

    /* An address out of tokens costs no verification: it is refused first. */
    if (e->rl && limit_address(e, conn, er, 0, reply))
        return 1;
    rc = auth_verify(e->auth, h, util_wall_ms() / 1000, &er->user, er->auth_error,
                     sizeof(er->auth_error));
    if (rc == AUTH_OK)
        return 0;
    return refuse(e, conn, er,
                  rc == AUTH_MISSING ? EDGE_REFUSED_TOKEN_MISSING : EDGE_REFUSED_TOKEN_INVALID,
                  method, reply);
}

int edge_admit(struct edge *e, struct MHD_Connection *conn, const char *method, int final,
               struct api_reply *reply, struct edge_request *er)
{
    enum api_action a = reply->action;

    memset(er, 0, sizeof(*er));
    if (!e)
        return final;
    if (cors_enabled(&e->cors)) {
        er->origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ORIGIN);
        er->cors =
            cors_check(&e->cors, er->origin,
                       MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST));
        if (final && reply->status == 405 && strcmp(method, "OPTIONS") == 0) {
            if (er->cors == CORS_REFUSED)
                return refuse(e, conn, er, EDGE_REFUSED_ORIGIN, method, reply);
            er->preflight = 1;
            reply->status = 204;
            reply->body[0] = '\0';
            return 1;
        }
    }
    if (final)
        return 1;
    if (er->cors == CORS_REFUSED && strcmp(method, "POST") == 0)
        return refuse(e, conn, er, EDGE_REFUSED_ORIGIN, method, reply);
    if (a == API_HEALTH || a == API_READY || a == API_METRICS)
        return 0;
    if (e->auth && (a == API_VOTE || a == API_STATUS) && identify(e, conn, er, method, reply))
        return 1;
    if (e->rl && (er->user ? limit_user(e, er, reply) : limit_address(e, conn, er, 1, reply)))
        return 1;
    /* user_id 0: a type whose key does not hold its identity field; nothing to compare. */
    if (er->user && a == API_STATUS && reply->user_id && reply->user_id != er->user) {
        metric_add(e->m_user_mismatch, 1);
        api_error(reply, 403, "user_mismatch", "a token may read only its own user's votes");
        return 1;
    }
    return 0;
}

/* ---- on every answer ------------------------------------------------------ */

static void add_i64(struct MHD_Response *resp, const char *name, int64_t v)
{
    char text[24];

    snprintf(text, sizeof(text), "%" PRId64, v);
    MHD_add_response_header(resp, name, text);
}

void edge_headers(const struct edge *e, const struct edge_request *er,
                  const struct api_reply *reply, int status, struct MHD_Response *resp)
{
    if (!e)
        return;
    if (cors_enabled(&e->cors))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin");
    if (er->preflight)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, reply->allow);
    if (er->cors == CORS_ALLOWED && er->origin) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCESS_CONTROL_ALLOW_ORIGIN,
                                cors_allow_origin(&e->cors, er->origin));
        if (er->preflight) {
            MHD_add_response_header(resp, "Access-Control-Allow-Methods", reply->allow);
            MHD_add_response_header(resp, "Access-Control-Allow-Headers", CORS_ALLOW_HEADERS);
            MHD_add_response_header(resp, "Access-Control-Max-Age", e->cors.max_age);
        } else {
            MHD_add_response_header(resp, "Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS);
        }
    }
    if (er->limited) {
        char v[96];
        /* draft-ietf-httpapi-ratelimit-headers-10: one policy, "default", as Structured Fields. */
        snprintf(v, sizeof(v), "\"default\";q=%" PRId64 ";w=%" PRId64, er->rl.limit, e->window_s);
        MHD_add_response_header(resp, "RateLimit-Policy", v);
        snprintf(v, sizeof(v), "\"default\";r=%" PRId64 ";t=%" PRId64, er->rl.remaining,
                 er->rl.reset_s);
        MHD_add_response_header(resp, "RateLimit", v);
        if (status == 429)
            add_i64(resp, MHD_HTTP_HEADER_RETRY_AFTER, er->rl.retry_after_s);
    }
    if (status == 401) {
        char value[256], why[160];
        /* A quoted-string: the reason's own quotes become single ones. */
        util_strlcpy(why, er->auth_error, sizeof(why));
        for (char *c = why; *c; c++)
            if (*c == '"' || *c == '\\')
                *c = '\'';
        snprintf(value, sizeof(value), "Bearer error=\"invalid_token\", error_description=\"%s\"",
                 why);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, value);
    }
}
