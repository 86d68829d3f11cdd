/*
 * test_idem.c - Idempotency-Key values and the decision a stored value leads
 * to: replay, in progress, or a key reused with another body.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "idem.h"

static void test_hash(void **state)
{
    char a[IDEM_HASH_HEX], b[IDEM_HASH_HEX], c[IDEM_HASH_HEX];

    (void)state;
    /* FNV-1a 64 reference values. */
    assert_true(idem_hash("", 0) == 0xcbf29ce484222325ULL);
    assert_true(idem_hash("a", 1) == 0xaf63dc4c8601ec8cULL);
    assert_true(idem_hash("foobar", 6) == 0x85944171f73967e8ULL);
    idem_hash_hex("{\"user_id\":1,\"candidate_id\":2}", 30, a);
    idem_hash_hex("{\"user_id\":1,\"candidate_id\":2}", 30, b);
    idem_hash_hex("{\"user_id\":1,\"candidate_id\":3}", 30, c);
    assert_int_equal(strlen(a), 16);
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    idem_hash_hex(NULL, 0, c);
    assert_string_equal(c, "cbf29ce484222325");
}

static void test_values(void **state)
{
    char buf[256], small[20];

    (void)state;
    assert_true(idem_inflight_value("00112233445566ff", "e-1", buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "inflight 00112233445566ff e-1");
    assert_true(
        idem_done_value("00112233445566ff", "{\"status\":\"accepted\"}\n", buf, sizeof(buf)) > 0);
    assert_string_equal(buf, "done 00112233445566ff {\"status\":\"accepted\"}\n");
    assert_int_equal(idem_done_value("00112233445566ff", "{\"a\":1}", small, sizeof(small)), -1);
}

static void test_decide(void **state)
{
    static const char hex[] = "00112233445566ff";
    static const struct {
        const char *old;
        enum idem_verdict want;
        const char *body;
    } rows[] = {
        {"done 00112233445566ff {\"event_id\":\"x\"}\n", IDEM_REPLAY, "{\"event_id\":\"x\"}\n"},
        {"done 00112233445566fe {\"event_id\":\"x\"}", IDEM_MISMATCH, NULL},
        {"done 00112233445566ff ", IDEM_MISMATCH, NULL}, /* no stored body: never replay "" */
        {"done 00112233445566ff", IDEM_MISMATCH, NULL},
        {"inflight 00112233445566ff e-1", IDEM_IN_PROGRESS, NULL},
        {"inflight 00112233445566ee e-1", IDEM_MISMATCH, NULL},
        {"inflight 0011", IDEM_MISMATCH, NULL},
        {"donex 00112233445566ff {}", IDEM_MISMATCH, NULL},
        {"P owner e-1", IDEM_MISMATCH, NULL},
        {"", IDEM_MISMATCH, NULL},
    };
    const char *body;
    size_t len;

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        assert_int_equal(idem_decide(rows[i].old, hex, &body, &len), rows[i].want);
        if (rows[i].body) {
            assert_non_null(body);
            assert_string_equal(body, rows[i].body);
            assert_int_equal(len, strlen(rows[i].body));
        } else {
            assert_null(body);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_decide),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
