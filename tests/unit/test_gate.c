/*
 * test_gate.c - the gate's decision table (SET ... NX GET reply -> action),
 * and the owner -> alive-key id rule. No Redis needed: both are pure
 * functions.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gate.h"

#define OWNER "host:42:abcd1234"

static enum gate_action decide(const char *old)
{
    return gate_decide(old, old ? strlen(old) : 0, OWNER);
}

static void test_nil_means_we_took_the_lock(void **state)
{
    (void)state;
    assert_int_equal(gate_decide(NULL, 0, OWNER), GATE_OURS);
}

static void test_done_marker_is_a_duplicate(void **state)
{
    (void)state;
    assert_int_equal(decide("1"), GATE_DUPLICATE); /* what gate_mark_done writes */
    assert_int_equal(decide("D"), GATE_DUPLICATE); /* what earlier versions wrote */
}

static void test_lock_of_another_owner_is_busy(void **state)
{
    (void)state;
    assert_int_equal(decide("P other-owner x"), GATE_BUSY);
    assert_int_equal(decide("P otherhost:42:abcd1234 e"), GATE_BUSY);
    /* Our owner as a mere prefix of another one is someone else. */
    assert_int_equal(decide("P " OWNER "5 e"), GATE_BUSY);
    assert_int_equal(decide("P host:42:abcd123 e"), GATE_BUSY);
    assert_int_equal(decide("P "), GATE_BUSY);
}

static void test_our_own_lock_is_ours(void **state)
{
    (void)state;
    assert_int_equal(decide("P " OWNER " 3000e370-2202-5a5c-8e6f-874e518ef9a8"), GATE_OURS);
    assert_int_equal(decide("P " OWNER), GATE_OURS);
}

static void test_foreign_values_go_to_postgresql(void **state)
{
    (void)state;
    assert_int_equal(decide(""), GATE_OPEN);
    assert_int_equal(decide("P"), GATE_OPEN);
    assert_int_equal(decide("DONE"), GATE_OPEN);
    /* "D <event_id>", a marker no deployment holds any more, is not one the gate reads. */
    assert_int_equal(decide("D 3000e370-2202-5a5c-8e6f-874e518ef9a8"), GATE_OPEN);
    assert_int_equal(decide("D x"), GATE_OPEN);
    assert_int_equal(decide("p " OWNER " e"), GATE_OPEN);
}

static void test_length_is_respected(void **state)
{
    /* Replies are binary: only len bytes count, no NUL is assumed. */
    const char buf[] = "P " OWNER "XYZ";
    (void)state;
    assert_int_equal(gate_decide(buf, strlen("P " OWNER), OWNER), GATE_OURS);
    /* "1" alone is the done marker; "12" is not. "D" alone is the old marker; "Dx" is not. */
    assert_int_equal(gate_decide("1 xyz", 1, OWNER), GATE_DUPLICATE);
    assert_int_equal(decide("12"), GATE_OPEN);
    assert_int_equal(decide("0"), GATE_OPEN);
    assert_int_equal(gate_decide("D xyz", 1, OWNER), GATE_DUPLICATE);
    assert_int_equal(gate_decide("Dxyz", 2, OWNER), GATE_OPEN);
}

static size_t owner_id(const char *owner)
{
    return gate_owner_id(owner, strlen(owner));
}

static void test_owner_id_is_the_instance_id(void **state)
{
    (void)state;
    assert_int_equal(owner_id("inst-a@host:1:abcd1234"), strlen("inst-a"));
    assert_int_equal(owner_id("pod-7.web_1@node-3.example:4242:0f0f0f0f"), strlen("pod-7.web_1"));
    /* The last '@' counts: everything after it is host:pid:random. */
    assert_int_equal(owner_id("a@b@host:1:abcd1234"), strlen("a@b"));
    assert_int_equal(owner_id("@host:1:abcd1234"), 0);
}

static void test_owner_without_instance_id_is_its_own_id(void **state)
{
    (void)state;
    assert_int_equal(owner_id(OWNER), strlen(OWNER));
    assert_int_equal(owner_id("deadhost:1:abcd1234"), strlen("deadhost:1:abcd1234"));
    assert_int_equal(owner_id("other-owner"), strlen("other-owner"));
    assert_int_equal(owner_id(""), 0);
}

static void test_owner_id_respects_length(void **state)
{
    /* The owner is a slice of a lock value: only len bytes count. */
    const char value[] = "inst@host:1:abcd1234 3000e370-2202-5a5c-8e6f-874e518ef9a8@x";
    (void)state;
    assert_int_equal(gate_owner_id(value, strlen("inst@host:1:abcd1234")), strlen("inst"));
    assert_int_equal(gate_owner_id("host:1:x@y", strlen("host:1:x")), strlen("host:1:x"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nil_means_we_took_the_lock),
        cmocka_unit_test(test_done_marker_is_a_duplicate),
        cmocka_unit_test(test_lock_of_another_owner_is_busy),
        cmocka_unit_test(test_our_own_lock_is_ours),
        cmocka_unit_test(test_foreign_values_go_to_postgresql),
        cmocka_unit_test(test_length_is_respected),
        cmocka_unit_test(test_owner_id_is_the_instance_id),
        cmocka_unit_test(test_owner_without_instance_id_is_its_own_id),
        cmocka_unit_test(test_owner_id_respects_length),
    };
    return cmocka_run_group_tests_name("gate", tests, NULL, NULL);
}
