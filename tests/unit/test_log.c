/*
 * test_log.c - every log record is exactly one strict logfmt line, whatever
 * the values hold: quotes, backslashes, CR/LF, control bytes, invalid UTF-8,
 * Unicode line separators, passwords in URLs, values too long for a line.
 *
 * The records are captured by pointing stderr at a temporary file, and read
 * back with a strict parser: ts=… level=… msg="…" then key=value pairs, a
 * value bare (printable ASCII without space, '"', '=', '\') or quoted with
 * only \" \\ \n \r \t \uXXXX escapes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"

#define MAX_PAIRS 32
#define MAX_OUT   8192

struct pair {
    char key[64];
    char val[MAX_OUT];
    int quoted;
};

struct record {
    int n;
    struct pair p[MAX_PAIRS];
};

static char captured[4 * MAX_OUT];

/* Run fn with stderr pointed at a temporary file; the bytes written land in captured. */
static size_t capture(void (*fn)(void *), void *arg)
{
    FILE *tmp = tmpfile();
    int saved;
    size_t n;

    assert_non_null(tmp);
    fflush(stderr);
    saved = dup(2);
    assert_true(saved >= 0);
    assert_int_equal(dup2(fileno(tmp), 2), 2);
    fn(arg);
    fflush(stderr);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    rewind(tmp);
    n = fread(captured, 1, sizeof(captured) - 1, tmp);
    captured[n] = '\0';
    fclose(tmp);
    return n;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Append code point cp as UTF-8. */
static size_t put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80)
        return out[0] = (char)cp, 1;
    if (cp < 0x800)
        return out[0] = (char)(0xc0 | cp >> 6), out[1] = (char)(0x80 | (cp & 0x3f)), 2;
    out[0] = (char)(0xe0 | cp >> 12);
    out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[2] = (char)(0x80 | (cp & 0x3f));
    return 3;
}

/* Strict logfmt: 0 and the pairs, or -1 (the line is not one well-formed record). */
static int parse_line(const char *s, size_t len, struct record *rec)
{
    const char *end = s + len;

    rec->n = 0;
    while (s < end) {
        struct pair *p = &rec->p[rec->n];
        size_t k = 0, v = 0;

        if (rec->n == MAX_PAIRS)
            return -1;
        if (rec->n > 0 && *s++ != ' ')
            return -1;
        while (s < end && ((*s >= 'a' && *s <= 'z') || *s == '_' || (*s >= '0' && *s <= '9')))
            p->key[k++] = *s++;
        p->key[k] = '\0';
        if (k == 0 || s >= end || *s++ != '=')
            return -1;
        p->quoted = s < end && *s == '"';
        if (!p->quoted) {
            while (s < end && *s != ' ') {
                unsigned char c = (unsigned char)*s;
                if (c <= 0x20 || c >= 0x7f || c == '"' || c == '=' || c == '\\')
                    return -1;
                p->val[v++] = *s++;
            }
            if (v == 0)
                return -1;
        } else {
            s++;
            for (;;) {
                unsigned char c;
                if (s >= end)
                    return -1;
                c = (unsigned char)*s;
                if (c == '"') {
                    s++;
                    break;
                }
                if (c < 0x20 || c == 0x7f)
                    return -1;
                if (c != '\\') {
                    p->val[v++] = *s++;
                    continue;
                }
                if (s + 1 >= end)
                    return -1;
                switch (s[1]) {
                case '"':
                case '\\':
                    p->val[v++] = s[1];
                    s += 2;
                    break;
                case 'n':
                    p->val[v++] = '\n', s += 2;
                    break;
                case 'r':
                    p->val[v++] = '\r', s += 2;
                    break;
                case 't':
                    p->val[v++] = '\t', s += 2;
                    break;
                case 'u': {
                    unsigned cp = 0;
                    for (int i = 2; i < 6; i++) {
                        if (s + i >= end || hexval(s[i]) < 0)
                            return -1;
                        cp = cp << 4 | (unsigned)hexval(s[i]);
                    }
                    v += put_utf8(p->val + v, cp);
                    s += 6;
                    break;
                }
                default:
                    return -1;
                }
            }
        }
        p->val[v] = '\0';
        rec->n++;
    }
    if (rec->n < 3 || strcmp(rec->p[0].key, "ts") != 0 || strcmp(rec->p[1].key, "level") != 0 ||
        strcmp(rec->p[2].key, "msg") != 0 || !rec->p[2].quoted)
        return -1;
    for (int i = 0; i < rec->n; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(rec->p[i].key, rec->p[j].key) == 0)
                return -1; /* a key twice: something was forged */
    return 0;
}

