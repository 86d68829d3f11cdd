/*
 * test_recorded.c - the recorded cache answers "recorded" only for tokens that
 * were added (never for a near miss, whatever the load), keeps the most
 * recent tokens when full, and trusts nothing older than the window.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "recorded.h"

#define T0     1000000
#define WINDOW 1000

static void test_exact_match(void **state)
{
    struct recorded *dc = recorded_new(64, 4096, WINDOW);

    (void)state;
    assert_false(recorded_has(dc, "vote_lock:1:2", T0));
    recorded_add(dc, "vote_lock:1:2", T0);
    assert_true(recorded_has(dc, "vote_lock:1:2", T0));
    assert_false(recorded_has(dc, "vote_lock:1:3", T0));
    assert_false(recorded_has(dc, "vote_lock:1:2 ", T0));
    assert_false(recorded_has(dc, "vote_lock:1:", T0));
    assert_false(recorded_has(dc, "", T0));
    recorded_add(dc, "vote_lock:1:2", T0); /* again: stored once */
    assert_int_equal(recorded_count(dc), 1);
    recorded_free(dc);
}

/* Full tables, long probe chains, rotations: no token never added is ever "done". */
static void test_no_false_done(void **state)
{
    struct recorded *dc = recorded_new(16, 1 << 20, WINDOW);
    char tok[64];

    (void)state;
    for (int i = 0; i < 20000; i++) {
        snprintf(tok, sizeof(tok), "vote_lock:%d:%d", i, i % 5);
        recorded_add(dc, tok, T0);
        snprintf(tok, sizeof(tok), "vote_lock:%d:%d", i, 1 + i % 5);
        assert_false(recorded_has(dc, tok, T0));
        snprintf(tok, sizeof(tok), "vote_lock:%d:%d", i + 1, i % 5);
        assert_false(recorded_has(dc, tok, T0));
    }
    recorded_free(dc);
}

/* 16 slots: 12 tokens a generation; the latest 12 are always kept. */
static void test_bounded_keeps_recent(void **state)
{
    struct recorded *dc = recorded_new(16, 1 << 20, WINDOW);
    char tok[64];

    (void)state;
    for (int i = 0; i < 100; i++) {
        snprintf(tok, sizeof(tok), "vote_lock:%d:1", i);
        recorded_add(dc, tok, T0);
        assert_true(recorded_count(dc) <= 24);
        for (int j = i; j >= 0 && j > i - 12; j--) {
            snprintf(tok, sizeof(tok), "vote_lock:%d:1", j);
            assert_true(recorded_has(dc, tok, T0));
        }
    }
    assert_false(recorded_has(dc, "vote_lock:0:1", T0));
    recorded_free(dc);
}

/* The byte pool bounds memory too: long tokens rotate a generation early. */
static void test_pool_bound(void **state)
{
    struct recorded *dc = recorded_new(1024, 64, WINDOW);
    char tok[64], big[100];

    (void)state;
    for (int i = 0; i < 50; i++) {
        snprintf(tok, sizeof(tok), "vote_lock:%020d:1", i); /* 33 bytes: one per generation */
        recorded_add(dc, tok, T0);
        assert_true(recorded_has(dc, tok, T0));
        assert_true(recorded_count(dc) <= 2);
    }
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    recorded_add(dc, big, T0); /* larger than the pool: not kept, not an error */
    assert_false(recorded_has(dc, big, T0));
    recorded_free(dc);
}

static void test_window(void **state)
{
    struct recorded *dc = recorded_new(64, 4096, WINDOW);

    (void)state;
    recorded_add(dc, "vote_lock:1:1", T0);
    assert_true(recorded_has(dc, "vote_lock:1:1", T0 + WINDOW / 2));
    recorded_add(dc, "vote_lock:2:1", T0 + WINDOW / 2);
    assert_true(recorded_has(dc, "vote_lock:1:1", T0 + WINDOW - 1));
    assert_false(recorded_has(dc, "vote_lock:1:1", T0 + WINDOW));
    assert_true(recorded_has(dc, "vote_lock:2:1", T0 + WINDOW));
    assert_false(recorded_has(dc, "vote_lock:2:1", T0 + 3 * WINDOW / 2));
    /* A long idle gap drops everything at once. */
    recorded_add(dc, "vote_lock:3:1", T0 + 2 * WINDOW);
    assert_false(recorded_has(dc, "vote_lock:3:1", T0 + 10 * WINDOW));
    assert_int_equal(recorded_count(dc), 0);
    recorded_free(dc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_match),
        cmocka_unit_test(test_no_false_done),
        cmocka_unit_test(test_bounded_keeps_recent),
        cmocka_unit_test(test_pool_bound),
        cmocka_unit_test(test_window),
    };
    return cmocka_run_group_tests_name("recorded", tests, NULL, NULL);
}
