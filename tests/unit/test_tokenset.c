/*
 * test_tokenset.c - in-batch dedupe: the first index of a token wins, the
 * set is empty again after a reset, and growing keeps working.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "tokenset.h"

static void test_first_wins(void **state)
{
    struct tokenset ts = {0};

    (void)state;
    tokenset_reset(&ts, 3);
    assert_int_equal(tokenset_add(&ts, "vote_lock:1:2", 0), -1);
    assert_int_equal(tokenset_add(&ts, "vote_lock:1:3", 1), -1);
    assert_int_equal(tokenset_add(&ts, "vote_lock:1:2", 2), 0);
    tokenset_reset(&ts, 1);
    assert_int_equal(tokenset_add(&ts, "vote_lock:1:2", 7), -1);
    tokenset_free(&ts);
}

/* The in-flight rule: a token in an INSERT in flight is neither sent again nor a duplicate. */
static void test_in_flight_waits(void **state)
{
    struct tokenset ts = {0};

    (void)state;
    tokenset_reset(&ts, 4);
    tokenset_mark_in_flight(&ts, "vote_lock:1:1");
    assert_int_equal(tokenset_verdict(&ts, "vote_lock:1:1", 0), TOKEN_IN_FLIGHT);
    assert_int_equal(tokenset_verdict(&ts, "vote_lock:1:1", 1), TOKEN_IN_FLIGHT);
    assert_int_equal(tokenset_verdict(&ts, "vote_lock:2:1", 2), TOKEN_FIRST);
    assert_int_equal(tokenset_verdict(&ts, "vote_lock:2:1", 3), TOKEN_REPEAT);
    /* The next round, with nothing in flight: the waiting copy goes first. */
    tokenset_reset(&ts, 2);
    assert_int_equal(tokenset_verdict(&ts, "vote_lock:1:1", 0), TOKEN_FIRST);
    assert_int_equal(tokenset_verdict(&ts, "vote_lock:1:1", 1), TOKEN_REPEAT);
    tokenset_free(&ts);
}

static void test_many(void **state)
{
    static char toks[5000][32];
    struct tokenset ts = {0};

    (void)state;
    tokenset_reset(&ts, 5000);
    for (int i = 0; i < 5000; i++) {
        snprintf(toks[i], sizeof(toks[i]), "vote_lock:%d:%d", i / 5, i % 5);
        assert_int_equal(tokenset_add(&ts, toks[i], (size_t)i), -1);
    }
    for (int i = 0; i < 5000; i++)
        assert_int_equal(tokenset_add(&ts, toks[i], 99999), i);
    tokenset_free(&ts);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_wins),
        cmocka_unit_test(test_in_flight_waits),
        cmocka_unit_test(test_many),
    };
    return cmocka_run_group_tests_name("tokenset", tests, NULL, NULL);
}