/* Exactly one record was captured: parse it into rec. */
static void one_record(size_t n, struct record *rec)
{
    assert_true(n > 1);
    assert_int_equal(captured[n - 1], '\n');
    assert_null(memchr(captured, '\n', n - 1));
    assert_null(memchr(captured, '\r', n - 1));
    if (parse_line(captured, n - 1, rec) != 0)
        fail_msg("not one strict logfmt record: %s", captured);
}

static const char *value_of(const struct record *rec, const char *key)
{
    for (int i = 0; i < rec->n; i++)
        if (strcmp(rec->p[i].key, key) == 0)
            return rec->p[i].val;
    fail_msg("no key %s in %s", key, captured);
    return NULL;
}

/* ---- the records under test ----------------------------------------------- */

static const char forged[] = "x\" level=error msg=\"forged\nts=2000-01-01T00:00:00.000Z "
                             "level=error msg=\"forged again\" \\ end";

static void emit_quoted(void *arg)
{
    log_warn("hostile detail", "detail=\"%s\" n=%d", (const char *)arg, 7);
}

static void emit_bare(void *arg)
{
    log_info("hostile path", "path=%s status=%d", (const char *)arg, 404);
}

static void test_quoted_context_is_escaped(void **state)
{
    struct record rec;

    (void)state;
    one_record(capture(emit_quoted, (void *)forged), &rec);
    assert_int_equal(rec.n, 5);
    assert_string_equal(value_of(&rec, "level"), "warn");
    assert_string_equal(value_of(&rec, "msg"), "hostile detail");
    assert_string_equal(value_of(&rec, "detail"), forged);
    assert_string_equal(value_of(&rec, "n"), "7");
}

static void test_bare_context_is_quoted_when_needed(void **state)
{
    static const char *const values[] = {forged, "a b", "k=v",       "\"",
                                         "\\",   "",    "tab\there", "caf\xc3\xa9"};
    struct record rec;

    (void)state;
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        one_record(capture(emit_bare, (void *)values[i]), &rec);
        assert_int_equal(rec.n, 5);
        assert_string_equal(value_of(&rec, "path"), values[i]);
        assert_true(rec.p[3].quoted);
        assert_string_equal(value_of(&rec, "status"), "404");
    }
    /* A plain token stays bare. */
    one_record(capture(emit_bare, (void *)"/votes/1/2"), &rec);
    assert_false(rec.p[3].quoted);
    assert_string_equal(value_of(&rec, "path"), "/votes/1/2");
}

static void test_control_bytes_and_bad_utf8(void **state)
{
    /* Control bytes, DEL, a lone continuation byte, a truncated sequence, an
     * overlong '/', a surrogate, and U+2028 (a line break to some viewers). */
    static const char hostile[] = "a\x01"
                                  "b\x7f"
                                  "c\x80"
                                  "d\xe2\x82"
                                  "e\xc0\xaf"
                                  "f\xed\xa0\x80"
                                  "g\xe2\x80\xa8"
                                  "h\x1b[31m";
    struct record rec;
    const char *v;
    size_t n;

    (void)state;
    n = capture(emit_quoted, (void *)hostile);
    one_record(n, &rec);
    /* Every byte of the line is printable ASCII or part of valid UTF-8 text. */
    for (size_t i = 0; i + 1 < n; i++)
        assert_true((unsigned char)captured[i] >= 0x20 && (unsigned char)captured[i] != 0x7f);
    assert_null(strstr(captured, "\xe2\x80\xa8"));
    v = value_of(&rec, "detail");
    assert_int_equal(v[0], 'a');
    assert_int_equal(v[1], 0x01);
    assert_non_null(strstr(v, "b\x7f"));
    assert_non_null(strstr(v, "\xe2\x80\xa8")); /* decodes back to U+2028 */
    assert_non_null(strstr(v, "h\x1b[31m"));
}

struct fmtcase {
    int64_t big;
    size_t sz;
    double d;
};

static void emit_formats(void *arg)
{
    const struct fmtcase *c = arg;
    log_info("formats",
             "big=%" PRId64 " sz=%zu d=%.2f pct=100%% ch=%c cut=%.*s pad=%5d neg=%lld "
             "hex=%#x u=%u",
             c->big, c->sz, c->d, 'q', 3, "abcdef", 42, -5LL, 255u, 7u);
}

