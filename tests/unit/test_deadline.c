/*
 * test_deadline.c - the deadline list behind the HTTP timer: entries come
 * out earliest first, also when one was added with an earlier time than the
 * tail (two callers' clocks crossed); a removed entry never comes out; an
 * entry added again moves; nothing is due before its time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "deadline.h"

static void test_earliest_first_when_clocks_cross(void **state)
{
    struct deadline_list l = {0};
    struct deadline a = {0}, b = {0}, c = {0}, d = {0};

    (void)state;
    deadline_add(&l, &a, 100);
    deadline_add(&l, &b, 300);
    deadline_add(&l, &c, 200); /* earlier than the tail: walks back to its place */
    deadline_add(&l, &d, 50);  /* earlier than all: the new head */
    assert_int_equal(deadline_next(&l), 50);
    assert_ptr_equal(deadline_due(&l, 1000), &d);
    assert_ptr_equal(deadline_due(&l, 1000), &a);
    assert_ptr_equal(deadline_due(&l, 1000), &c);
    assert_ptr_equal(deadline_due(&l, 1000), &b);
    assert_null(deadline_due(&l, 1000));
    assert_int_equal(deadline_next(&l), INT64_MAX);
}

static void test_nothing_due_before_its_time(void **state)
{
    struct deadline_list l = {0};
    struct deadline a = {0};

    (void)state;
    deadline_add(&l, &a, 100);
    assert_null(deadline_due(&l, 99));
    assert_true(a.listed);
    assert_ptr_equal(deadline_due(&l, 100), &a);
    assert_false(a.listed);
}

static void test_removed_never_due_and_readded_moves(void **state)
{
    struct deadline_list l = {0};
    struct deadline a = {0}, b = {0}, c = {0};

    (void)state;
    deadline_add(&l, &a, 100);
    deadline_add(&l, &b, 200);
    deadline_add(&l, &c, 300);
    deadline_remove(&l, &b);
    deadline_remove(&l, &b);   /* not listed any more: nothing */
    deadline_add(&l, &a, 400); /* moved behind c */
    assert_ptr_equal(deadline_due(&l, 1000), &c);
    assert_ptr_equal(deadline_due(&l, 1000), &a);
    assert_null(deadline_due(&l, 1000));
    assert_null(l.head);
    assert_null(l.tail);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_earliest_first_when_clocks_cross),
        cmocka_unit_test(test_nothing_due_before_its_time),
        cmocka_unit_test(test_removed_never_due_and_readded_moves),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
