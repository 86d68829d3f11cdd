/*
 * log.c - logfmt writer that no value can break. See log.h.
 *
 * The key=value tail is a printf format, but log_emit() formats it itself,
 * one conversion at a time, so that it knows where every value starts and
 * ends: literal text of the format (keys, '=', quotes) is trusted, every
 * value is escaped. A conversion inside literal quotes (detail="%s") is
 * escaped in place; a bare one (path=%s) stays bare when it is a plain token
 * and is quoted otherwise. Escapes are JSON's (\" \\ \n \r \t \uXXXX):
 * control bytes, DEL, U+0085/U+2028/U+2029 (line breaks to some viewers) are
 * escaped and invalid UTF-8 becomes \ufffd, so a record is always one valid
 * UTF-8 line. The password of any scheme://user:password@ URL in a value is
 * written as ***. Values longer than LOG_VALUE_MAX and lines longer than
 * LOG_LINE_MAX are cut, never left with an open quote.
 *
 * Each line is built in one buffer and written with a single fwrite, so
 * lines from different threads (librdkafka callbacks, libmicrohttpd
 * workers) never interleave mid-line.
 */
#include "log.h"
#include "util.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <sys/types.h>
#include <time.h>

#define LOG_LINE_MAX  8192 /* bytes of one record, newline included */
#define LOG_VALUE_MAX 2048 /* escaped bytes of one value; longer ones end in "..." */
#define LOG_RESERVE   32   /* kept free for closing a quote and " truncated=true\n" */

int log_level_current = LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level)
{
    log_level_current = (int)level;
}

int log_parse_level(const char *name, enum log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

/* ---- the line buffer ---------------------------------------------------- */

struct line {
    char buf[LOG_LINE_MAX];
    size_t n;
    size_t limit; /* LOG_LINE_MAX - LOG_RESERVE */
    size_t safe;  /* end of the last complete key=value pair */
    int full;     /* something did not fit: the rest is dropped */
};

static int room(struct line *l, size_t k)
{
    if (l->full || l->n + k > l->limit) {
        l->full = 1;
        return 0;
    }
    return 1;
}

static void put(struct line *l, const char *s, size_t k)
{
    if (room(l, k)) {
        memcpy(l->buf + l->n, s, k);
        l->n += k;
    }
}

/* ---- escaping ----------------------------------------------------------- */

/*
 * Where the password of a URL starts and ends in s[0, len): the text
 * between "scheme://user:" and the '@' that ends the authority. 1 if found.
 */
static int find_password(const char *s, size_t len, size_t *from, size_t *to)
{
    for (size_t i = 0; i + 3 <= len; i++) {
        size_t colon = 0, j;

        if (memcmp(s + i, "://", 3) != 0)
            continue;
        for (j = i + 3; j < len; j++) {
            char c = s[j];
            if (c == '@')
                break;
            if (c == '/' || c == '?' || c == '#' || c == ' ' || c == '"' || c == '\'' ||
                (unsigned char)c < 0x20)
                break;
            if (c == ':' && !colon)
                colon = j;
        }
        if (j < len && s[j] == '@' && colon) {
            *from = colon + 1;
            *to = j;
            return 1;
        }
    }
    return 0;
}

/* The character at u (u[0] >= 0x80, len bytes left), escaped; the bytes it took. */
static size_t put_escaped_utf8(struct line *l, const unsigned char *u, size_t len)
{
    char esc[8];
    uint32_t cp = 0;
    size_t k = util_utf8_decode(u, len, &cp);

    if (k == 0) {
        put(l, "\\ufffd", 6);
        return 1;
    }
    if (cp == 0x85 || cp == 0x2028 || cp == 0x2029) {
        snprintf(esc, sizeof(esc), "\\u%04x", (unsigned)cp);
        put(l, esc, 6);
    } else {
        put(l, (const char *)u, k);
    }
    return k;
}

/* One ASCII byte, escaped. */
static void put_escaped_ascii(struct line *l, unsigned char c)
{
    char esc[8];

    switch (c) {
    case '"':
        put(l, "\\\"", 2);
        break;
    case '\\':
        put(l, "\\\\", 2);
        break;
    case '\n':
        put(l, "\\n", 2);
        break;
    case '\r':
        put(l, "\\r", 2);
        break;
    case '\t':
        put(l, "\\t", 2);
        break;
    default:
        if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(l, esc, 6);
        } else {
            put(l, (const char *)&c, 1);
        }
    }
}

