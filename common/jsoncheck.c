/*
 * jsoncheck.c - recursive-descent JSON validator (no values are built).
 * See jsoncheck.h.
 *
 * With a strict report asked for, the keys of every open object are decoded
 * into one arena (a stack: a nested object's keys sit above its parent's and
 * are dropped when it closes); when an object closes, its keys are sorted
 * and neighbours compared.
 */
#include "jsoncheck.h"
#include "util.h"

#include <json-c/json.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct key {
    size_t off, len; /* decoded bytes in the arena */
    size_t at;       /* where the key's string starts in the input */
    const char *p;   /* arena + off, filled in just before sorting */
};

struct scan {
    const unsigned char *p, *end, *start;
    int depth, max_depth;
    const char *err;

    struct jsoncheck_strict *strict; /* NULL: plain RFC 8259 */
    char *arena;
    size_t alen, acap;
    struct key *keys;
    size_t nkeys, kcap;
};

static int value(struct scan *s);

static void ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int bad(struct scan *s, const char *err)
{
    if (!s->err)
        s->err = err;
    return -1;
}

static int literal(struct scan *s, const char *word)
{
    for (; *word; word++, s->p++)
        if (s->p >= s->end || *s->p != (unsigned char)*word)
            return bad(s, "invalid literal");
    return 0;
}

static int digits(struct scan *s)
{
    const unsigned char *from = s->p;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return s->p > from ? 0 : bad(s, "invalid number");
}

static int number(struct scan *s)
{
    if (s->p < s->end && *s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0')
        s->p++;
    else if (digits(s) != 0)
        return -1;
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (digits(s) != 0)
            return -1;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (digits(s) != 0)
            return -1;
    }
    return 0;
}

/* One UTF-8 sequence at s->p (first byte >= 0x80); an invalid one is reported where it starts. */
static int utf8(struct scan *s)
{
    uint32_t cp;
    size_t n = util_utf8_decode(s->p, (size_t)(s->end - s->p), &cp);

    if (n == 0)
        return bad(s, "invalid UTF-8");
    s->p += n;
    return 0;
}

static int hex4(struct scan *s, unsigned int *cp)
{
    *cp = 0;
    for (int i = 0; i < 4; i++, s->p++) {
        unsigned char c = s->p < s->end ? *s->p : 0;
        if (c >= '0' && c <= '9')
            *cp = *cp << 4 | (unsigned int)(c - '0');
        else if ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
            *cp = *cp << 4 | (unsigned int)((c | 0x20) - 'a' + 10);
        else
            return bad(s, "invalid \\u escape");
    }
    return 0;
}

/* ---- the decoded keys of the open objects (strict mode only) ------------ */

static void arena_put(struct scan *s, const void *bytes, size_t n)
{
    if (s->alen + n > s->acap) {
        s->acap = (s->alen + n) * 2 + 64;
        s->arena = xrealloc(s->arena, s->acap);
    }
    memcpy(s->arena + s->alen, bytes, n);
    s->alen += n;
}

/* A code point as UTF-8 (a lone surrogate as its 3-byte form: keys only compare). */
static void arena_put_cp(struct scan *s, unsigned int cp)
{
    unsigned char b[4];
    size_t n;

    if (cp < 0x80)
        b[0] = (unsigned char)cp, n = 1;
    else if (cp < 0x800)
        b[0] = (unsigned char)(0xc0 | cp >> 6), b[1] = (unsigned char)(0x80 | (cp & 0x3f)), n = 2;
    else if (cp < 0x10000)
        b[0] = (unsigned char)(0xe0 | cp >> 12), b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)),
        b[2] = (unsigned char)(0x80 | (cp & 0x3f)), n = 3;
    else
        b[0] = (unsigned char)(0xf0 | cp >> 18), b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f)),
        b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f)),
        b[3] = (unsigned char)(0x80 | (cp & 0x3f)), n = 4;
    arena_put(s, b, n);
}

