/*
 * test_ranges.c - "1-4,7" lists: what parses, how it merges, what is refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "ranges.h"

static void test_sorted_and_merged(void **state)
{
    struct range r[4];
    char err[160];
    size_t n;

    (void)state;
    /* Any order, blanks, overlaps and touching ranges: one sorted list. */
    assert_int_equal(
        ranges_parse(" 9, 1-3 ,3,4-5, 20-30,25 ", 1, INT64_MAX, r, 4, &n, err, sizeof(err)), 0);
    assert_int_equal(n, 3);
    assert_true(r[0].lo == 1 && r[0].hi == 5);
    assert_true(r[1].lo == 9 && r[1].hi == 9);
    assert_true(r[2].lo == 20 && r[2].hi == 30);
    assert_int_equal(ranges_has(r, n, 5), 1);
    assert_int_equal(ranges_has(r, n, 6), 0);
    assert_int_equal(ranges_has(r, n, 30), 1);
    /* Signed values when the bounds allow them; a '-' is a sign only then. */
    assert_int_equal(ranges_parse("-5--3,0", -9, 9, r, 4, &n, err, sizeof(err)), 0);
    assert_true(n == 2 && r[0].lo == -5 && r[0].hi == -3 && r[1].lo == 0);
    assert_int_equal(ranges_parse("-5", 1, 9, r, 4, &n, err, sizeof(err)), -1);
    /* More written ranges than room is fine when they merge into few. */
    assert_int_equal(ranges_parse("1,2,3,4,5,6,7", 1, 9, r, 2, &n, err, sizeof(err)), 0);
    assert_true(n == 1 && r[0].lo == 1 && r[0].hi == 7);
    assert_int_equal(ranges_parse("9223372036854775806-9223372036854775807,1", 1, INT64_MAX, r, 4,
                                  &n, err, sizeof(err)),
                     0);
    assert_int_equal(n, 2);
}

static void test_refusals_say_why(void **state)
{
    static const struct {
        const char *spec, *why;
    } rows[] = {
        {"", "not like 1-4,7"},          {"1,", "not like 1-4,7"},
        {"4-1", "not like 1-4,7"},       {"1;2", "not like 1-4,7"},
        {"x", "not like 1-4,7"},         {"1-", "not like 1-4,7"},
        {"0", "0-0 is outside 1..10"},   {"5-11", "5-11 is outside 1..10"},
        {"1,3,5", "more than 2 ranges"}, {"99999999999999999999", "not like 1-4,7"},
    };
    struct range r[2];
    char err[160];
    size_t n;

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (ranges_parse(rows[i].spec, 1, 10, r, 2, &n, err, sizeof(err)) != -1 ||
            !strstr(err, rows[i].why))
            fail_msg("\"%s\": got \"%s\"", rows[i].spec, err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sorted_and_merged),
        cmocka_unit_test(test_refusals_say_why),
    };
    return cmocka_run_group_tests_name("ranges", tests, NULL, NULL);
}