/* Escaped s[0, len) into the line, at most LOG_VALUE_MAX bytes of output. */
static void put_escaped(struct line *l, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t start = l->n, pw_from = 0, pw_to = 0;
    int has_pw = find_password(s, len, &pw_from, &pw_to);

    for (size_t i = 0; i < len && !l->full;) {
        if (l->n - start >= LOG_VALUE_MAX) {
            put(l, "...", 3);
            return;
        }
        if (has_pw && i == pw_from) {
            put(l, "***", 3);
            i = pw_to;
            has_pw = find_password(s + i, len - i, &pw_from, &pw_to);
            pw_from += i, pw_to += i;
        } else if (u[i] >= 0x80) {
            i += put_escaped_utf8(l, u + i, len - i);
        } else {
            put_escaped_ascii(l, u[i]);
            i++;
        }
    }
}

/* A plain token: printable ASCII without space, '"', '=' or '\', and no password. */
static int is_bare(const char *s, size_t len)
{
    size_t a, b;

    if (len == 0 || len > LOG_VALUE_MAX || find_password(s, len, &a, &b))
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || c == '"' || c == '=' || c == '\\')
            return 0;
    }
    return 1;
}

/* One value: escaped in place inside literal quotes, else bare or quoted. */
static void put_value(struct line *l, const char *s, size_t len, int in_quotes)
{
    if (in_quotes) {
        put_escaped(l, s, len);
    } else if (is_bare(s, len)) {
        put(l, s, len);
    } else {
        put(l, "\"", 1);
        put_escaped(l, s, len);
        put(l, "\"", 1);
    }
}

/* ---- the format --------------------------------------------------------- */

/* A conversion's spec, copied for snprintf, and what the argument is. */
struct spec {
    char text[48]; /* "%" flags width .precision length conversion */
    size_t n;
    int lng;  /* 0 int, 1 l, 2 ll, 3 j, 4 z, 5 t, 6 L */
    int prec; /* -1: none */
};

/*
 * Read flags, width, precision and length at f (just after the '%') into
 * sp, taking '*' arguments from ap. Returns the conversion character's
 * position (at the NUL for a format cut short).
 */
static const char *read_spec(const char *f, va_list *ap, struct spec *sp)
{
    int width;

    sp->n = 0;
    sp->lng = 0;
    sp->prec = -1;
    sp->text[sp->n++] = '%';
    while (*f && strchr("-+ #0'", *f) && sp->n < 8)
        sp->text[sp->n++] = *f++;
    if (*f == '*') {
        width = va_arg(*ap, int);
        sp->n += (size_t)snprintf(sp->text + sp->n, sizeof(sp->text) - sp->n, "%d", width);
        f++;
    } else {
        while (*f >= '0' && *f <= '9' && sp->n < 16)
            sp->text[sp->n++] = *f++;
    }
    if (*f == '.') {
        sp->text[sp->n++] = *f++;
        if (*f == '*') {
            sp->prec = va_arg(*ap, int);
            sp->n += (size_t)snprintf(sp->text + sp->n, sizeof(sp->text) - sp->n, "%d",
                                      sp->prec < 0 ? 0 : sp->prec);
            f++;
        } else {
            sp->prec = 0;
            while (*f >= '0' && *f <= '9' && sp->n < 28) {
                sp->prec = sp->prec * 10 + (*f - '0');
                sp->text[sp->n++] = *f++;
            }
        }
    }
    for (;; f++) {
        if (*f == 'h')
            continue; /* promoted to int anyway */
        if (*f == 'l')
            sp->lng = sp->lng == 1 ? 2 : 1;
        else if (*f == 'q')
            sp->lng = 2;
        else if (*f == 'j')
            sp->lng = 3;
        else if (*f == 'z')
            sp->lng = 4;
        else if (*f == 't')
            sp->lng = 5;
        else if (*f == 'L')
            sp->lng = 6;
        else
            break;
        sp->text[sp->n++] = *f;
    }
    if (*f) {
        sp->text[sp->n++] = *f;
        sp->text[sp->n] = '\0';
    }
    return f;
}

