/*
 * test_guard.c - the request deadline: a connection whose request has not
 * fully arrived in time is shut down (its peer reads end of file); one being
 * served has no deadline; one back to waiting gets a fresh one; one MHD
 * closed is never touched again (its descriptor may be someone else's).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "guard.h"

#define T 1000 /* the deadline, ms */

struct pair {
    int ours, peer;
};

static struct pair open_pair(void)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    return (struct pair){sv[0], sv[1]};
}

/* 1 when our end was shut down: the peer reads end of file at once. */
static int was_shut(struct pair p)
{
    char c;
    return recv(p.peer, &c, 1, MSG_DONTWAIT) == 0;
}

static void close_pair(struct pair p)
{
    close(p.ours);
    close(p.peer);
}

static void test_deadline(void **state)
{
    struct guard *g = guard_new(T);
    struct pair a = open_pair(), b = open_pair();
    struct guard_conn *ca, *cb;
    int64_t next;

    (void)state;
    ca = guard_open(g, a.ours, 100);
    cb = guard_open(g, b.ours, 600);
    assert_int_equal(guard_reap(g, 100 + T - 1, &next), 0);
    assert_int_equal(next, 100 + T);
    assert_false(was_shut(a));
    assert_int_equal(guard_reap(g, 100 + T, &next), 1);
    assert_true(was_shut(a));
    assert_false(was_shut(b));
    assert_int_equal(next, 600 + T);
    assert_int_equal(guard_reap(g, 600 + T, &next), 1);
    assert_true(was_shut(b));
    assert_int_equal(next, INT64_MAX);
    /* A connection shut down for being late is not armed again by its end. */
    guard_idle(g, ca, 5000);
    assert_int_equal(guard_reap(g, 5000 + T, &next), 0);
    guard_close(g, ca);
    guard_close(g, cb);
    assert_int_equal(guard_count(g), 0);
    guard_free(g);
    close_pair(a);
    close_pair(b);
}

static void test_busy_and_idle(void **state)
{
    struct guard *g = guard_new(T);
    struct pair a = open_pair();
    struct guard_conn *c;
    int64_t next;

    (void)state;
    c = guard_open(g, a.ours, 0);
    guard_busy(g, c); /* the request arrived: it is being served, however long */
    assert_int_equal(guard_reap(g, 10 * T, &next), 0);
    assert_false(was_shut(a));
    guard_idle(g, c, 10 * T); /* answered: the next request is due in T */
    assert_int_equal(guard_reap(g, 11 * T - 1, &next), 0);
    assert_int_equal(next, 11 * T);
    assert_int_equal(guard_reap(g, 11 * T, &next), 1);
    assert_true(was_shut(a));
    guard_close(g, c);
    guard_free(g);
    close_pair(a);
}

static void test_closed_is_forgotten(void **state)
{
    struct guard *g = guard_new(T);
    struct pair a = open_pair(), b = open_pair();
    struct guard_conn *ca, *cb;
    int64_t next;

    (void)state;
    ca = guard_open(g, a.ours, 0);
    cb = guard_open(g, b.ours, 0);
    assert_int_equal(guard_count(g), 2);
    guard_close(g, ca);
    assert_int_equal(guard_count(g), 1);
    assert_int_equal(guard_reap(g, T, &next), 1);
    assert_false(was_shut(a));
    assert_true(was_shut(b));
    guard_close(g, cb);
    guard_close(g, NULL); /* MHD may close what it never reported open */
    guard_free(g);
    close_pair(a);
    close_pair(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_busy_and_idle),
        cmocka_unit_test(test_closed_is_forgotten),
    };
    return cmocka_run_group_tests_name("guard", tests, NULL, NULL);
}
