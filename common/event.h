/*
 * event.h - the vote event: JSON <-> struct vote, and its dedupe token.
 *
 * A vote is {"user_id":U,"candidate_id":C} with U, C in 1..2^63-1; events
 * published by tadak also carry "event_id" (a UUID), "token" and "ts" (ms
 * since the epoch). The token "vote_lock:{U}:{C}" is what makes a double
 * click, a retry or a replay the *same* vote: it is the Kafka key, the Redis
 * lock key and the UNIQUE column in PostgreSQL.
 *
 * Parsing is strict (RFC 8259 JSON, valid UTF-8, an object at the top, no
 * trailing bytes, bounded depth and size) and every rejection carries an
 * error code plus a human-readable detail, so bad input is reported instead
 * of guessed at. Stricter than RFC 8259 where JSON readers disagree: no key
 * twice in one object (json-c would keep the last, JavaScript and Python
 * too, other readers the first), no "\u0000" in a key or string (C sees a
 * shorter string than was sent), "ts" only as an integer >= 0. Those rules
 * are checked last, so an input that breaks an older rule too keeps that
 * older error name. The same codec serves HTTP, `replay` and the consumer.
 *
 *   event_parse(buf, len, &vote, &err, detail, sizeof detail)   0 / -1
 *   event_parse_for(buf, len, user, &vote, ...)   the same for a known voter
 *       (a verified token's): "user_id" may be left out and is then user
 *   event_encode(&vote, buf, size)       bytes written (excl. NUL) or -1
 *   event_token(u, c, buf, size)         the token
 *   event_new_id(buf)                    a random UUID (libuuid)
 *   event_derive_id(topic, part, off, buf)  a deterministic UUID (SHA-1)
 */
#ifndef TADAK_EVENT_H
#define TADAK_EVENT_H

#include <stddef.h>
#include <stdint.h>

#define EVENT_ID_LEN    37            /* 36 chars + NUL */
#define EVENT_TOKEN_LEN 64            /* "vote_lock:" + 2 x 19 digits + ':' */
#define EVENT_MAX_BYTES (1024 * 1024) /* larger values are rejected unread */
#define EVENT_MAX_DEPTH 16

enum event_err {
    EVENT_OK = 0,
    EVENT_ERR_EMPTY,        /* no bytes at all */
    EVENT_ERR_TOO_LARGE,    /* over EVENT_MAX_BYTES */
    EVENT_ERR_INVALID_JSON, /* not RFC 8259 JSON (or not UTF-8, or too deep) */
    EVENT_ERR_NOT_OBJECT,   /* valid JSON, but not an object */
    EVENT_ERR_MISSING,      /* user_id or candidate_id absent */
    EVENT_ERR_TYPE,         /* a field of the wrong JSON type */
    EVENT_ERR_RANGE,        /* an id outside 1..2^63-1 */
    EVENT_ERR_EVENT_ID,     /* event_id present but not a UUID */
    EVENT_ERR_TOKEN,        /* token present but not the derived one */
    EVENT_ERR_DUP_KEY,      /* an object holds the same key twice */
    EVENT_ERR_NUL,          /* a key or string holds \u0000 */
};

struct vote {
    int64_t user_id;
    int64_t candidate_id;
    int64_t ts_ms;               /* 0 when the message had none; never negative */
    char event_id[EVENT_ID_LEN]; /* "" when the message had none */
    char token[EVENT_TOKEN_LEN];
};

int event_parse(const char *buf, size_t len, struct vote *out, enum event_err *err, char *detail,
                size_t detailsize);
/*
 * event_parse's two paths, exposed for the tests and the fuzzer:
 * event_parse_canonical accepts (1) exactly the bytes event_encode writes,
 * with a lowercase UUID, and fills out; anything else is 0 and untouched.
 * event_parse_strict is the full strict parse.
 */
int event_parse_canonical(const char *buf, size_t len, struct vote *out);
int event_parse_strict(const char *buf, size_t len, struct vote *out, enum event_err *err,
                       char *detail, size_t detailsize);
int event_parse_for(const char *buf, size_t len, int64_t user, struct vote *out,
                    enum event_err *err, char *detail, size_t detailsize);
const char *event_err_name(enum event_err err);
int event_encode(const struct vote *v, char *buf, size_t size);
void event_token(int64_t user_id, int64_t candidate_id, char *buf, size_t size);
void event_new_id(char buf[EVENT_ID_LEN]);
void event_derive_id(const char *topic, int32_t partition, int64_t offset, char buf[EVENT_ID_LEN]);
int event_id_valid(const char *s);

#endif
