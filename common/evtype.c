/*
 * evtype.c - the built-in vote type and the types read from a file. See evtype.h.
 *
 * A types file is read in three passes, so that each error points at what
 * the reader has to fix: jsoncheck's strict grammar (syntax, a key given
 * twice, "\u0000") reported as FILE:LINE:COL; then json-c's tree, read type
 * by type and field by field ("FILE: type "T": field "F": problem"); then
 * the checks across types (one type per topic and per table). Every limit
 * the rest of tadak relies on (the token's length, an event's text buffer,
 * names that are safe SQL identifiers) is enforced here, once, so the codec,
 * the gate and the store may trust a loaded type.
 */
#include "evtype.h"
#include "event.h"
#include "jsoncheck.h"
#include "ranges.h"
#include "util.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TYPES_FILE_MAX  (1024 * 1024) /* a types file is a few KiB; more is a mistake */
#define TYPES_MAX_DEPTH 16            /* the file nests 6 deep */
#define INT_TEXT_MAX    20            /* "-9223372036854775808": sign + 19 digits */
#define DEFAULT_CHARS   "A-Za-z0-9_.-"
#define DEFAULT_MAX_LEN 64

struct evtypes {
    size_t n;
    struct evtype **types; /* [0] is the vote (not owned) */
};

static const struct evtype vote_type = {
    .name = "vote",
    .token_prefix = "vote_lock",
    .topic = "votes",
    .table = "votes",
    .nfields = 2,
    .fields = {{.name = "user_id", .kind = EVF_ID, .min = 1, .max = INT64_MAX},
               {.name = "candidate_id", .kind = EVF_ID, .min = 1, .max = INT64_MAX}},
    .nkey = 2,
    .key = {0, 1},
    .identity = 0,
    .ncounts = 1,
    .counts = {1},
    .ballot_field = -1,
    .extra_fields_ok = 1,
};

const struct evtype *evtype_vote(void)
{
    return &vote_type;
}

int evtype_field(const struct evtype *t, const char *name)
{
    for (size_t i = 0; i < t->nfields; i++)
        if (strcmp(t->fields[i].name, name) == 0)
            return (int)i;
    return -1;
}

int evtype_on_ballot(const struct evtype *t, int64_t v)
{
    if (t->ballot_field < 0)
        return 1;
    return ranges_has(t->ballot, t->nballot, v);
}

int evfield_allows(const struct evfield *f, unsigned char c)
{
    return c < 128 && (f->chars[c >> 3] >> (c & 7) & 1);
}

size_t evtypes_count(const struct evtypes *set)
{
    return set->n;
}

const struct evtype *evtypes_at(const struct evtypes *set, size_t i)
{
    return i < set->n ? set->types[i] : NULL;
}

const struct evtype *evtypes_find(const struct evtypes *set, const char *name)
{
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->types[i]->name, name) == 0)
            return set->types[i];
    return NULL;
}

static struct evtypes *vote_only(void)
{
    struct evtypes *set = xcalloc(1, sizeof(*set));

    set->types = xcalloc(1, sizeof(*set->types));
    set->types[0] = (struct evtype *)&vote_type; /* never written nor freed */
    set->n = 1;
    return set;
}

static void type_free(struct evtype *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->nfields; i++) {
        struct evfield *f = &t->fields[i];
        if (f->enum_str)
            for (size_t j = 0; j < f->nenum; j++)
                free(f->enum_str[j]);
        free(f->enum_str);
        free(f->enum_int);
    }
    free(t);
}

void evtypes_free(struct evtypes *set)
{
    if (!set)
        return;
    for (size_t i = 1; i < set->n; i++)
        type_free(set->types[i]);
    free(set->types);
    free(set);
}

/* ---- errors -------------------------------------------------------------- */

/* Where an error is: the file, and the type and field being read (NULL: none). */
struct ctx {
    const char *origin;
    const char *type;
    const char *field;
    char *err;
    size_t errsize;
};