static int key_cmp(const void *a, const void *b)
{
    const struct key *x = a, *y = b;

    if (x->len != y->len)
        return x->len < y->len ? -1 : 1;
    return memcmp(x->p, y->p, x->len);
}

/* An object whose keys are keys[first..nkeys) closes: note a duplicate, drop them. */
static void keys_close(struct scan *s, size_t first, size_t arena_mark)
{
    size_t n = s->nkeys - first;

    if (s->strict->dup_key_at == JSONCHECK_NONE && n > 1) {
        struct key *k = s->keys + first;
        /* Only empty keys so far: nothing was put in the arena, which may be NULL. */
        for (size_t i = 0; i < n; i++)
            k[i].p = s->arena ? s->arena + k[i].off : "";
        qsort(k, n, sizeof(*k), key_cmp);
        for (size_t i = 1; i < n; i++) {
            if (key_cmp(&k[i - 1], &k[i]) != 0)
                continue;
            size_t at = k[i - 1].at > k[i].at ? k[i - 1].at : k[i].at;
            if (at < s->strict->dup_key_at)
                s->strict->dup_key_at = at;
        }
    }
    s->nkeys = first;
    s->alen = arena_mark;
}

/* ---- strings ------------------------------------------------------------ */

/* A key just read (its unescaped bytes from key_off in the arena): kept for the duplicate check. */
static void key_seen(struct scan *s, size_t key_off, const unsigned char *open)
{
    if (s->nkeys == s->kcap) {
        s->kcap = s->kcap * 2 + 16;
        s->keys = xrealloc(s->keys, s->kcap * sizeof(*s->keys));
    }
    s->keys[s->nkeys].off = key_off;
    s->keys[s->nkeys].len = s->alen - key_off;
    s->keys[s->nkeys].at = (size_t)(open - s->start);
    s->nkeys++;
}

/*
 * The \uXXXX escape at s->p (just after its "\u") in the string opened at
 * open, and a low surrogate's escape right after a high one: 0, or -1 (bad).
 */
static int u_escape(struct scan *s, const unsigned char *open, int keep)
{
    unsigned int cp, lo;

    if (hex4(s, &cp) != 0)
        return -1;
    if (cp == 0 && s->strict && s->strict->nul_at == JSONCHECK_NONE)
        s->strict->nul_at = (size_t)(open - s->start);
    /* A surrogate pair is one code point: "\ud83d\ude00" is the raw U+1F600. */
    if (cp >= 0xd800 && cp <= 0xdbff && s->end - s->p >= 6 && s->p[0] == '\\' && s->p[1] == 'u') {
        const unsigned char *save = s->p;
        s->p += 2;
        if (hex4(s, &lo) != 0)
            return -1;
        if (lo >= 0xdc00 && lo <= 0xdfff)
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
        else
            s->p = save; /* not a pair: the second escape is read on its own */
    }
    if (keep)
        arena_put_cp(s, cp);
    return 0;
}

/* A string; with is_key (and a strict report asked for) its decoded bytes go to the arena. */
static int string(struct scan *s, int is_key)
{
    const unsigned char *open = s->p;
    int keep = is_key && s->strict && s->strict->dup_key_at == JSONCHECK_NONE;
    size_t key_off = s->alen;

    s->p++; /* opening quote */
    while (s->p < s->end) {
        unsigned char c = *s->p;
        if (c == '"') {
            s->p++;
            if (keep)
                key_seen(s, key_off, open);
            return 0;
        }
        if (c < 0x20)
            return bad(s, "control character in string");
        if (c == '\\') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            const char *e;

            s->p++;
            if (s->p >= s->end)
                break;
            c = *s->p;
            if (c == 'u') {
                s->p++;
                if (u_escape(s, open, keep) != 0)
                    return -1;
                continue;
            }
            if (c == '\0' || !(e = strchr(from, c)))
                return bad(s, "invalid escape in string");
            if (keep)
                arena_put(s, &to[e - from], 1);
            s->p++;
        } else if (c >= 0x80) {
            const unsigned char *from = s->p;
            if (utf8(s) != 0)
                return -1;
            if (keep)
                arena_put(s, from, (size_t)(s->p - from));
        } else {
            if (keep)
                arena_put(s, s->p, 1);
            s->p++;
        }
    }
    return bad(s, "unterminated string");
}

