/*
 * test_util.c - the shared helpers give the published answers: FNV-1a 64
 * the reference vectors, util_parse_i64 a number only for a whole in-range
 * decimal.
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
        cmocka_unit_test(test_parse_i64),
    };
    return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