__attribute__((format(printf, 2, 3))) static int fail(const struct ctx *c, const char *fmt, ...)
{
    char msg[768];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!c->err || c->errsize == 0)
        return -1;
    if (c->type && c->field)
        snprintf(c->err, c->errsize, "%s: type \"%s\": field \"%s\": %s", c->origin, c->type,
                 c->field, msg);
    else if (c->type)
        snprintf(c->err, c->errsize, "%s: type \"%s\": %s", c->origin, c->type, msg);
    else
        snprintf(c->err, c->errsize, "%s: %s", c->origin, msg);
    /* Names are echoed as written; a "\n" in one must not split the message. */
    for (char *p = c->err; *p; p++)
        if ((unsigned char)*p < 0x20)
            *p = '?';
    return -1;
}

/* Byte offset off of buf as a 1-based line and column (columns count bytes). */
static void line_col(const char *buf, size_t len, size_t off, size_t *line, size_t *col)
{
    size_t bol = 0;

    *line = 1;
    if (off > len)
        off = len;
    for (size_t i = 0; i < off; i++)
        if (buf[i] == '\n')
            *line += 1, bol = i + 1;
    *col = off - bol + 1;
}

__attribute__((format(printf, 5, 6))) static int
fail_at(const struct ctx *c, const char *buf, size_t len, size_t off, const char *fmt, ...)
{
    char msg[512];
    size_t line, col;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    line_col(buf, len, off, &line, &col);
    if (c->err && c->errsize)
        snprintf(c->err, c->errsize, "%s:%zu:%zu: %s", c->origin, line, col, msg);
    return -1;
}