static int container(struct scan *s, unsigned char close)
{
    size_t first_key = s->nkeys, arena_mark = s->alen;
    int first = 1;

    if (++s->depth > s->max_depth)
        return bad(s, "nesting too deep");
    s->p++;
    ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        s->depth--;
        return 0;
    }
    for (;;) {
        if (!first) {
            ws(s);
            if (s->p < s->end && *s->p == close) {
                s->p++;
                s->depth--;
                if (s->strict && close == '}')
                    keys_close(s, first_key, arena_mark);
                return 0;
            }
            if (s->p >= s->end || *s->p != ',')
                return bad(s, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
            s->p++;
            ws(s);
        }
        first = 0;
        if (close == '}') {
            if (s->p >= s->end || *s->p != '"')
                return bad(s, "object keys must be double-quoted strings");
            if (string(s, 1) != 0)
                return -1;
            ws(s);
            if (s->p >= s->end || *s->p != ':')
                return bad(s, "expected ':'");
            s->p++;
        }
        if (value(s) != 0)
            return -1;
    }
}

static int value(struct scan *s)
{
    ws(s);
    if (s->p >= s->end)
        return bad(s, "unexpected end of input");
    switch (*s->p) {
    case '{':
        return container(s, '}');
    case '[':
        return container(s, ']');
    case '"':
        return string(s, 0);
    case 't':
        return literal(s, "true");
    case 'f':
        return literal(s, "false");
    case 'n':
        return literal(s, "null");
    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
            return number(s);
        return bad(s, "unexpected character");
    }
}

int jsoncheck_ex(const char *buf, size_t len, int max_depth, struct jsoncheck_strict *strict,
                 char *why, size_t whysize)
{
    struct scan s;
    int rc = -1;

    memset(&s, 0, sizeof(s));
    s.p = s.start = (const unsigned char *)buf;
    s.end = s.p + len;
    s.max_depth = max_depth;
    s.strict = strict;
    if (strict)
        strict->dup_key_at = strict->nul_at = JSONCHECK_NONE;
    if (value(&s) == 0) {
        ws(&s);
        if (s.p == s.end)
            rc = 0;
        else
            bad(&s, "unexpected bytes after the JSON value");
    }
    if (rc != 0 && why && whysize)
        snprintf(why, whysize, "%s at byte %zu", s.err, (size_t)(s.p - s.start));
    free(s.arena);
    free(s.keys);
    return rc;
}

int jsoncheck(const char *buf, size_t len, int max_depth, char *why, size_t whysize)
{
    return jsoncheck_ex(buf, len, max_depth, NULL, why, whysize);
}

struct json_object *jsoncheck_tree(const char *buf, size_t len, int max_depth, size_t *end,
                                   const char **why)
{
    json_tokener *tok = json_tokener_new_ex(max_depth + 1);
    enum json_tokener_error jerr;
    json_object *obj;

    *end = 0;
    if (!tok) {
        *why = "the JSON parser is unavailable";
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    obj = json_tokener_parse_ex(tok, buf, (int)len);
    jerr = json_tokener_get_error(tok);
    *end = json_tokener_get_parse_end(tok);
    if (!obj && jerr == json_tokener_continue) {
        /* A bare top-level number only ends at end of input: say so with a NUL. */
        obj = json_tokener_parse_ex(tok, "", 1);
        jerr = json_tokener_get_error(tok);
        *end = len;
    }
    if (!obj || jerr != json_tokener_success) {
        *why = jerr == json_tokener_continue ? "unexpected end of input"
                                             : json_tokener_error_desc(jerr);
        json_object_put(obj);
        obj = NULL;
    }
    json_tokener_free(tok);
    return obj;
}
