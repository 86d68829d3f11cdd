/*
 * test_util.c - the shared helpers give the published answers: FNV-1a 64
 * the reference vectors, the UTF-8 decoder exactly the sequences RFC 3629
 * allows (counted over all 2-, 3- and 4-byte forms), util_parse_i64 a
 * number only for a whole in-range decimal.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "util.h"

/* From the FNV reference (isthe.com/chongo/tech/comp/fnv) and Python's big integers. */
static void test_fnv1a64_vectors(void **state)
{
    (void)state;
    assert_true(util_fnv1a64("", 0) == 0xcbf29ce484222325ULL); /* the offset basis */
    assert_true(util_fnv1a64("a", 1) == 0xaf63dc4c8601ec8cULL);
    assert_true(util_fnv1a64("foobar", 6) == 0x85944171f73967e8ULL);
    assert_true(util_fnv1a64("vote_lock:100:1", 15) == 0x8e7e8575a264b155ULL);
    /* Bytes are unsigned, a NUL is data, and only len bytes are read. */
    assert_true(util_fnv1a64("\xff\0a", 3) == 0xf920aa1be4159d31ULL);
    assert_true(util_fnv1a64("foobarbaz", 6) == 0x85944171f73967e8ULL);
}

/* The test's own encoder, written from RFC 3629's table. */
static size_t encode(uint32_t cp, unsigned char *b)
{
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (unsigned char)(0xc0 | cp >> 6);
        b[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (unsigned char)(0xe0 | cp >> 12);
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
        b[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    b[0] = (unsigned char)(0xf0 | cp >> 18);
    b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
    b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
    b[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

static void test_utf8_known(void **state)
{
    static const struct {
        const char *bytes;
        size_t avail, want_len;
        uint32_t want_cp;
    } rows[] = {
        {"A", 1, 1, 'A'},
        {"\xc3\xa9", 2, 2, 0xe9},
        {"\xdf\xbf", 2, 2, 0x7ff},
        {"\xe0\xa0\x80", 3, 3, 0x800},
        {"\xe2\x82\xac", 3, 3, 0x20ac},
        {"\xed\x9f\xbf", 3, 3, 0xd7ff},
        {"\xee\x80\x80", 3, 3, 0xe000},
        {"\xe2\x80\xa8", 3, 3, 0x2028},
        {"\xf0\x90\x80\x80", 4, 4, 0x10000},
        {"\xf0\x9f\x98\x80xyz", 7, 4, 0x1f600},
        {"\xf4\x8f\xbf\xbf", 4, 4, 0x10ffff},
        /* not UTF-8 */
        {"\x80", 1, 0, 0},             /* a continuation byte first */
        {"\xbf", 1, 0, 0},             /* ... and the last of them */
        {"\xc0\xaf", 2, 0, 0},         /* overlong '/' */
        {"\xc1\xbf", 2, 0, 0},         /* overlong U+7F */
        {"\xe0\x9f\xbf", 3, 0, 0},     /* overlong U+7FF */
        {"\xf0\x8f\xbf\xbf", 4, 0, 0}, /* overlong U+FFFF */
        {"\xed\xa0\x80", 3, 0, 0},     /* U+D800, a surrogate */
        {"\xed\xbf\xbf", 3, 0, 0},     /* U+DFFF */
        {"\xf4\x90\x80\x80", 4, 0, 0}, /* U+110000 */
        {"\xf5\x80\x80\x80", 4, 0, 0},
        {"\xff", 1, 0, 0},
        {"\xc3\x41", 2, 0, 0}, /* a continuation byte missing */
        {"\xe2\x82\x41", 3, 0, 0},
        {"\xc3\xa9", 1, 0, 0}, /* cut short by avail, though the bytes are there */
        {"\xf0\x9f\x98\x80", 3, 0, 0},
        {"A", 0, 0, 0},
    };

    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(rows); i++) {
        uint32_t cp = 0xdeadbeef;
        size_t n = util_utf8_decode((const unsigned char *)rows[i].bytes, rows[i].avail, &cp);
        if (n != rows[i].want_len)
            fail_msg("row %zu: length %zu, want %zu", i, n, rows[i].want_len);
        if (n ? cp != rows[i].want_cp : cp != 0xdeadbeef)
            fail_msg("row %zu: code point %#x", i, (unsigned)cp);
    }
}

/* Every scalar value round-trips through the test's encoder. */
static void test_utf8_every_code_point(void **state)
{
    unsigned char b[4];
    uint32_t cp;

    (void)state;
    for (uint32_t want = 0; want <= 0x10ffff; want++) {
        size_t len;
        if (want >= 0xd800 && want <= 0xdfff)
            continue;
        len = encode(want, b);
        if (util_utf8_decode(b, len, &cp) != len || cp != want)
            fail_msg("U+%04X not decoded", (unsigned)want);
    }
}

/*
 * Over every 2-, 3- and 4-byte string whose lead byte announces that length
 * and whose other bytes are any continuation byte or a neighbour of that
 * range, exactly the encodings of the scalar values of that length are
 * accepted: 1920, 61440 (U+0800..U+FFFF less 2048 surrogates) and 1048576.
 */
static void test_utf8_exhaustive(void **state)
{
    static const struct {
        unsigned lead_lo, lead_hi;
        size_t len;
        unsigned long want;
    } forms[] = {{0xc0, 0xdf, 2, 1920}, {0xe0, 0xef, 3, 61440}, {0xf0, 0xf7, 4, 1048576}};
    unsigned char tail[64 + 4];
    size_t ntail = 0;

    (void)state;
    tail[ntail++] = 0x00;
    tail[ntail++] = 0x7f;
    for (unsigned c = 0x80; c <= 0xbf; c++)
        tail[ntail++] = (unsigned char)c;
    tail[ntail++] = 0xc0;
    tail[ntail++] = 0xff;
    for (size_t f = 0; f < UTIL_ARRAY_LEN(forms); f++) {
        size_t len = forms[f].len, combos = 1;
        unsigned long accepted = 0;
        for (size_t k = 1; k < len; k++)
            combos *= ntail;
        for (unsigned lead = forms[f].lead_lo; lead <= forms[f].lead_hi; lead++) {
            for (size_t t = 0; t < combos; t++) {
                unsigned char b[4], back[4];
                uint32_t cp;
                size_t n, rest = t;
                b[0] = (unsigned char)lead;
                for (size_t k = 1; k < len; k++, rest /= ntail)
                    b[k] = tail[rest % ntail];
                n = util_utf8_decode(b, len, &cp);
                if (n == 0)
                    continue;
                /* Accepted: it is the one encoding of its code point. */
                if (n != len || encode(cp, back) != len || memcmp(b, back, len) != 0)
                    fail_msg("%zu-byte form %02x.. accepted as U+%04X", len, lead, (unsigned)cp);
                accepted++;
            }
        }
        if (accepted != forms[f].want)
            fail_msg("%zu-byte forms: %lu accepted, want %lu", len, accepted, forms[f].want);
    }
}

static void test_parse_i64(void **state)
{
    static const struct {
        const char *s;
        int ok;
        int64_t want;
    } rows[] = {
        {"0", 1, 0},
        {"42", 1, 42},
        {"-42", 1, -42},
        {"+42", 1, 42},
        {"007", 1, 7},
        {"9223372036854775807", 1, INT64_MAX},
        {"-9223372036854775808", 1, INT64_MIN},
        {"9223372036854775808", 0, 0}, /* overflow, not saturated */
        {"-9223372036854775809", 0, 0},
        {"99999999999999999999999", 0, 0},
        {"", 0, 0},
        {"-", 0, 0},
        {"+", 0, 0},
        {"--1", 0, 0},
        {"12abc", 0, 0}, /* trailing junk */
        {"12 ", 0, 0},
        {"1.5", 0, 0},
        {"1e3", 0, 0},
        {"0x10", 0, 0},
        {"abc", 0, 0},
    };

    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(rows); i++) {
        int64_t v = 12345;
        int rc = util_parse_i64(rows[i].s, &v);
        if (rows[i].ok ? rc != 0 || v != rows[i].want : rc != -1 || v != 12345)
            fail_msg("\"%s\": rc=%d value=%lld", rows[i].s, rc, (long long)v);
    }
    assert_int_equal(util_parse_i64(NULL, &(int64_t){0}), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fnv1a64_vectors),
        cmocka_unit_test(test_utf8_known),
        cmocka_unit_test(test_utf8_every_code_point),
        cmocka_unit_test(test_utf8_exhaustive),
        cmocka_unit_test(test_parse_i64),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