/* "names" as "a, b, c" in out. */
static void join(const char *const *names, size_t n, char *out, size_t size)
{
    size_t used = 0;

    out[0] = '\0';
    for (size_t i = 0; i < n && used < size; i++) {
        int w = snprintf(out + used, size - used, "%s%s", i ? ", " : "", names[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
}

static void field_names(const struct evtype *t, char *out, size_t size)
{
    const char *names[EVTYPE_MAX_FIELDS];

    for (size_t i = 0; i < t->nfields; i++)
        names[i] = t->fields[i].name;
    join(names, t->nfields, out, size);
}

/* ---- syntax: jsoncheck, then json-c --------------------------------------- */

/* The key whose opening quote is at buf[at], raw (escapes as written), for a message. */
static void raw_key(const char *buf, size_t len, size_t at, char *out, size_t size)
{
    size_t n = 0;

    for (size_t i = at + 1; i < len && buf[i] != '"' && n + 1 < size; i++) {
        if (buf[i] == '\\' && i + 1 < len)
            out[n++] = buf[i++];
        if (n + 1 < size)
            out[n++] = buf[i];
    }
    out[n] = '\0';
}

/* The strict grammar: 0, or -1 with FILE:LINE:COL and the problem. */
static int check_syntax(const struct ctx *c, const char *buf, size_t len)
{
    struct jsoncheck_strict st;
    char why[256], key[72];
    const char *at, *next;
    int64_t off = 0;

    if (len > TYPES_FILE_MAX)
        return fail(c, "larger than %d bytes", TYPES_FILE_MAX);
    if (jsoncheck_ex(buf, len, TYPES_MAX_DEPTH, &st, why, sizeof(why)) != 0) {
        /* jsoncheck says "<problem> at byte N": the offset becomes a line and column. */
        for (at = NULL, next = why; (next = strstr(next, " at byte ")); next++)
            at = next;
        if (at) {
            util_parse_i64(at + strlen(" at byte "), &off);
            why[at - why] = '\0';
        }
        return fail_at(c, buf, len, (size_t)(off < 0 ? 0 : off), "%s", why);
    }
    if (st.dup_key_at != JSONCHECK_NONE) {
        raw_key(buf, len, st.dup_key_at, key, sizeof(key));
        return fail_at(c, buf, len, st.dup_key_at, "\"%s\" is given twice in one object", key);
    }
    if (st.nul_at != JSONCHECK_NONE)
        return fail_at(c, buf, len, st.nul_at, "a string holds \\u0000");
    return 0;
}

/* json-c's tree of bytes jsoncheck accepted, or NULL (it disagrees: said where). */
static json_object *tree(const struct ctx *c, const char *buf, size_t len)
{
    const char *why;
    size_t end;
    json_object *obj = jsoncheck_tree(buf, len, TYPES_MAX_DEPTH, &end, &why);

    if (!obj)
        fail_at(c, buf, len, end, "%s", why);
    return obj;
}

/* ---- values and names ---------------------------------------------------- */

static const char *str_of(json_object *v)
{
    return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

/* An integer that fits int64 (json-c keeps 2^63.. as uint64; below -2^63 it clamps). */
static int int_of(json_object *v, int64_t *out)
{
    if (!json_object_is_type(v, json_type_int))
        return -1;
    if (json_object_get_int64(v) == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX)
        return -1;
    *out = json_object_get_int64(v);
    return 0;
}

/* [a-z][a-z0-9_]*, 1..max bytes: safe as an SQL identifier and a URL segment. */
static int ident_ok(const char *s, size_t max)
{
    size_t n = strlen(s);

    if (n == 0 || n > max || s[0] < 'a' || s[0] > 'z')
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return 0;
    return 1;
}

/* Kafka's rule: [A-Za-z0-9._-]{1,249}, but not "." or "..". */
static int topic_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > EVTYPE_TOPIC_MAX || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
              (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
            return 0;
    return 1;
}

/* A character a string value may hold at all: it goes into JSON and tokens unescaped. */
static int printable(unsigned char ch)
{
    return ch >= 0x20 && ch <= 0x7e && ch != '"' && ch != '\\';
}

/* Every member of obj is one of allowed[0, n), or an error listing them. */
static int check_attrs(const struct ctx *c, json_object *obj, const char *const *allowed, size_t n)
{
    char list[160];

    json_object_object_foreach(obj, key, val)
    {
        size_t i = 0;

        (void)val;
        while (i < n && strcmp(allowed[i], key) != 0)
            i++;
        if (i == n) {
            join(allowed, n, list, sizeof(list));
            return fail(c, "unknown attribute \"%s\" (allowed: %s)", key, list);
        }
    }
    return 0;
}

/* ---- fields -------------------------------------------------------------- */

/*
 * A "chars" spec ("a-z0-9_-": ranges and single characters; a '-' first or
 * last is itself) as a bitmap: 0, or -1 with the problem in why.
 */
static int parse_chars(const char *spec, uint8_t bits[16], char *why, size_t whysize)
{
    const unsigned char *p = (const unsigned char *)spec;

    memset(bits, 0, 16);
    if (!*p) {
        snprintf(why, whysize, "is empty");
        return -1;
    }
    while (*p) {
        unsigned int lo = p[0], hi = p[0];

        if (p[1] == '-' && p[2])
            hi = p[2], p += 3;
        else
            p++;
        if (lo > hi) {
            snprintf(why, whysize, "has the range %c-%c backwards", lo, hi);
            return -1;
        }
        for (unsigned int ch = lo; ch <= hi; ch++) {
            if (!printable((unsigned char)ch)) {
                snprintf(why, whysize,
                         "allows byte 0x%02x: only printable ASCII but '\"' and '\\' "
                         "(ranges included)",
                         ch);
                return -1;
            }
            bits[ch >> 3] |= (uint8_t)(1u << (ch & 7));
        }
    }
    return 0;
}

static int kind_defaults(const struct ctx *c, struct evfield *f, const char *kind)
{
    char why[160];

    if (strcmp(kind, "id") == 0) {
        f->kind = EVF_ID, f->min = 1, f->max = INT64_MAX;
    } else if (strcmp(kind, "int") == 0) {
        f->kind = EVF_INT, f->min = INT64_MIN, f->max = INT64_MAX;
    } else if (strcmp(kind, "string") == 0) {
        f->kind = EVF_STRING, f->max_length = DEFAULT_MAX_LEN;
        if (parse_chars(DEFAULT_CHARS, f->chars, why, sizeof(why)) != 0)
            return fail(c, "default chars %s", why);
    } else if (strcmp(kind, "enum") == 0) {
        return fail(c, "an enum needs its values: {\"kind\": \"enum\", \"values\": [...]}");
    } else {
        return fail(c, "unknown kind \"%s\" (kinds: id, int, string, enum)", kind);
    }
    return 0;
}

/* Each limit belongs to one kind: "min" on a string is a mistake, not a no-op. */
static int kind_applies(const struct ctx *c, json_object *spec, const char *kind)
{
    static const struct {
        const char *attr, *kind;
    } owner[] = {{"min", "int"},
                 {"max", "int"},
                 {"max_length", "string"},
                 {"chars", "string"},
                 {"values", "enum"}};

    for (size_t i = 0; i < UTIL_ARRAY_LEN(owner); i++)
        if (json_object_object_get_ex(spec, owner[i].attr, NULL) &&
            strcmp(owner[i].kind, kind) != 0)
            return fail(c, "\"%s\" does not apply to kind %s (only to %s)", owner[i].attr, kind,
                        owner[i].kind);
    return 0;
}

static int parse_int_limits(const struct ctx *c, struct evfield *f, json_object *spec)
{
    json_object *v;

    if (json_object_object_get_ex(spec, "min", &v) && int_of(v, &f->min) != 0)
        return fail(c, "\"min\" must be an integer (64-bit)");
    if (json_object_object_get_ex(spec, "max", &v) && int_of(v, &f->max) != 0)
        return fail(c, "\"max\" must be an integer (64-bit)");
    if (f->min > f->max)
        return fail(c, "\"min\" %lld is above \"max\" %lld", (long long)f->min, (long long)f->max);
    return 0;
}

static int parse_string_limits(const struct ctx *c, struct evfield *f, json_object *spec)
{
    json_object *v;
    const char *chars;
    int64_t n;
    char why[160];

    if (json_object_object_get_ex(spec, "max_length", &v)) {
        if (int_of(v, &n) != 0 || n < 1 || n > EVTYPE_STRING_MAX)
            return fail(c, "\"max_length\" must be an integer from 1 to %d", EVTYPE_STRING_MAX);
        f->max_length = (size_t)n;
    }
    if (json_object_object_get_ex(spec, "chars", &v)) {
        if (!(chars = str_of(v)))
            return fail(c, "\"chars\" must be a string like \"a-z0-9_-\"");
        if (parse_chars(chars, f->chars, why, sizeof(why)) != 0)
            return fail(c, "\"chars\" \"%s\" %s", chars, why);
    }
    return 0;
}

/* One string of an enum: printable, short, not empty, not listed before. */
static int enum_string(const struct ctx *c, struct evfield *f, json_object *v)
{
    const char *s = str_of(v);
    size_t n;

    if (!s)
        return fail(c, "\"values\" mixes strings and other values");
    n = strlen(s);
    if (n == 0 || n > EVTYPE_STRING_MAX)
        return fail(c, "value \"%s\" must be 1 to %d characters", s, EVTYPE_STRING_MAX);
    for (size_t i = 0; i < n; i++)
        if (!printable((unsigned char)s[i]))
            return fail(c,
                        "value \"%s\" holds byte 0x%02x: only printable ASCII but '\"' and "
                        "'\\'",
                        s, (unsigned char)s[i]);
    for (size_t i = 0; i < f->nenum; i++)
        if (strcmp(f->enum_str[i], s) == 0)
            return fail(c, "value \"%s\" is listed twice", s);
    f->enum_str[f->nenum++] = xstrdup(s);
    return 0;
}

static int enum_int(const struct ctx *c, struct evfield *f, json_object *v)
{
    int64_t x;

    if (!json_object_is_type(v, json_type_int))
        return fail(c, "\"values\" mixes integers and other values");
    if (int_of(v, &x) != 0)
        return fail(c, "value %s is not a 64-bit integer", json_object_to_json_string(v));
    for (size_t i = 0; i < f->nenum; i++)
        if (f->enum_int[i] == x)
            return fail(c, "value %lld is listed twice", (long long)x);
    f->enum_int[f->nenum++] = x;
    return 0;
}

/* "values": 1..64 integers or 1..64 strings; the first one says which. */
static int parse_enum(const struct ctx *c, struct evfield *f, json_object *spec)
{
    json_object *vals;
    size_t n;

    if (!json_object_object_get_ex(spec, "values", &vals) ||
        !json_object_is_type(vals, json_type_array) || (n = json_object_array_length(vals)) == 0 ||
        n > EVTYPE_MAX_ENUM ||
        !(json_object_is_type(json_object_array_get_idx(vals, 0), json_type_int) ||
          json_object_is_type(json_object_array_get_idx(vals, 0), json_type_string)))
        return fail(c, "\"values\" must be a list of 1 to %d integers or strings", EVTYPE_MAX_ENUM);
    if (json_object_is_type(json_object_array_get_idx(vals, 0), json_type_int)) {
        f->kind = EVF_ENUM_INT;
        f->enum_int = xcalloc(n, sizeof(*f->enum_int));
    } else {
        f->kind = EVF_ENUM_STRING;
        f->enum_str = xcalloc(n, sizeof(*f->enum_str));
    }
    for (size_t i = 0; i < n; i++) {
        json_object *v = json_object_array_get_idx(vals, i);
        if ((f->kind == EVF_ENUM_INT ? enum_int(c, f, v) : enum_string(c, f, v)) != 0)
            return -1;
    }
    return 0;
}

/* A field: a kind name ("id") or an object with "kind" and that kind's limits. */
static int parse_field(struct ctx *c, struct evfield *f, const char *name, json_object *spec)
{
    static const char *const attrs[] = {"kind", "min", "max", "max_length", "chars", "values"};
    static const char *const reserved[] = {
        "id", "token", "event_id", "ts", "kafka_partition", "kafka_offset", "created_at"};
    json_object *v;
    const char *kind;

    c->field = name;
    if (!ident_ok(name, EVTYPE_NAME_MAX))
        return fail(c, "the name is not a plain identifier ([a-z][a-z0-9_]*, at most %d bytes)",
                    EVTYPE_NAME_MAX);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(reserved); i++)
        if (strcmp(name, reserved[i]) == 0)
            return fail(c, "the name is reserved (every table or event has it: id, token, "
                           "event_id, ts, kafka_partition, kafka_offset, created_at)");
    util_strlcpy(f->name, name, sizeof(f->name));
    if ((kind = str_of(spec)))
        return kind_defaults(c, f, kind);
    if (!json_object_is_type(spec, json_type_object))
        return fail(c, "must be a kind name (\"id\", \"int\", \"string\") or an object with "
                       "\"kind\"");
    if (check_attrs(c, spec, attrs, UTIL_ARRAY_LEN(attrs)) != 0)
        return -1;
    if (!json_object_object_get_ex(spec, "kind", &v) || !(kind = str_of(v)))
        return fail(c, "\"kind\" is required (id, int, string or enum)");
    if (kind_applies(c, spec, kind) != 0)
        return -1;
    if (strcmp(kind, "enum") == 0)
        return parse_enum(c, f, spec);
    if (kind_defaults(c, f, kind) != 0)
        return -1;
    if (f->kind == EVF_INT)
        return parse_int_limits(c, f, spec);
    if (f->kind == EVF_STRING)
        return parse_string_limits(c, f, spec);
    return 0;
}

static int parse_fields(struct ctx *c, struct evtype *t, json_object *obj)
{
    size_t n;

    if (!json_object_is_type(obj, json_type_object))
        return fail(c, "\"fields\" must be an object of field names");
    n = (size_t)json_object_object_length(obj);
    if (n < 1 || n > EVTYPE_MAX_FIELDS)
        return fail(c, "\"fields\" must hold 1 to %d fields, not %zu", EVTYPE_MAX_FIELDS, n);
    /* json-c keeps an object's members in file order: that is the column order. */
    json_object_object_foreach(obj, name, spec)
    {
        /* Counted before it is read, so that type_free() finds a half-read enum. */
        if (parse_field(c, &t->fields[t->nfields++], name, spec) != 0)
            return -1;
    }
    c->field = NULL;
    return 0;
}

/* ---- key, identity, counts, ballot --------------------------------------- */

/* A field's index by name, or -1 with an error naming what referred to it. */
static int field_ref(const struct ctx *c, const struct evtype *t, const char *what, json_object *v)
{
    const char *name = str_of(v);
    char list[EVTYPE_MAX_FIELDS * (EVTYPE_NAME_MAX + 2)];
    int i;

    if (!name)
        return fail(c, "%s must name fields by strings", what);
    if ((i = evtype_field(t, name)) < 0) {
        field_names(t, list, sizeof(list));
        return fail(c, "%s names \"%s\", not a field of the type (fields: %s)", what, name, list);
    }
    return i;
}

/* "key" or "counts": a list of min..max distinct field names, as indices. */
static int field_list(const struct ctx *c, const struct evtype *t, const char *what, json_object *v,
                      size_t min, size_t max, int *out, size_t *n)
{
    size_t len;

    if (!json_object_is_type(v, json_type_array) || (len = json_object_array_length(v)) < min ||
        len > max)
        return fail(c, "\"%s\" must be a list of %zu to %zu field names", what, min, max);
    for (size_t i = 0; i < len; i++) {
        int f = field_ref(c, t, what, json_object_array_get_idx(v, i));
        if (f < 0)
            return -1;
        for (size_t j = 0; j < i; j++)
            if (out[j] == f)
                return fail(c, "%s names \"%s\" twice", what, t->fields[f].name);
        out[i] = f;
    }
    *n = len;
    return 0;
}

/* "1-4,7": values and ranges of f's (ranges.h), sorted and merged. */
static int parse_ranges(const struct ctx *c, struct evtype *t, const struct evfield *f,
                        const char *spec)
{
    char why[160];

    if (ranges_parse(spec, f->min, f->max, t->ballot, EVTYPE_MAX_BALLOT, &t->nballot, why,
                     sizeof(why)) != 0)
        return fail(c, "ballot values \"%s\" of \"%s\": %s", spec, f->name, why);
    return 0;
}

static int parse_ballot(const struct ctx *c, struct evtype *t, json_object *obj)
{
    static const char *const attrs[] = {"field", "values"};
    json_object *field, *values;
    const char *spec;
    int i;

    if (!json_object_is_type(obj, json_type_object))
        return fail(c, "\"ballot\" must be an object {\"field\": F, \"values\": \"1-4,7\"}");
    if (check_attrs(c, obj, attrs, UTIL_ARRAY_LEN(attrs)) != 0)
        return -1;
    if (!json_object_object_get_ex(obj, "field", &field) ||
        !json_object_object_get_ex(obj, "values", &values))
        return fail(c, "\"ballot\" needs \"field\" and \"values\"");
    if ((i = field_ref(c, t, "ballot", field)) < 0)
        return -1;
    if (t->fields[i].kind != EVF_ID && t->fields[i].kind != EVF_INT)
        return fail(c, "ballot field \"%s\" must be an id or int field", t->fields[i].name);
    if (!(spec = str_of(values)))
        return fail(c, "ballot \"values\" must be a string like \"1-4,7\"");
    t->ballot_field = i;
    return parse_ranges(c, t, &t->fields[i], spec);
}

/* The optional attributes: identity, counts, ballot, topic, table. */
static int parse_optional(const struct ctx *c, struct evtype *t, json_object *obj)
{
    json_object *v;
    const char *s;

    if (json_object_object_get_ex(obj, "identity", &v)) {
        if ((t->identity = field_ref(c, t, "identity", v)) < 0)
            return -1;
        if (t->fields[t->identity].kind != EVF_ID)
            return fail(c, "identity \"%s\" must be an id field", t->fields[t->identity].name);
    }
    if (json_object_object_get_ex(obj, "counts", &v) &&
        field_list(c, t, "counts", v, 0, EVTYPE_MAX_COUNTS, t->counts, &t->ncounts) != 0)
        return -1;
    if (json_object_object_get_ex(obj, "ballot", &v) && parse_ballot(c, t, v) != 0)
        return -1;
    if (json_object_object_get_ex(obj, "topic", &v)) {
        if (!(s = str_of(v)) || !topic_ok(s))
            return fail(c, "topic %s is not a Kafka topic name ([A-Za-z0-9._-], 1 to %d)",
                        json_object_to_json_string(v), EVTYPE_TOPIC_MAX);
        util_strlcpy(t->topic, s, sizeof(t->topic));
    }
    if (json_object_object_get_ex(obj, "table", &v)) {
        if (!(s = str_of(v)) || !ident_ok(s, EVTYPE_TABLE_MAX))
            return fail(c,
                        "table %s is not a plain identifier ([a-z][a-z0-9_]*, at most %d "
                        "bytes)",
                        json_object_to_json_string(v), EVTYPE_TABLE_MAX);
        util_strlcpy(t->table, s, sizeof(t->table));
    }
    if (strncmp(t->table, "tadak_", 6) == 0)
        return fail(c, "table \"%s\": names starting tadak_ are tadak's own", t->table);
    return 0;
}

/* ---- derived values and checks across fields and types ------------------- */

/* The longest text a key field's value can take in the token. */
static size_t key_text_max(const struct evfield *f)
{
    size_t longest = 0;
    char num[32];

    switch (f->kind) {
    case EVF_STRING:
        return f->max_length;
    case EVF_ENUM_STRING:
        for (size_t i = 0; i < f->nenum; i++)
            if (strlen(f->enum_str[i]) > longest)
                longest = strlen(f->enum_str[i]);
        return longest;
    case EVF_ENUM_INT:
        for (size_t i = 0; i < f->nenum; i++) {
            int w = snprintf(num, sizeof(num), "%lld", (long long)f->enum_int[i]);
            if (w > 0 && (size_t)w > longest)
                longest = (size_t)w;
        }
        return longest;
    default:
        return INT_TEXT_MAX;
    }
}

/* ':' separates the token's parts, so no key value may hold one. */
static int key_colon_free(struct ctx *c, const struct evtype *t)
{
    for (size_t k = 0; k < t->nkey; k++) {
        const struct evfield *f = &t->fields[t->key[k]];

        c->field = f->name;
        if (f->kind == EVF_STRING && evfield_allows(f, ':'))
            return fail(c, "is in the key, so its \"chars\" may not allow ':' (it separates the "
                           "token's parts)");
        for (size_t i = 0; f->kind == EVF_ENUM_STRING && i < f->nenum; i++)
            if (strchr(f->enum_str[i], ':'))
                return fail(c,
                            "is in the key, so value \"%s\" may not hold ':' (it separates "
                            "the token's parts)",
                            f->enum_str[i]);
    }
    c->field = NULL;
    return 0;
}

/* The token's longest length and the text buffer's layout. */
static int derive(struct ctx *c, struct evtype *t)
{
    size_t token = strlen(t->token_prefix), text = 0;

    if (key_colon_free(c, t) != 0)
        return -1;
    for (size_t k = 0; k < t->nkey; k++)
        token += 1 + key_text_max(&t->fields[t->key[k]]);
    if (token >= EVENT_TOKEN_LEN)
        return fail(c,
                    "its token can be %zu bytes long, more than %d (shorten the key's "
                    "max_length or values)",
                    token, EVENT_TOKEN_LEN - 1);
    for (size_t i = 0; i < t->nfields; i++) {
        if (t->fields[i].kind != EVF_STRING)
            continue;
        t->fields[i].text_off = text;
        text += t->fields[i].max_length + 1;
    }
    if (text > EVTYPE_TEXT_MAX)
        return fail(c, "its string fields need %zu bytes (max_length + 1 each), more than %d", text,
                    EVTYPE_TEXT_MAX);
    t->text_size = text;
    return 0;
}

/* One type per topic and per table: a topic or a table holds one shape. */
static int unique(const struct ctx *c, const struct evtypes *set, const struct evtype *t)
{
    for (size_t i = 0; i < set->n; i++) {
        const struct evtype *o = set->types[i];
        if (strcmp(o->topic, t->topic) == 0)
            return fail(c, "topic \"%s\" is already type \"%s\"'s", t->topic, o->name);
        if (strcmp(o->table, t->table) == 0)
            return fail(c, "table \"%s\" is already type \"%s\"'s", t->table, o->name);
    }
    return 0;
}

/* ---- types --------------------------------------------------------------- */

static int parse_type(struct ctx *c, struct evtypes *set, const char *name, json_object *obj)
{
    static const char *const attrs[] = {"fields", "key",   "identity", "counts",
                                        "ballot", "topic", "table"};
    struct evtype *t = NULL;
    json_object *v;
    int rc = -1;

    c->type = name;
    c->field = NULL;
    if (!ident_ok(name, EVTYPE_NAME_MAX)) {
        fail(c, "the name is not a plain identifier ([a-z][a-z0-9_]*, at most %d bytes)",
             EVTYPE_NAME_MAX);
        goto out;
    }
    if (strcmp(name, vote_type.name) == 0) {
        fail(c, "the name is the built-in type's (its fields are fixed)");
        goto out;
    }
    if (!json_object_is_type(obj, json_type_object)) {
        fail(c, "must be an object with \"fields\" and \"key\"");
        goto out;
    }
    if (check_attrs(c, obj, attrs, UTIL_ARRAY_LEN(attrs)) != 0)
        goto out;
    t = xcalloc(1, sizeof(*t));
    util_strlcpy(t->name, name, sizeof(t->name));
    util_strlcpy(t->token_prefix, name, sizeof(t->token_prefix));
    snprintf(t->topic, sizeof(t->topic), "%ss", name);
    snprintf(t->table, sizeof(t->table), "%ss", name);
    t->identity = t->ballot_field = -1;
    if (!json_object_object_get_ex(obj, "fields", &v)) {
        fail(c, "\"fields\" is required");
        goto out;
    }
    if (parse_fields(c, t, v) != 0)
        goto out;
    if (!json_object_object_get_ex(obj, "key", &v)) {
        fail(c, "\"key\" is required (1 to %d field names)", EVTYPE_MAX_KEY);
        goto out;
    }
    if (field_list(c, t, "key", v, 1, EVTYPE_MAX_KEY, t->key, &t->nkey) != 0 ||
        parse_optional(c, t, obj) != 0 || derive(c, t) != 0 || unique(c, set, t) != 0)
        goto out;
    set->types = xrealloc(set->types, (set->n + 1) * sizeof(*set->types));
    set->types[set->n++] = t;
    t = NULL; /* now owned by set */
    rc = 0;
out:
    type_free(t);
    return rc;
}

/* The top level: {"types": {name: type, ...}}, read into set. */
static int parse_top(struct ctx *c, struct evtypes *set, json_object *root)
{
    static const char *const attrs[] = {"types"};
    json_object *types;

    if (!json_object_is_type(root, json_type_object))
        return fail(c, "the file must be one JSON object: {\"types\": {...}}");
    if (check_attrs(c, root, attrs, UTIL_ARRAY_LEN(attrs)) != 0)
        return -1;
    if (!json_object_object_get_ex(root, "types", &types) ||
        !json_object_is_type(types, json_type_object))
        return fail(c, "\"types\" is required: an object of type names");
    if (json_object_object_length(types) == 0)
        return fail(c, "\"types\" is empty (without a file, the vote is the only type)");
    json_object_object_foreach(types, name, obj)
    {
        if (parse_type(c, set, name, obj) != 0)
            return -1;
    }
    return 0;
}

struct evtypes *evtypes_parse(const char *json, size_t len, const char *origin, char *errstr,
                              size_t errsize)
{
    struct ctx c = {.origin = origin ? origin : "types", .err = errstr, .errsize = errsize};
    json_object *root = NULL;
    struct evtypes *set = NULL;

    if (!json)
        json = "", len = 0;
    if (check_syntax(&c, json, len) != 0 || !(root = tree(&c, json, len)))
        goto out;
    set = vote_only();
    if (parse_top(&c, set, root) != 0) {
        evtypes_free(set);
        set = NULL;
    }
out:
    json_object_put(root);
    return set;
}

/* The whole file at path (at most TYPES_FILE_MAX + 1 bytes: enough to tell it is too big). */
static char *read_file(const char *path, size_t *len, char *errstr, size_t errsize)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0;

    if (!f) {
        snprintf(errstr, errsize, "%s: %s", path, strerror(errno));
        return NULL;
    }
    buf = xmalloc(TYPES_FILE_MAX + 1);
    n = fread(buf, 1, TYPES_FILE_MAX + 1, f);
    if (ferror(f)) {
        snprintf(errstr, errsize, "%s: %s", path, strerror(errno));
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = n;
    return buf;
}

struct evtypes *evtypes_load(const char *path, char *errstr, size_t errsize)
{
    struct evtypes *set;
    char *buf;
    size_t len;

    if (!path || !*path)
        return vote_only();
    if (!(buf = read_file(path, &len, errstr, errsize)))
        return NULL;
    set = evtypes_parse(buf, len, path, errstr, errsize);
    free(buf);
    return set;
}
