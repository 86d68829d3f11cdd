/*
 * http.h - the HTTP frontend: libmicrohttpd in front of the publisher.
 * http.c runs the server, routes.c answers each route (routes.h joins them).
 *
 * Two MHD worker threads (epoll) serve every connection; no thread ever
 * blocks on Kafka. A vote's connection is suspended once its event is
 * handed to the publisher and resumed by whichever comes first: the
 * delivery report (202, or 503 if delivery failed) or the delivery timeout
 * (503 + Retry-After), enforced by a small timer thread. A late report for
 * a request that was already answered is ignored safely: each request is
 * reference-counted (connection + pending report) under the server lock.
 *
 * Slow clients cannot hold connections: a whole request must arrive within
 * opts.request_timeout_ms (guard.h shuts down the late), one address holds
 * at most opts.per_ip_limit connections (conncap.h; a --trusted-proxy
 * address is not capped, edge.h says which), and a body takes memory as it
 * arrives, never its declared size up front.
 *
 * The server also answers GET /votes/{user_id}/{candidate_id}, /tallies and
 * /stats (page.c's GET / shows them) through opts.reads: the read runs on
 * reads.h's own threads and connections while the connection is suspended,
 * so no MHD thread ever waits on a status query. With opts.idem it honours
 * Idempotency-Key on POST /votes (idem.h) the same way: the claim runs on
 * idem.h's threads while the connection is suspended, answered 503 +
 * Retry-After if Redis has not answered within opts.idem_timeout_ms; the
 * 202's settle and a 503's release are queued there too. A stalled Redis
 * never holds a vote without the header, /healthz or /readyz.
 *
 * Shutdown never leaves a connection suspended for MHD_stop_daemon() (which
 * aborts the process if it finds one): once the drain begins, no request is
 * suspended any more (new ones, also on open keep-alive connections, get
 * 503 shutting_down), every answer says Connection: close, and http_stop()
 * answers what still waits with 503 and lets every resume happen first.
 *
 *   s = http_start(&opts, publisher, metrics, err, sizeof err);
 *   http_quiesce(s);        begin the drain: stop accepting, suspend nothing new
 *   http_active(s);         requests not yet answered and sent
 *   http_stop(s);           answer the rest, close everything
 *   http_free(s);           after publisher_free(): late reports may still come
 */
#ifndef TADAK_HTTP_H
#define TADAK_HTTP_H

#include <stddef.h>
#include <stdint.h>

struct api_candidates;
struct http_server;
struct metrics;
struct edge;
struct idem;
struct publisher;
struct reads;

struct http_opts {
    const char *listen; /* HOST:PORT */
    int64_t max_body;
    int64_t delivery_timeout_ms;
    struct reads *reads;     /* status reads (reads.h); not owned */
    struct idem *idem;       /* Idempotency-Key in Redis; NULL: the header is ignored */
    int64_t idem_window_ms;  /* how long an accepted Idempotency-Key is remembered */
    int64_t idem_timeout_ms; /* a claim not answered by Redis in this long: 503 */
    const struct api_candidates *candidates; /* copied; NULL: any candidate id */
    int64_t request_timeout_ms;              /* a whole request must arrive in this long */
    unsigned int
        per_ip_limit;  /* connections per client address (not a trusted proxy's); 0: no cap */
    struct edge *edge; /* CORS, identity, rate limits (edge.h); not owned; NULL: all off */
};

struct http_server *http_start(const struct http_opts *opts, struct publisher *pub,
                               struct metrics *metrics, char *errstr, size_t errsize);
void http_quiesce(struct http_server *s);
int64_t http_active(struct http_server *s);
void http_stop(struct http_server *s);
void http_free(struct http_server *s);

#endif
