/*
 * routes.h - the HTTP API's routes: what each request is answered, as the
 * handler table the server core (http.h) is started with. The core knows no
 * route; everything route-specific is here: the Idempotency-Key header and
 * its claim (idem.h), the edge's admission and headers (edge.h),
 * Cache-Control per action, Idempotent-Replayed, Allow on a 405,
 * Retry-After on a 503, request ids, the vote page (page.h), /readyz's
 * cached answer (ready.h), status reads (reads.h) and publishing (publisher.h).
 *
 * The routes reach the core only through opts.core (http_core for the
 * server; a unit test passes a fake that records what is sent and suspended).
 *
 *   rt = routes_new(&opts);
 *   h = routes_handlers(rt);            give &h to http_start()
 *   ... http_stop() ...                 (its stop handler stops reads and idem)
 *   routes_free(rt);                    after http_free(): no request is left
 */
#ifndef TADAK_ROUTES_H
#define TADAK_ROUTES_H

#include "http.h"

#include <stdint.h>

struct api_candidates;
struct edge;
struct evtypes;
struct idem;
struct metrics;
struct publisher;
struct reads;
struct ready;
struct routes;

struct routes_opts {
    const struct http_core *core; /* &http_core, or a test's */
    struct publisher *pub;
    struct metrics *metrics;
    struct reads *reads; /* status reads; not owned */
    struct idem *idem;   /* Idempotency-Key in Redis; NULL: the header is ignored */
    struct edge *edge;   /* CORS, identity, rate limits; not owned; NULL: all off */
    struct ready *ready; /* /readyz's answer; NULL: not ready */
    int64_t max_body;
    int64_t delivery_timeout_ms;
    int64_t idem_window_ms;  /* how long an accepted Idempotency-Key is remembered */
    int64_t idem_timeout_ms; /* a claim not answered by Redis in this long: 503 */
    const struct api_candidates *candidates; /* copied; NULL: any candidate id */
    const struct evtypes *types; /* the routes under /events; not owned; NULL: the vote only */
};

struct routes *routes_new(const struct routes_opts *o);
struct http_handlers routes_handlers(struct routes *rt);
void routes_free(struct routes *rt);

#endif
