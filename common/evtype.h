/*
 * evtype.h - event types: what one kind of click is, declared in a file.
 *
 * A vote is one kind of event that must count once per key; a poll answer
 * (one per user per poll), a like (one per user per post) or an RSVP are
 * others. A type names its fields, which of them make the key (the token
 * "<name>:<k1>:<k2>...", as the vote's is "vote_lock:<user>:<candidate>"),
 * its Kafka topic and its PostgreSQL table. Everything downstream (the
 * codec in event.h, the gate, the store, the routes) reads the type, so a
 * new kind of event is a few lines of JSON, not a fork.
 *
 * The file (--types FILE, TADAK_TYPES) is one JSON object:
 *
 *   {"types": {
 *      "poll_answer": {
 *        "fields": {"poll_id": "id", "user_id": "id",
 *                   "option_id": {"kind": "int", "min": 1, "max": 64}},
 *        "key": ["poll_id", "user_id"],
 *        "identity": "user_id",
 *        "counts": ["option_id"]
 *      }}}
 *
 * A type's attributes: "fields" (required, an object in column order),
 * "key" (required, 1..4 field names, in token order), "topic" and "table"
 * (default: the name + "s"), "identity" (an id field that must equal a
 * verified user), "counts" (fields GET /events/{type}/counts may group by;
 * each gets an index), "ballot" ({"field": F, "values": "1-4,7"}: the
 * allowed values of an id or int field, like --candidates for votes). A
 * field is a kind name ("id") or an object with "kind" and its limits:
 *
 *   id      an integer in 1..2^63-1
 *   int     an integer in "min".."max" (default: the whole int64 range)
 *   string  at most "max_length" (1..256, default 64) characters, each one
 *           of "chars" (ranges of printable ASCII but '"' and '\', like
 *           "a-z0-9_-"; default "A-Za-z0-9_.-"); a key field's may not
 *           allow ':', which separates the token's parts
 *   enum    "values": a list of integers or a list of strings
 *
 * Loading is strict: an unknown attribute, a key or counts naming a missing
 * field, a name that is not a plain identifier ([a-z][a-z0-9_]*, at most
 * 32), a reserved field name (id, token, event_id, ts, kafka_partition,
 * kafka_offset, created_at), two types on one topic or table, or the name
 * "vote" (the built-in type's) is an error naming the type and field. Names
 * become SQL identifiers only after that check, and are quoted even so.
 *
 * Without a file there is one type, the built-in vote: fields user_id and
 * candidate_id (ids), key both, token prefix "vote_lock", topic and table
 * "votes", identity user_id, counts candidate_id. A file's types come in
 * addition to it.
 *
 *   set = evtypes_load(path_or_null, err, sizeof err)   the types, or NULL
 *   evtypes_free(set)
 *   evtypes_count(set), evtypes_at(set, i)               every type, vote first
 *   evtypes_find(set, name)                              a type, or NULL
 *   evtype_vote()                                        the built-in vote type
 *   evtype_field(t, name)                                a field's index, or -1
 *
 * A type is read-only once loaded and lives as long as its set (the vote
 * type forever).
 */
#ifndef TADAK_EVTYPE_H
#define TADAK_EVTYPE_H

#include <stddef.h>
#include <stdint.h>

#include "ranges.h"

#define EVTYPE_NAME_MAX   32  /* a type's or a field's name, in bytes */
#define EVTYPE_TABLE_MAX  63  /* PostgreSQL's identifier length */
#define EVTYPE_TOPIC_MAX  249 /* Kafka's topic name length */
#define EVTYPE_MAX_FIELDS 16
#define EVTYPE_MAX_KEY    4
#define EVTYPE_MAX_COUNTS 4
#define EVTYPE_MAX_ENUM   64   /* values of an enum */
#define EVTYPE_STRING_MAX 256  /* the longest max_length */
#define EVTYPE_MAX_BALLOT 64   /* ranges of a ballot */
#define EVTYPE_TEXT_MAX   1024 /* a type's string fields together, NULs included */

enum evfield_kind {
    EVF_ID,          /* integer 1..INT64_MAX */
    EVF_INT,         /* integer min..max */
    EVF_STRING,      /* printable ASCII of a set, up to max_length */
    EVF_ENUM_INT,    /* one of enum_int[] */
    EVF_ENUM_STRING, /* one of enum_str[]; the event holds its index */
};

struct evfield {
    char name[EVTYPE_NAME_MAX + 1];
    enum evfield_kind kind;
    int64_t min, max;  /* EVF_ID, EVF_INT: the bounds, both included */
    size_t max_length; /* EVF_STRING: in bytes (ASCII) */
    uint8_t chars[16]; /* EVF_STRING: bit c set = character c allowed (c < 128) */
    size_t text_off;   /* EVF_STRING: where its value sits in an event's text */
    size_t nenum;      /* EVF_ENUM_*: how many values */
    int64_t *enum_int; /* EVF_ENUM_INT */
    char **enum_str;   /* EVF_ENUM_STRING */
};

struct evtype {
    char name[EVTYPE_NAME_MAX + 1];
    char token_prefix[EVTYPE_NAME_MAX + 1]; /* the name; "vote_lock" for the vote */
    char topic[EVTYPE_TOPIC_MAX + 1];
    char table[EVTYPE_TABLE_MAX + 1];
    size_t nfields;
    struct evfield fields[EVTYPE_MAX_FIELDS];
    size_t nkey;
    int key[EVTYPE_MAX_KEY]; /* field indices, in token order */
    int identity;            /* field index, or -1 */
    size_t ncounts;
    int counts[EVTYPE_MAX_COUNTS]; /* field indices */
    int ballot_field;              /* field index, or -1 */
    size_t nballot;
    struct range ballot[EVTYPE_MAX_BALLOT]; /* sorted, merged ranges */
    size_t text_size;                       /* bytes an event of this type needs for its strings */
    int extra_fields_ok; /* the vote: unknown JSON members are ignored, as always */
};

struct evtypes;

struct evtypes *evtypes_load(const char *path, char *errstr, size_t errsize);
void evtypes_free(struct evtypes *set);
size_t evtypes_count(const struct evtypes *set);
const struct evtype *evtypes_at(const struct evtypes *set, size_t i);
const struct evtype *evtypes_find(const struct evtypes *set, const char *name);
const struct evtype *evtype_vote(void);
int evtype_field(const struct evtype *t, const char *name);
/* 1 when v is on t's ballot (always, without one). */
int evtype_on_ballot(const struct evtype *t, int64_t v);
/* 1 when a string field f's "chars" allow character c. */
int evfield_allows(const struct evfield *f, unsigned char c);
/* Parse the bytes of a JSON types file: the same checks, for tests. */
struct evtypes *evtypes_parse(const char *json, size_t len, const char *origin, char *errstr,
                              size_t errsize);

#endif
