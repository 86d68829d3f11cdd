/*
 * test_redisconn.c - Redis URL parsing, the one parser every Redis user in
 * tadak goes through. No Redis needed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "redisconn.h"

static void test_parse_url(void **state)
{
    char host[64], pw[64], err[256];
    int port, db;

    (void)state;
    assert_int_equal(redisconn_parse_url("redis://127.0.0.1:16379/3", host, sizeof(host), &port,
                                         &db, pw, sizeof(pw), err, sizeof(err)),
                     0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 16379);
    assert_int_equal(db, 3);
    assert_string_equal(pw, "");

    assert_int_equal(redisconn_parse_url("redis://cache", host, sizeof(host), &port, &db, pw,
                                         sizeof(pw), err, sizeof(err)),
                     0);
    assert_string_equal(host, "cache");
    assert_int_equal(port, 6379);
    assert_int_equal(db, 0);

    assert_int_equal(redisconn_parse_url("redis://:s3cret@h:1/", host, sizeof(host), &port, &db, pw,
                                         sizeof(pw), err, sizeof(err)),
                     0);
    assert_string_equal(host, "h");
    assert_int_equal(port, 1);
    assert_string_equal(pw, "s3cret");

    static const char *const bad[] = {"http://h:1/0",   "redis://",        "redis://:6379",
                                      "redis://h:0",    "redis://h:70000", "redis://h:x/0",
                                      "redis://h:1/db", "h:6379",          "redis://h:/0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(redisconn_parse_url(bad[i], host, sizeof(host), &port, &db, pw, sizeof(pw),
                                             err, sizeof(err)),
                         -1);
        assert_non_null(strstr(err, "Redis URL"));
    }
    /* A bad URL with a password in it: the error does not repeat it. */
    assert_int_equal(redisconn_parse_url("redis://:s3cret@h:x/0", host, sizeof(host), &port, &db,
                                         pw, sizeof(pw), err, sizeof(err)),
                     -1);
    assert_null(strstr(err, "s3cret"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_url),
    };
    return cmocka_run_group_tests_name("redisconn", tests, NULL, NULL);
}
