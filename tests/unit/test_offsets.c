/*
 * test_offsets.c - a partition's stored offset only moves past settled
 * messages, and only while they are contiguous in delivery order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "offsets.h"

/* An offsets table that owns partitions 0..7 (as if the group assigned them). */
static struct offsets *owning(void)
{
    struct offsets *o = offsets_new();
    for (int32_t part = 0; part < 8; part++)
        offsets_assign(o, part);
    return o;
}

/* The offset offsets_take() reports, or -1 when it did not move. */
static int64_t take(struct offsets *o, int32_t part)
{
    int64_t next = -2;
    return offsets_take(o, part, &next) ? next : -1;
}

static void test_contiguous_settle(void **state)
{
    struct offsets *o = owning();

    (void)state;
    assert_int_equal(take(o, 0), -1);
    for (int64_t off = 10; off < 13; off++)
        assert_int_equal(offsets_track(o, 0, off), 0);
    offsets_settle(o, 0, 10);
    assert_int_equal(take(o, 0), 11);
    assert_int_equal(take(o, 0), -1); /* nothing new since */
    offsets_settle(o, 0, 11);
    offsets_settle(o, 0, 12);
    assert_int_equal(take(o, 0), 13);
    assert_int_equal(offsets_pending(o, 0), 0);
    offsets_free(o);
}

static void test_out_of_order_settle(void **state)
{
    struct offsets *o = offsets_new();

    (void)state;
    assert_int_equal(offsets_partition_count(o), 0);
    offsets_assign(o, 3);
    for (int64_t off = 0; off < 5; off++)
        offsets_track(o, 3, off);
    assert_int_equal(offsets_partition_count(o), 4); /* 0..3 to visit, 0..2 empty */
    offsets_settle(o, 3, 4);
    offsets_settle(o, 3, 2);
    offsets_settle(o, 3, 1);
    assert_int_equal(take(o, 3), -1); /* 0 is still open */
    assert_int_equal(offsets_pending(o, 3), 5);
    offsets_settle(o, 3, 0);
    assert_int_equal(take(o, 3), 3); /* 0,1,2 settled; 3 is not */
    offsets_settle(o, 3, 3);
    assert_int_equal(take(o, 3), 5);
    offsets_free(o);
}

static void test_blocked_message_blocks_only_its_partition(void **state)
{
    struct offsets *o = owning();

    (void)state;
    /* Partition 1, offset 7 waits on another consumer's lock. */
    offsets_track(o, 1, 7);
    offsets_track(o, 1, 8);
    offsets_track(o, 2, 7);
    offsets_track(o, 2, 8);
    offsets_settle(o, 1, 8);
    offsets_settle(o, 2, 7);
    offsets_settle(o, 2, 8);
    assert_int_equal(take(o, 1), -1);
    assert_int_equal(take(o, 2), 9);
    for (int64_t off = 9; off < 200; off++) {
        offsets_track(o, 1, off);
        offsets_settle(o, 1, off);
    }
    assert_int_equal(take(o, 1), -1); /* still blocked, however much follows */
    offsets_settle(o, 1, 7);
    assert_int_equal(take(o, 1), 200);
    offsets_free(o);
}

static void test_gaps_in_offsets(void **state)
{
    struct offsets *o = owning();

    (void)state;
    /* Compaction or transaction markers: offsets are not consecutive. */
    offsets_track(o, 0, 100);
    offsets_track(o, 0, 105);
    offsets_track(o, 0, 230);
    offsets_settle(o, 0, 105);
    offsets_settle(o, 0, 100);
    assert_int_equal(take(o, 0), 106);
    offsets_settle(o, 0, 999); /* never tracked: ignored */
    assert_int_equal(take(o, 0), -1);
    offsets_settle(o, 0, 230);
    assert_int_equal(take(o, 0), 231);
    offsets_free(o);
}

static void test_redelivery_is_refused(void **state)
{
    struct offsets *o = owning();

    (void)state;
    assert_int_equal(offsets_track(o, 0, 5), 0);
    assert_int_equal(offsets_track(o, 0, 5), -1);
    assert_int_equal(offsets_track(o, 0, 4), -1);
    assert_int_equal(offsets_track(o, 0, 6), 0);
    assert_int_equal(offsets_track(o, -1, 0), -1);
    offsets_free(o);
}