static void test_conversions(void **state)
{
    struct fmtcase c = {INT64_MAX, (size_t)12345, 3.14159};
    struct record rec;

    (void)state;
    one_record(capture(emit_formats, &c), &rec);
    assert_string_equal(value_of(&rec, "big"), "9223372036854775807");
    assert_string_equal(value_of(&rec, "sz"), "12345");
    assert_string_equal(value_of(&rec, "d"), "3.14");
    assert_string_equal(value_of(&rec, "pct"), "100%");
    assert_string_equal(value_of(&rec, "ch"), "q");
    assert_string_equal(value_of(&rec, "cut"), "abc");
    assert_string_equal(value_of(&rec, "pad"), "   42");
    assert_string_equal(value_of(&rec, "neg"), "-5");
    assert_string_equal(value_of(&rec, "hex"), "0xff");
    assert_string_equal(value_of(&rec, "u"), "7");
}

static void emit_urls(void *arg)
{
    (void)arg;
    log_error("cannot start",
              "url=%s error=\"bad Redis URL %s (expected redis://host:port/db)\" plain=%s",
              "postgresql://tadak:s3cr%40t@db.internal:5432/tadak?sslmode=require",
              "\"redis://:hunter2@10.0.0.1:6379/0\"", "redis://cache:6379/0");
}

static void test_passwords_in_urls_are_redacted(void **state)
{
    struct record rec;

    (void)state;
    one_record(capture(emit_urls, NULL), &rec);
    assert_null(strstr(captured, "s3cr"));
    assert_null(strstr(captured, "hunter2"));
    assert_string_equal(value_of(&rec, "url"),
                        "postgresql://tadak:***@db.internal:5432/tadak?sslmode=require");
    assert_non_null(strstr(value_of(&rec, "error"), "\"redis://:***@10.0.0.1:6379/0\""));
    assert_string_equal(value_of(&rec, "plain"), "redis://cache:6379/0");
}

static void emit_long(void *arg)
{
    log_info("long values", "a=\"%s\" b=%s c=%d", (const char *)arg, (const char *)arg, 1);
}

static void emit_many_long(void *arg)
{
    const char *b = arg;
    log_info("many long values", "a=%s b=%s c=\"%s\" d=%s e=%s f=%d", b, b, b, b, b, 6);
}

static void test_long_values_keep_the_line_whole(void **state)
{
    char *big = malloc(20000);
    struct record rec;
    size_t n;

    (void)state;
    assert_non_null(big);
    for (size_t i = 0; i < 19999; i++)
        big[i] = i % 100 == 99 ? '\n' : (char)('a' + i % 26);
    big[19999] = '\0';
    n = capture(emit_long, big);
    one_record(n, &rec);
    assert_true(n <= 8192);
    assert_true(strlen(value_of(&rec, "a")) > 100);
    assert_int_equal(strncmp(value_of(&rec, "a"), big, 50), 0);

    /* Too much for one line: whole pairs are kept, and the cut is said. */
    n = capture(emit_many_long, big);
    one_record(n, &rec);
    assert_true(n <= 8192);
    assert_string_equal(value_of(&rec, "truncated"), "true");
    assert_int_equal(strncmp(value_of(&rec, "c"), big, 50), 0);
    free(big);
}

static void emit_message(void *arg)
{
    log_info((const char *)arg);
}

static void test_message_is_escaped(void **state)
{
    struct record rec;

    (void)state;
    one_record(capture(emit_message, (void *)forged), &rec);
    assert_int_equal(rec.n, 3);
    assert_string_equal(value_of(&rec, "msg"), forged);
}

/* A repeating line: the first at once, then one per period saying how many were held. */
static void test_log_every_holds_repeats_back(void **state)
{
    struct log_every e = {0};
    int64_t held = -1;

    (void)state;
    assert_int_equal(log_every_due(&e, 1000, 30000, &held), 1);
    assert_int_equal(held, 0);
    for (int64_t t = 1100; t < 31000; t += 100)
        assert_int_equal(log_every_due(&e, t, 30000, &held), 0);
    assert_int_equal(log_every_due(&e, 31000, 30000, &held), 1);
    assert_int_equal(held, 299);
    assert_int_equal(log_every_due(&e, 31001, 30000, &held), 0);
    assert_int_equal(log_every_due(&e, 90000, 30000, &held), 1);
    assert_int_equal(held, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quoted_context_is_escaped),
        cmocka_unit_test(test_bare_context_is_quoted_when_needed),
        cmocka_unit_test(test_control_bytes_and_bad_utf8),
        cmocka_unit_test(test_conversions),
        cmocka_unit_test(test_passwords_in_urls_are_redacted),
        cmocka_unit_test(test_long_values_keep_the_line_whole),
        cmocka_unit_test(test_message_is_escaped),
        cmocka_unit_test(test_log_every_holds_repeats_back),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
