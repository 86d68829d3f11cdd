/*
 * cors.h - which web origins may call the HTTP API from a browser (CORS),
 * decided without a socket so cmocka can test every case.
 *
 * Off unless origins are configured (--cors-origin, repeatable; env
 * TADAK_CORS_ORIGINS, comma separated). Each is an origin as a browser
 * sends it, scheme://host[:port] with http or https and nothing after it,
 * or "*" for any origin (only when given explicitly). Compared without
 * regard to case.
 *
 * With it on, a request's Origin header is one of:
 *   CORS_NONE       no Origin, or the page's own: the vote page served by
 *                   this producer. That is the --public-origin when one is
 *                   set (behind a TLS proxy: https://votes.example), else
 *                   an http:// Origin whose host:port is the Host header
 *   CORS_ALLOWED    a configured origin: the answer carries
 *                   Access-Control-Allow-Origin (cors_allow_origin: the
 *                   origin itself, "*" only if "*" is configured)
 *   CORS_REFUSED    any other: no CORS headers; a POST is refused with
 *                   403 origin_not_allowed, so a state change never
 *                   happens on a foreign page's behalf
 * With it off every request is CORS_NONE and OPTIONS stays a 405.
 *
 *   if (cors_parse(&c, &origins_list, max_age_s, err, sizeof err) != 0) ...
 *   cors_enabled(&c)
 *   cors_public_origin(&c, origin_or_null, err, sizeof err)   --public-origin: 0 / -1
 *   cors_check(&c, origin_header_or_null, host_header_or_null)
 *   cors_allow_origin(&c, origin)       the Access-Control-Allow-Origin value
 *   cors_free(&c)
 *
 * The header lists themselves are CORS_ALLOW_HEADERS (a preflight's answer,
 * with Access-Control-Max-Age from max_age_s) and CORS_EXPOSE_HEADERS (any
 * other answer) below; edge.c (edge_headers) adds them.
 */
#ifndef TADAK_CORS_H
#define TADAK_CORS_H

#include <stddef.h>
#include <stdint.h>

struct config_list;

/* A preflight may ask for these request headers. */
#define CORS_ALLOW_HEADERS "Content-Type, Idempotency-Key, Authorization"
/* A script may read these answer headers (beyond the CORS-safelisted ones). */
#define CORS_EXPOSE_HEADERS                                                                        \
    "Retry-After, Idempotent-Replayed, RateLimit, RateLimit-Policy, WWW-Authenticate"

enum cors_verdict { CORS_NONE, CORS_ALLOWED, CORS_REFUSED };

struct cors {
    size_t n;            /* configured origins ("*" included); 0: CORS is off */
    char **origin;       /* owned copies */
    int any;             /* "*" was configured */
    char *public_origin; /* the page's own origin, or NULL: http:// + Host */
    char max_age[24];    /* the Access-Control-Max-Age value */
};

int cors_parse(struct cors *c, const struct config_list *origins, int64_t max_age_s, char *errstr,
               size_t errsize);
int cors_enabled(const struct cors *c);
int cors_public_origin(struct cors *c, const char *origin, char *errstr, size_t errsize);
enum cors_verdict cors_check(const struct cors *c, const char *origin, const char *host);
const char *cors_allow_origin(const struct cors *c, const char *origin);
void cors_free(struct cors *c);

#endif