static void test_revoke_forgets_the_partition(void **state)
{
    struct offsets *o = owning();

    (void)state;
    offsets_track(o, 4, 50);
    offsets_track(o, 4, 51);
    offsets_settle(o, 4, 51);
    offsets_revoke(o, 4);
    assert_int_equal(offsets_pending(o, 4), 0);
    offsets_settle(o, 4, 50); /* a late settle of a revoked message changes nothing */
    assert_int_equal(take(o, 4), -1);
    /* Not ours now: a message of it polled late is refused. */
    assert_int_equal(offsets_track(o, 4, 52), -1);
    /* Assigned again later: it may restart at any offset, even an earlier one. */
    offsets_assign(o, 4);
    assert_int_equal(offsets_track(o, 4, 50), 0);
    offsets_settle(o, 4, 50);
    assert_int_equal(take(o, 4), 51);
    assert_int_equal(take(o, 17), -1); /* never seen */
    offsets_free(o);
}

/*
 * librdkafka 2.0.2's batch API can return messages of a partition after its
 * revoke callback ran. Tracked, they made the same messages fetched again
 * after a reassignment look "delivered again" (refused), and the late
 * copies' settles moved the offset past messages never read.
 */
static void test_late_message_of_a_revoked_partition_skips_nothing(void **state)
{
    struct offsets *o = offsets_new();
    int64_t off;

    (void)state;
    assert_int_equal(offsets_track(o, 0, 1), -1); /* never assigned */
    offsets_assign(o, 0);
    for (off = 100; off < 150; off++) {
        assert_int_equal(offsets_track(o, 0, off), 0);
        offsets_settle(o, 0, off);
    }
    assert_int_equal(take(o, 0), 150); /* committed at the revoke */
    offsets_revoke(o, 0);
    for (off = 150; off < 200; off++) /* polled before the revoke, returned after it */
        assert_int_equal(offsets_track(o, 0, off), -1);
    offsets_assign(o, 0);
    for (off = 150; off < 200; off++) /* fetched again from the committed offset */
        assert_int_equal(offsets_track(o, 0, off), 0);
    assert_int_equal(offsets_pending(o, 0), 50);
    for (off = 150; off < 200; off++)
        offsets_settle(o, 0, off);
    assert_int_equal(take(o, 0), 200);
    offsets_free(o);
}

/* An assignment resets what an earlier one of the same partition left behind. */
static void test_assign_starts_the_partition_afresh(void **state)
{
    struct offsets *o = offsets_new();

    (void)state;
    offsets_assign(o, 2);
    assert_int_equal(offsets_track(o, 2, 500), 0);
    offsets_assign(o, 2); /* a new assignment without a revoke seen (a lost one) */
    assert_int_equal(offsets_pending(o, 2), 0);
    assert_int_equal(offsets_track(o, 2, 400), 0);
    offsets_settle(o, 2, 400);
    assert_int_equal(take(o, 2), 401);
    offsets_free(o);
}

static void test_ring_grows_across_wraparound(void **state)
{
    struct offsets *o = owning();
    int64_t next = 0;

    (void)state;
    /* Keep a sliding window open so head and tail wrap, then grow past it. */
    for (int64_t off = 0; off < 1000; off++) {
        offsets_track(o, 0, off);
        if (off >= 40)
            offsets_settle(o, 0, off - 40);
    }
    assert_int_equal(take(o, 0), 960);
    for (int64_t off = 1000; off < 5000; off++)
        offsets_track(o, 0, off);
    assert_int_equal(offsets_pending(o, 0), 4040);
    for (int64_t off = 4999; off >= 960; off--)
        offsets_settle(o, 0, off);
    assert_true(offsets_take(o, 0, &next));
    assert_int_equal(next, 5000);
    offsets_free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contiguous_settle),
        cmocka_unit_test(test_out_of_order_settle),
        cmocka_unit_test(test_blocked_message_blocks_only_its_partition),
        cmocka_unit_test(test_gaps_in_offsets),
        cmocka_unit_test(test_redelivery_is_refused),
        cmocka_unit_test(test_revoke_forgets_the_partition),
        cmocka_unit_test(test_ring_grows_across_wraparound),
        cmocka_unit_test(test_late_message_of_a_revoked_partition_skips_nothing),
        cmocka_unit_test(test_assign_starts_the_partition_afresh),
    };
    return cmocka_run_group_tests_name("offsets", tests, NULL, NULL);
}
