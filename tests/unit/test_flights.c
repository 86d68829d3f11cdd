/*
 * test_flights.c - the INSERTs in flight: the fill's rows go to an idle
 * flight without copying, the flight sent longest ago is read first, and
 * --inserts-in-flight out of range means one.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "event.h"
#include "flights.h"
#include "util.h"

/* Put one row with this token in the fill and send it to an idle flight. */
static struct batch *launch(struct flights *f, const char *token)
{
    struct batch *fill = flights_fill(f), *b = flights_idle(f);
    static struct event evs[8];
    static size_t next;
    struct event *ev = &evs[next++ % 8];

    assert_non_null(b);
    event_init(ev, evtype_vote(), NULL);
    util_strlcpy(ev->token, token, sizeof(ev->token));
    fill->rows[fill->n++] = (struct store_row){.ev = ev};
    flights_launch(f, b);
    assert_int_equal(fill->n, 0);
    return b;
}

static void test_out_of_range_is_one(void **state)
{
    struct flights *f = flights_new(3, NULL, "postgresql://x", 0);

    (void)state;
    assert_int_equal(flights_count(f), 1);
    flights_free(f);
    f = flights_new(0, NULL, "postgresql://x", 0);
    assert_int_equal(flights_count(f), 1);
    flights_reserve(f, 4);
    launch(f, "a");
    assert_null(flights_idle(f)); /* the only one is busy */
    flights_free(f);
}

static void test_oldest_first(void **state)
{
    struct flights *f = flights_new(2, NULL, "postgresql://x", 0);
    struct batch *first, *second;

    (void)state;
    flights_reserve(f, 4);
    assert_null(flights_oldest(f));
    first = launch(f, "a");
    second = launch(f, "b");
    assert_ptr_not_equal(first, second);
    assert_null(flights_idle(f));
    assert_ptr_equal(flights_oldest(f), first);
    assert_string_equal(first->rows[0].ev->token, "a");
    assert_string_equal(second->rows[0].ev->token, "b");
    assert_true(first->sent < second->sent);
    assert_non_null(second->store); /* the second flight has a connection of its own */
    first->n = 0;                   /* its result was read */
    assert_ptr_equal(flights_oldest(f), second);
    assert_ptr_equal(flights_idle(f), first);
    first = launch(f, "c"); /* now the newest */
    assert_ptr_equal(flights_oldest(f), second);
    flights_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_out_of_range_is_one),
        cmocka_unit_test(test_oldest_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
