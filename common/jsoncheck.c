/*
 * jsoncheck.c - recursive-descent JSON validator (no values are built).
 * See jsoncheck.h.
 */
#include "jsoncheck.h"

#include <stdio.h>

struct scan {
    const unsigned char *p, *end, *start;
    int depth, max_depth;
    const char *err;
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

/* One UTF-8 sequence starting at s->p (first byte >= 0x80). */
static int utf8(struct scan *s)
{
    unsigned char c = *s->p;
    unsigned int cp, min;
    int more;

    if (c >= 0xc2 && c <= 0xdf)
        more = 1, cp = c & 0x1f, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        more = 2, cp = c & 0x0f, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        more = 3, cp = c & 0x07, min = 0x10000;
    else
        return bad(s, "invalid UTF-8");
    s->p++;
    for (; more > 0; more--, s->p++) {
        if (s->p >= s->end || (*s->p & 0xc0) != 0x80)
            return bad(s, "invalid UTF-8");
        cp = (cp << 6) | (*s->p & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return bad(s, "invalid UTF-8");
    return 0;
}

static int hex4(struct scan *s)
{
    for (int i = 0; i < 4; i++, s->p++) {
        unsigned char c = s->p < s->end ? *s->p : 0;
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return bad(s, "invalid \\u escape");
    }
    return 0;
}

static int string(struct scan *s)
{
    s->p++; /* opening quote */
    while (s->p < s->end) {
        unsigned char c = *s->p;
        if (c == '"') {
            s->p++;
            return 0;
        }
        if (c < 0x20)
            return bad(s, "control character in string");
        if (c == '\\') {
            s->p++;
            if (s->p >= s->end)
                break;
            c = *s->p;
            if (c == 'u') {
                s->p++;
                if (hex4(s) != 0)
                    return -1;
                continue;
            }
            if (!(c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' ||
                  c == 'r' || c == 't'))
                return bad(s, "invalid escape in string");
            s->p++;
        } else if (c >= 0x80) {
            if (utf8(s) != 0)
                return -1;
        } else {
            s->p++;
        }
    }
    return bad(s, "unterminated string");
}

static int container(struct scan *s, unsigned char close)
{
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
            if (string(s) != 0)
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
        return string(s);
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

int jsoncheck(const char *buf, size_t len, int max_depth, char *why, size_t whysize)
{
    struct scan s = {(const unsigned char *)buf,
                     (const unsigned char *)buf + len,
                     (const unsigned char *)buf,
                     0,
                     max_depth,
                     NULL};

    if (value(&s) == 0) {
        ws(&s);
        if (s.p == s.end)
            return 0;
        bad(&s, "unexpected bytes after the JSON value");
    }
    if (why && whysize)
        snprintf(why, whysize, "%s at byte %zu", s.err, (size_t)(s.p - s.start));
    return -1;
}
