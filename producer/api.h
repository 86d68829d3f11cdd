/*
 * api.h - the HTTP API's decisions, without a socket.
 *
 * Everything the server decides from the request alone lives here as pure
 * functions, so cmocka can test every status code: the routes table
 * {method, path, action}, the header checks (404, 405 with Allow, 415,
 * 413 from Content-Length), vote validation (400 via event_parse, 413 from
 * the streamed byte count) and the JSON bodies of every answer.
 *
 *   api_begin(method, path, content_type, content_length, max_body, &reply)
 *       at header time: 1 = reply is final (answer now), 0 = read the body
 *   api_vote(body, len, overflow, max_body, &reply)
 *       1 = reply is final (an error), 0 = reply.vote is ready to publish
 *   api_error(&reply, status, error, detail)       a JSON error reply
 *   api_accepted(&vote, partition, offset, buf, size)   the 202 body
 */
#ifndef TADAK_API_H
#define TADAK_API_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"

enum api_action {
    API_RESPOND, /* reply.status + reply.body are the answer */
    API_VOTE,    /* POST /votes: parse the body, publish, answer after the report */
    API_HEALTH,  /* GET /healthz */
    API_READY,   /* GET /readyz */
    API_METRICS, /* GET /metrics */
};

struct api_reply {
    enum api_action action;
    int status;        /* meaningful for API_RESPOND */
    const char *route; /* metrics label: the matched path, or "other" */
    char allow[32];    /* Allow header of a 405, else "" */
    char body[640];    /* JSON body of an API_RESPOND reply */
    struct vote vote;  /* API_VOTE, after api_vote() returned 0 */
};

int api_begin(const char *method, const char *path, const char *content_type,
              const char *content_length, size_t max_body, struct api_reply *r);
int api_vote(const char *body, size_t len, int overflow, size_t max_body, struct api_reply *r);
void api_error(struct api_reply *r, int status, const char *error, const char *detail);
int api_accepted(const struct vote *v, int32_t partition, int64_t offset, char *buf, size_t size);
int api_json_escape(const char *s, char *buf, size_t size);

#endif
