/*
 * edge.h - the HTTP API's frontend edge: CORS (cors.h), verified identity
 * (auth.h) and per-client rate limits (ratelimit.h, clientaddr.h), decided
 * at header time, before a body is read or anything is published. Each
 * piece is off unless configured; with all off, edge_admit() lets every
 * request through and edge_headers() adds nothing.
 *
 * edge_admit() runs after api_begin() (which found the route, or made the
 * reply final already) and may make the reply final:
 *
 *   OPTIONS on a known path, CORS on   preflight: 204 with the CORS headers
 *                                      (allowed origin), 403 origin_not_allowed
 *                                      (another; one log line)
 *   POST from a refused Origin         403 origin_not_allowed (one log line)
 *   rate limit on, bucket empty        429 rate_limited, Retry-After (every
 *                                      limited answer carries RateLimit and
 *                                      RateLimit-Policy, draft -10)
 *   identity on, POST /votes or        401 invalid_token + WWW-Authenticate;
 *   GET /votes/{u}/{c} (and every      the status of another user: 403
 *   type's POST /events/{type}, GET    user_mismatch (another type's: when its
 *   /events/{type}/{key...})           key holds its identity field)
 *
 * The client a limit counts against is the verified user when there is
 * one, else the client address (X-Forwarded-For honoured only from a
 * --trusted-proxy, every line of it; IPv6 by its --rate-ipv6-prefix).
 * Every refusal (a foreign Origin, a missing or bad token) takes a token
 * from its address, and an address out of tokens is refused (429) before a
 * token is verified, so neither guessing tokens nor a refused page's
 * requests cost more than the limit. Refusals are logged at most once a
 * second per kind, with a count, the Origin cut to 64 bytes. /healthz,
 * /readyz and /metrics are never limited (probes and scrapers must get
 * through).
 *
 *   struct edge *e = edge_new(&opts, metrics, err, sizeof err);
 *   edge_log(e)        one line: what is on (after serve's "serving")
 *   final = api_begin(...);
 *   if (edge_admit(e, conn, method, final, &reply, &er)) answer reply now;
 *   edge_headers(e, &er, &reply, status, response);   on every answer
 *   edge_identity(e)   1 if a token is required (the page asks for one)
 *   edge_trusted_proxy(e, sockaddr)   1 for a --trusted-proxy peer
 *   edge_free(e);
 */
#ifndef TADAK_EDGE_H
#define TADAK_EDGE_H

#include "api.h"
#include "auth.h"
#include "cors.h"
#include "ratelimit.h"

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

struct config_list;
struct edge;
struct sockaddr;
struct metrics;

struct edge_opts {
    const struct config_list *cors_origins; /* none: CORS off */
    int64_t cors_max_age_s;
    const char *public_origin; /* the vote page's own origin; NULL: http:// + Host */
    struct auth_opts auth;     /* !auth_configured(): identity off */
    const char *rate_limit;    /* "N/s" etc.; NULL or "": no limit */
    int64_t rate_burst;        /* 0: the rate per second, at least 1 */
    int64_t rate_slots;        /* clients remembered (the table) */
    int64_t rate_ipv6_prefix;  /* an IPv6 client is its first N bits */
    const struct config_list *trusted_proxies; /* CIDRs whose X-Forwarded-For counts */
};

/* What the edge decided about one request; lives in the request. */
struct edge_request {
    enum cors_verdict cors;
    const char *origin; /* libmicrohttpd's, valid while the request is */
    int preflight;      /* an OPTIONS answered as a CORS preflight */
    int64_t user;       /* the verified user, 0 without one */
    int limited;        /* rl holds this request's verdict */
    struct ratelimit_verdict rl;
    char auth_error[160]; /* a 401's reason, for WWW-Authenticate */
};

struct edge *edge_new(const struct edge_opts *o, struct metrics *metrics, char *errstr,
                      size_t errsize);
int edge_admit(struct edge *e, struct MHD_Connection *conn, const char *method, int final,
               struct api_reply *reply, struct edge_request *er);
void edge_headers(const struct edge *e, const struct edge_request *er,
                  const struct api_reply *reply, int status, struct MHD_Response *resp);
int edge_identity(const struct edge *e);
/* 1 when peer is a --trusted-proxy (its connections are not capped per address). */
int edge_trusted_proxy(void *edge, const struct sockaddr *peer);
void edge_log(const struct edge *e);
void edge_free(struct edge *e);

#endif
