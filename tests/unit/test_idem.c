/*
 * test_idem.c - Idempotency-Key values and the decision a stored value leads
 * to: replay, in progress, or a key reused with another body; and the
 * workers without a Redis: a claim is answered (failed) through done(), one
 * past its deadline is not sent, a stopped handle refuses claims at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <time.h>

#include "idem.h"
#include "util.h"

static void test_hash(void **state)
{
    char a[IDEM_HASH_HEX], b[IDEM_HASH_HEX], c[IDEM_HASH_HEX];

    (void)state;
    /* SHA-256 (FIPS 180-2) reference values: a fingerprint nobody can collide on purpose. */
    idem_hash_hex(NULL, 0, a);
    assert_string_equal(a, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    idem_hash_hex("abc", 3, a);
    assert_string_equal(a, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    idem_hash_hex("{\"user_id\":1,\"candidate_id\":2}", 30, a);
    idem_hash_hex("{\"user_id\":1,\"candidate_id\":2}", 30, b);
    idem_hash_hex("{\"user_id\":1,\"candidate_id\":3}", 30, c);
    assert_int_equal(strlen(a), 64);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
}

static void test_values(void **state)
{
    static const char h[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    char buf[256], small[20], want[256];

    (void)state;
    assert_true(idem_inflight_value(h, "e-1", buf, sizeof(buf)) > 0);
    snprintf(want, sizeof(want), "inflight %s e-1", h);
    assert_string_equal(buf, want);
    assert_true(idem_accepted_value(h, "{\"status\":\"accepted\"}\n", buf, sizeof(buf)) > 0);
    snprintf(want, sizeof(want), "done %s {\"status\":\"accepted\"}\n", h);
    assert_string_equal(buf, want);
    assert_int_equal(idem_accepted_value(h, "{\"a\":1}", small, sizeof(small)), -1);
}

static void test_decide(void **state)
{
#define H  "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
#define H2 "00112233445566778899aabbccddeeff00112233445566778899aabbccddeefe"
    static const struct {
        const char *old;
        enum idem_verdict want;
        const char *body;
    } rows[] = {
        {"done " H " {\"event_id\":\"x\"}\n", IDEM_REPLAY, "{\"event_id\":\"x\"}\n"},
        {"done " H2 " {\"event_id\":\"x\"}", IDEM_MISMATCH, NULL},
        {"done " H " ", IDEM_MISMATCH, NULL}, /* no stored body: never replay "" */
        {"done " H, IDEM_MISMATCH, NULL},
        {"inflight " H " e-1", IDEM_IN_PROGRESS, NULL},
        {"inflight " H2 " e-1", IDEM_MISMATCH, NULL},
        {"inflight 0011", IDEM_MISMATCH, NULL},
        {"donex " H " {}", IDEM_MISMATCH, NULL},
        {"P owner e-1", IDEM_MISMATCH, NULL},
        {"", IDEM_MISMATCH, NULL},
        /* A SHA-256 value is never matched by its first 16 digits. */
        {"done 0011223344556677 {\"event_id\":\"y\"}", IDEM_MISMATCH, NULL},
    };
    const char *body;
    size_t len;

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        if (idem_decide(rows[i].old, H, &body, &len) != rows[i].want)
            fail_msg("row %zu: %s", i, rows[i].old);
        if (rows[i].body) {
            assert_non_null(body);
            assert_string_equal(body, rows[i].body);
            assert_int_equal(len, strlen(rows[i].body));
        } else {
            assert_null(body);
        }
    }
#undef H
#undef H2
}

/* ---- the workers, without a Redis: what a claim is answered when none answers ---- */

struct answered {
    struct idem_claim c;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int calls, give_up;
};

static int on_done(struct idem_claim *c)
{
    struct answered *a = (struct answered *)c;
    int give_up;

    pthread_mutex_lock(&a->lock);
    a->calls++;
    give_up = a->give_up;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->lock);
    return give_up;
}

/* Until done() was called (a deadline: a worker that never answers fails the test). */
static void wait_done(struct answered *a)
{
    int64_t deadline = util_now_ms() + 10000;

    pthread_mutex_lock(&a->lock);
    while (a->calls == 0 && util_now_ms() < deadline) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000000L;
        if (ts.tv_nsec >= 1000000000L)
            ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&a->cond, &a->lock, &ts);
    }
    pthread_mutex_unlock(&a->lock);
    assert_int_equal(a->calls, 1);
}

static void answered_init(struct answered *a, const char *key, int64_t deadline_ms)
{
    memset(a, 0, sizeof(*a));
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->cond, NULL);
    a->c.done = on_done;
    a->c.key = key;
    a->c.value = "inflight 00 e";
    a->c.ttl_ms = 1000;
    a->c.deadline_ms = deadline_ms;
}

static void answered_destroy(struct answered *a)
{
    pthread_mutex_destroy(&a->lock);
    pthread_cond_destroy(&a->cond);
}

static void test_workers_without_redis(void **state)
{
    char err[256];
    /* Port 1: nothing listens, a connect is refused at once. */
    struct idem *im = idem_new("redis://127.0.0.1:1/0", "t:", 200, err, sizeof(err));
    struct answered a, late, after;

    (void)state;
    assert_non_null(im);
    /* Redis unreachable: answered, failed, with hiredis' reason for the log. */
    answered_init(&a, "a:k1", util_now_ms() + 5000);
    assert_int_equal(idem_claim(im, &a.c), 0);
    wait_done(&a);
    assert_true(a.c.failed && !a.c.existed && !a.c.shutting_down);
    assert_true(a.c.why[0] != '\0');
    /* A claim whose deadline passed before a worker took it is not sent. */
    answered_init(&late, "a:k2", util_now_ms() - 1);
    late.give_up = 1;
    assert_int_equal(idem_claim(im, &late.c), 0);
    wait_done(&late);
    assert_true(late.c.failed);
    assert_non_null(strstr(late.c.why, "deadline"));
    /* Settles and releases are queued and forgotten: nothing to wait for. */
    idem_settle(im, "a:k1", "inflight 00 e", "done 00 {}", 60000);
    idem_release(im, "a:k2", "inflight 00 e");
    idem_stop(im);
    /* Stopped: a claim is refused at once, never queued. */
    answered_init(&after, "a:k3", util_now_ms() + 5000);
    assert_int_equal(idem_claim(im, &after.c), -1);
    assert_int_equal(after.calls, 0);
    idem_free(im);
    answered_destroy(&a);
    answered_destroy(&late);
    answered_destroy(&after);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_workers_without_redis),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
