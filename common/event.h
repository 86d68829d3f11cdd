/*
 * event.h - one event of a type (evtype.h): JSON <-> struct event, and its
 * dedupe token.
 *
 * A vote is {"user_id":U,"candidate_id":C} with U, C in 1..2^63-1; an event
 * of another type carries that type's fields. Events published by tadak
 * also carry "event_id" (a UUID), "token" and "ts" (ms since the epoch).
 * The token "<prefix>:<k1>:<k2>..." (the vote's "vote_lock:{U}:{C}") is
 * what makes a double click, a retry or a replay the *same* event: it is
 * the Kafka key, the Redis lock key and the UNIQUE column in PostgreSQL.
 *
 * Parsing is strict (RFC 8259 JSON, valid UTF-8, an object at the top, no
 * trailing bytes, bounded depth and size) and every rejection carries an
 * error code plus a human-readable detail naming the field, so bad input is
 * reported instead of guessed at. Stricter than RFC 8259 where JSON readers
 * disagree: no key twice in one object (json-c would keep the last,
 * JavaScript and Python too, other readers the first), no "\u0000" in a key
 * or string (C sees a shorter string than was sent), "ts" only as an
 * integer >= 0. Those rules are checked last, so an input that breaks an
 * older rule too keeps that older error name. A type from a file takes
 * exactly its fields (and the envelope's); the vote ignores other members,
 * as it always has. The same codec serves HTTP, `replay` and the consumer.
 *
 * An event's strings live in a buffer of type->text_size bytes that the
 * caller provides (event_init), so an event is a plain value the caller
 * allocates once and reuses; the vote has none.
 *
 *   event_init(&ev, type, text)          an empty event of type (text: NULL or
 *                                        type->text_size bytes, kept by parses)
 *   event_parse(&ev, buf, len, user, &err, detail, sizeof detail)   0 / -1;
 *       user > 0 (a verified token's): the type's identity field may be left
 *       out and is then user
 *   event_encode(&ev, buf, size)         bytes written (excl. NUL) or -1
 *   event_make_token(&ev)                the token from the key fields
 *   event_path_token(type, parts, n, token, size, detail, dsize)
 *       the token of one key given as text (a status path's segments):
 *       0, or -1 with the field's problem in detail
 *   event_field_text(type, i, text, out, size, detail, dsize)
 *       one field's value given as text (a query parameter): checked as its
 *       JSON value would be, its canonical text into out; 0, or -1 with the
 *       field's problem in detail
 *   event_int(&ev, i), event_str(&ev, i) field i's value (event_str: a string
 *       or an enum's string; NULL for a number)
 *   event_vote(&ev, u, c)                a vote (type, fields, token)
 *   event_token(u, c, buf, size)         a vote's token
 *   event_new_id(buf)                    a random UUID (libuuid)
 *   event_derive_id(topic, part, off, buf)  a deterministic UUID (SHA-1)
 */
#ifndef TADAK_EVENT_H
#define TADAK_EVENT_H

#include <stddef.h>
#include <stdint.h>

#include "evtype.h"

#define EVENT_ID_LEN    37  /* 36 chars + NUL */
#define EVENT_TOKEN_LEN 192 /* the longest a type may make, NUL included (evtype.c checks) */
/* The longest event_encode writes: envelope, names, 16 values, 1 KiB of strings. */
#define EVENT_ENCODED_MAX 4096
#define EVENT_MAX_BYTES   (1024 * 1024) /* larger values are rejected unread */
#define EVENT_MAX_DEPTH   16

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
    EVENT_ERR_UNKNOWN,      /* a member the type does not have */
    EVENT_ERR_VALUE,        /* a string too long, with a character not allowed, or
                               a value not on the enum's list */
};

/* The vote's fields, by index. */
#define EVENT_VOTE_USER      0
#define EVENT_VOTE_CANDIDATE 1

struct event {
    const struct evtype *type;
    int64_t ts_ms;               /* 0 when the message had none; never negative */
    char event_id[EVENT_ID_LEN]; /* "" when the message had none */
    char token[EVENT_TOKEN_LEN];
    /* Per field: the integer; an EVF_ENUM_STRING's index; an EVF_STRING's length. */
    int64_t v[EVTYPE_MAX_FIELDS];
    char *text; /* the strings, each NUL-terminated at its field's text_off; not owned */
};

void event_init(struct event *ev, const struct evtype *type, char *text);
int event_parse(struct event *ev, const char *buf, size_t len, int64_t user, enum event_err *err,
                char *detail, size_t detailsize);
/*
 * event_parse's two paths, exposed for the tests and the fuzzer:
 * event_parse_canonical accepts (1) exactly the bytes event_encode writes,
 * with a lowercase UUID, and fills ev; anything else is 0 and ev's fields
 * undefined. event_parse_strict is the full strict parse.
 */
int event_parse_canonical(struct event *ev, const char *buf, size_t len);
int event_parse_strict(struct event *ev, const char *buf, size_t len, int64_t user,
                       enum event_err *err, char *detail, size_t detailsize);
const char *event_err_name(enum event_err err);
int event_encode(const struct event *ev, char *buf, size_t size);
int event_make_token(struct event *ev);
int event_path_token(const struct evtype *t, const char *const *parts, size_t n, char *token,
                     size_t size, char *detail, size_t detailsize);
int event_field_text(const struct evtype *t, size_t field, const char *text, char *out, size_t size,
                     char *detail, size_t detailsize);
int64_t event_int(const struct event *ev, size_t field);
const char *event_str(const struct event *ev, size_t field);
void event_vote(struct event *ev, int64_t user_id, int64_t candidate_id);
void event_token(int64_t user_id, int64_t candidate_id, char *buf, size_t size);
void event_new_id(char buf[EVENT_ID_LEN]);
void event_derive_id(const char *topic, int32_t partition, int64_t offset, char buf[EVENT_ID_LEN]);
int event_id_valid(const char *s);

#endif
