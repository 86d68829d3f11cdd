/*
 * routes.h - inside the HTTP frontend: what its server (http.c) and its
 * routes (routes.c) share. Other modules use http.h.
 *
 * http.c runs the daemon and each request's life: reading it, reference
 * counts, suspending a connection and resuming it (the delivery report, a
 * status read's or an Idempotency-Key claim's answer, or the timer when the
 * broker or Redis is too slow), the
 * readiness prober and the drain. It hands a complete request to
 * routes_serve() and a resumed one to routes_resume(). routes.c decides
 * every answer (api.c builds the bodies) and queues it through http.c:
 *
 *   http_send(r, status, body, content_type)   queue one answer (body copied)
 *   http_send_reply(r)                         r->reply.status + body, as JSON
 *   http_unavailable(r, what, why)             503 + request id; why only in the log
 *   http_shutting_down(r)                      503 shutting_down
 *   http_suspend(r, state, start, err, n)      hand r over and suspend it: see below
 *   http_vote_state(r)                         REQ_REPORTED / REQ_TIMED_OUT / REQ_CLAIMED /
 *                                              REQ_CLAIM_LATE, once resumed
 */
#ifndef TADAK_ROUTES_H
#define TADAK_ROUTES_H

#include "api.h"
#include "edge.h"
#include "idem.h"
#include "publisher.h"
#include "reads.h"

#include <microhttpd.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct guard_conn;
struct http_server;
struct metrics;

enum req_state {
    REQ_BODY,      /* reading the request */
    REQ_WAITING,   /* suspended, event handed to the publisher */
    REQ_REPORTED,  /* delivery report arrived in time */
    REQ_TIMED_OUT, /* no report within the delivery timeout (or shutdown) */
    REQ_READING,   /* suspended, a status read handed to reads.h */
    REQ_READ_DONE, /* its answer is in read */
    REQ_CLAIMING,  /* suspended, an Idempotency-Key claim handed to idem.h */
    REQ_CLAIMED,   /* its answer is in claim */
    REQ_CLAIM_LATE /* no answer within the Idempotency-Key timeout (or shutdown) */
};

/* What the routes work with: set by http_start(), constant but for the counters. */
struct http_routes {
    struct publisher *pub;
    struct metrics *metrics;
    struct reads *reads; /* status reads; not owned */
    struct idem *idem;   /* Idempotency-Key in Redis, NULL without Redis; not owned */
    struct edge *edge;   /* CORS, identity, rate limits; not owned */
    size_t max_body;
    int64_t timeout_ms;      /* the delivery timeout */
    int64_t idem_timeout_ms; /* an Idempotency-Key claim's */
    int64_t idem_window_ms;
    struct api_candidates candidates; /* n == 0: any id */
    char *page;                       /* GET /, with the candidates' buttons */
    atomic_int ready;                 /* the readiness prober's last answer */
    _Atomic int64_t accepted;         /* 202s given for new events (not replays) */
    atomic_int idem_warned;
};

/* One HTTP request, from its headers to MHD's completion callback. */
struct request {
    struct publish_completion completion; /* first member: the delivery report finds us by it */
    struct http_server *srv;
    struct http_routes *rt;
    struct MHD_Connection *conn;
    const char *method, *url; /* libmicrohttpd's, valid until the request completes */
    struct api_reply reply;
    struct edge_request edge; /* what the edge decided at header time */
    int replayed;             /* answering from a stored Idempotency-Key result */

    /* The server's: under its lock from REQ_WAITING on. */
    enum req_state state;
    int refs; /* the connection + a pending report or read */
    char *body;
    size_t len, cap; /* cap grows with the body: never max_body up front */
    int overflow;
    struct guard_conn *gc; /* the connection's request deadline */
    int64_t deadline_ms;
    struct request *prev, *next; /* a pending list: REQ_WAITING or REQ_CLAIMING only */

    /* Set by the delivery report, read once resumed. */
    int report_err;
    char report_errname[96];
    int32_t partition;
    int64_t offset;

    /* The routes': Idempotency-Key and status reads. */
    struct idem_claim claim;             /* the key's claim, answered by idem.h's workers */
    int idem_claimed;                    /* we hold the in-flight claim of reply.idem_key */
    char idem_hash[IDEM_HASH_HEX];       /* of the body */
    char idem_value[IDEM_HASH_HEX + 64]; /* the in-flight value we claimed */
    struct read_job read;                /* a status read's question and answer */
};

enum MHD_Result http_send(struct request *r, int status, const char *body,
                          const char *content_type);
enum MHD_Result http_send_reply(struct request *r);
enum MHD_Result http_unavailable(struct request *r, const char *what, const char *why);
enum MHD_Result http_shutting_down(struct request *r);

/*
 * Hand r to whoever completes it and suspend its connection until that
 * completion (or, for REQ_WAITING, the delivery timeout; for REQ_CLAIMING,
 * the Idempotency-Key timeout) resumes it. r->deadline_ms is set first. Under
 * the server lock, so the completion always finds r suspended: start(r)
 * runs there (publisher_send, reads_submit, idem_claim) and returns 0, or -1 with err
 * set. Returns 0 suspended, 1 the drain began (nothing started: answer
 * shutting_down), -1 start failed (answer it).
 */
int http_suspend(struct request *r, enum req_state state,
                 int (*start)(struct request *r, char *err, size_t errsize), char *err,
                 size_t errsize);
enum req_state http_vote_state(struct request *r);

/* The routes: a complete request, and one whose connection was resumed. */
enum MHD_Result routes_serve(struct request *r);
enum MHD_Result routes_resume(struct request *r);

#endif