/* A non-string argument of conversion c, formatted into tmp; its length. */
static int format_arg(const struct spec *sp, char c, va_list *ap, char *tmp, size_t size)
{
    const char *spec = sp->text;
    int lng = sp->lng;

    switch (c) {
    case 'd':
    case 'i':
        if (lng == 1)
            return snprintf(tmp, size, spec, va_arg(*ap, long));
        if (lng == 2)
            return snprintf(tmp, size, spec, va_arg(*ap, long long));
        if (lng == 3)
            return snprintf(tmp, size, spec, va_arg(*ap, intmax_t));
        if (lng == 4)
            return snprintf(tmp, size, spec, va_arg(*ap, ssize_t));
        if (lng == 5)
            return snprintf(tmp, size, spec, va_arg(*ap, ptrdiff_t));
        return snprintf(tmp, size, spec, va_arg(*ap, int));
    case 'u':
    case 'o':
    case 'x':
    case 'X':
        if (lng == 1)
            return snprintf(tmp, size, spec, va_arg(*ap, unsigned long));
        if (lng == 2)
            return snprintf(tmp, size, spec, va_arg(*ap, unsigned long long));
        if (lng == 3)
            return snprintf(tmp, size, spec, va_arg(*ap, uintmax_t));
        if (lng == 4)
            return snprintf(tmp, size, spec, va_arg(*ap, size_t));
        if (lng == 5)
            return snprintf(tmp, size, spec, va_arg(*ap, ptrdiff_t));
        return snprintf(tmp, size, spec, va_arg(*ap, unsigned int));
    case 'f':
    case 'F':
    case 'e':
    case 'E':
    case 'g':
    case 'G':
    case 'a':
    case 'A':
        if (lng == 6)
            return snprintf(tmp, size, spec, va_arg(*ap, long double));
        return snprintf(tmp, size, spec, va_arg(*ap, double));
    case 'c':
        return snprintf(tmp, size, spec, va_arg(*ap, int));
    case 'p':
        return snprintf(tmp, size, spec, va_arg(*ap, void *));
    default: /* unknown (or %n): print it as text, consume nothing */
        return snprintf(tmp, size, "%s", spec);
    }
}

/*
 * One conversion of the format at f (just after the '%'): format its
 * argument into the line. Returns the position after the conversion.
 */
static const char *put_conversion(struct line *l, const char *f, va_list *ap, int in_quotes)
{
    struct spec sp;
    char tmp[400];
    int n;

    f = read_spec(f, ap, &sp);
    if (*f == '\0')
        return f;
    if (*f == 's') {
        const char *s = va_arg(*ap, const char *);
        size_t len;
        if (!s)
            s = "(null)";
        len = sp.prec >= 0 ? strnlen(s, (size_t)sp.prec) : strlen(s);
        put_value(l, s, len, in_quotes);
        return f + 1;
    }
    n = format_arg(&sp, *f, ap, tmp, sizeof(tmp));
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(tmp))
        n = (int)sizeof(tmp) - 1;
    put_value(l, tmp, (size_t)n, in_quotes);
    return f + 1;
}

static void put_tail(struct line *l, const char *f, va_list *ap)
{
    int in_quotes = 0, escaped = 0;

    while (*f && !l->full) {
        if (*f == '%' && f[1] == '%') {
            put(l, "%", 1);
            f += 2;
            continue;
        }
        if (*f == '%') {
            f = put_conversion(l, f + 1, ap, in_quotes);
            continue;
        }
        /* Literal text: trusted, but it must not end the line either. */
        if (*f == '\n' || *f == '\r') {
            put(l, " ", 1);
        } else {
            if (*f == ' ' && !in_quotes)
                l->safe = l->n;
            put(l, f, 1);
            if (escaped)
                escaped = 0;
            else if (in_quotes && *f == '\\')
                escaped = 1;
            else if (*f == '"')
                in_quotes = !in_quotes;
        }
        f++;
    }
    if (l->full) {
        /* Back to the last whole pair, then say that something was cut. */
        l->n = l->safe;
        l->full = 0;
        l->limit = LOG_LINE_MAX - 1;
        put(l, " truncated=true", 15);
    } else if (in_quotes) {
        l->limit = LOG_LINE_MAX - 1;
        put(l, "\"", 1);
    }
}

static void emit(enum log_level level, const char *msg, const char *kvfmt, va_list *ap);

void log_emit(enum log_level level, const char *msg, const char *kvfmt, ...)
{
    va_list ap;

    va_start(ap, kvfmt);
    emit(level, msg, kvfmt, &ap);
    va_end(ap);
}

void log_emit_msg(enum log_level level, const char *msg)
{
    emit(level, msg, NULL, NULL);
}

static void emit(enum log_level level, const char *msg, const char *kvfmt, va_list *ap)
{
    struct line l;
    struct timeval tv;
    struct tm tm;
    int w;

    l.full = 0;
    l.limit = LOG_LINE_MAX - LOG_RESERVE;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    w = snprintf(l.buf, sizeof(l.buf), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s msg=\"",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(tv.tv_usec / 1000), level_names[level]);
    l.n = w > 0 ? (size_t)w : 0;
    put_escaped(&l, msg, strlen(msg)); /* at most LOG_VALUE_MAX: always fits */
    put(&l, "\"", 1);
    l.safe = l.n;
    if (kvfmt && *kvfmt && ap) {
        put(&l, " ", 1);
        put_tail(&l, kvfmt, ap);
    }
    l.buf[l.n++] = '\n';
    fwrite(l.buf, 1, l.n, stderr);
}

int log_every_due(struct log_every *e, int64_t now_ms, int64_t every_ms, int64_t *held)
{
    if (e->at && now_ms - e->at < every_ms) {
        e->held++;
        return 0;
    }
    e->at = now_ms;
    *held = e->held;
    e->held = 0;
    return 1;
}
