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
    struct redisconn_url u;
    char err[256];

    (void)state;
    assert_int_equal(redisconn_parse_url("redis://127.0.0.1:16379/3", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 16379);
    assert_int_equal(u.db, 3);
    assert_string_equal(u.password, "");
    assert_int_equal(u.tls, 0);

    assert_int_equal(redisconn_parse_url("redis://cache", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "cache");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);

    assert_int_equal(redisconn_parse_url("redis://:s3cret@h:1/", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "h");
    assert_int_equal(u.port, 1);
    assert_string_equal(u.password, "s3cret");
    assert_string_equal(u.user, "");

    /* An ACL user: AUTH user password. */
    assert_int_equal(redisconn_parse_url("redis://app:pw@h:2/1", &u, err, sizeof(err)), 0);
    assert_string_equal(u.user, "app");
    assert_string_equal(u.password, "pw");

    static const char *const bad[] = {"http://h:1/0",   "redis://",        "redis://:6379",
                                      "redis://h:0",    "redis://h:70000", "redis://h:x/0",
                                      "redis://h:1/db", "h:6379",          "redis://h:/0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(redisconn_parse_url(bad[i], &u, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "Redis URL"));
    }
    /* A bad URL with a password in it: the error does not repeat it. */
    assert_int_equal(redisconn_parse_url("redis://:s3cret@h:x/0", &u, err, sizeof(err)), -1);
    assert_null(strstr(err, "s3cret"));
}

/* rediss://: TLS on, its options from the query, checked before any connection. */
static void test_parse_tls_url(void **state)
{
    struct redisconn_url u;
    char err[256];

    (void)state;
    assert_int_equal(redisconn_parse_url("rediss://:pw@cache.example:6380/2", &u, err, sizeof(err)),
                     0);
    assert_int_equal(u.tls, 1);
    assert_string_equal(u.host, "cache.example");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 2);
    assert_string_equal(u.tls_ca, "");
    assert_string_equal(u.tls_server_name, "cache.example"); /* the host, by default */

    assert_int_equal(redisconn_parse_url("rediss://10.0.0.5:6380/0?tls_ca=/etc/ca.pem&tls_cert=/c."
                                         "pem&tls_key=/k.pem&tls_server_name=redis.internal",
                                         &u, err, sizeof(err)),
                     0);
    assert_string_equal(u.host, "10.0.0.5");
    assert_string_equal(u.tls_ca, "/etc/ca.pem");
    assert_string_equal(u.tls_cert, "/c.pem");
    assert_string_equal(u.tls_key, "/k.pem");
    assert_string_equal(u.tls_server_name, "redis.internal");

    /* A query without a db. */
    assert_int_equal(redisconn_parse_url("rediss://h?tls_ca=/x", &u, err, sizeof(err)), 0);
    assert_string_equal(u.host, "h");
    assert_string_equal(u.tls_ca, "/x");

    static const struct {
        const char *url, *says;
    } bad[] = {
        {"redis://h/0?tls_ca=/x", "need rediss://"},        /* no silent plaintext */
        {"rediss://h/0?tls_verify=0", "unknown parameter"}, /* no way to turn it off */
        {"rediss://h/0?tls_cert=/c.pem", "go together"},    /* a cert without its key */
        {"rediss://h/0?tls_ca=", "empty"},
        {"rediss://:s3cret@h/0?nope=1", "unknown parameter"}, /* and never the password */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(redisconn_parse_url(bad[i].url, &u, err, sizeof(err)), -1);
        if (!strstr(err, bad[i].says))
            fail_msg("%s: \"%s\" does not say \"%s\"", bad[i].url, err, bad[i].says);
        assert_null(strstr(err, "s3cret"));
    }
}

/* redis+sentinel://: the Sentinels to ask, in order, and the master's name. */
static void test_parse_sentinel_url(void **state)
{
    struct redisconn_url u;
    char err[256];

    (void)state;
    assert_int_equal(redisconn_parse_url("redis+sentinel://10.0.0.1:26379,s2:26380,s3/mymaster/2",
                                         &u, err, sizeof(err)),
                     0);
    assert_int_equal(u.nsentinels, 3);
    assert_string_equal(u.sentinels[0].host, "10.0.0.1");
    assert_int_equal(u.sentinels[0].port, 26379);
    assert_string_equal(u.sentinels[1].host, "s2");
    assert_int_equal(u.sentinels[1].port, 26380);
    assert_string_equal(u.sentinels[2].host, "s3");
    assert_int_equal(u.sentinels[2].port, 26379); /* Sentinel's default port */
    assert_string_equal(u.master, "mymaster");
    assert_int_equal(u.db, 2);
    assert_int_equal(u.tls, 0);
    /* Until a Sentinel answers, the data node is known by the master's name only. */
    assert_string_equal(u.host, "mymaster");
    assert_int_equal(u.port, 0);

    /* The password is the data node's; one Sentinel; no db. */
    assert_int_equal(redisconn_parse_url("redis+sentinel://app:pw@h:1/tadak", &u, err, sizeof(err)),
                     0);
    assert_int_equal(u.nsentinels, 1);
    assert_string_equal(u.user, "app");
    assert_string_equal(u.password, "pw");
    assert_string_equal(u.master, "tadak");
    assert_int_equal(u.db, 0);

    /* TLS to the Sentinels and the master; each node's name is its own address. */
    assert_int_equal(redisconn_parse_url("rediss+sentinel://a:1,b:2/tadak/0?tls_ca=/etc/ca.pem", &u,
                                         err, sizeof(err)),
                     0);
    assert_int_equal(u.tls, 1);
    assert_int_equal(u.nsentinels, 2);
    assert_string_equal(u.tls_ca, "/etc/ca.pem");
    assert_string_equal(u.tls_server_name, "");

    /* A plain URL has no Sentinels. */
    assert_int_equal(redisconn_parse_url("redis://h:1/0", &u, err, sizeof(err)), 0);
    assert_int_equal(u.nsentinels, 0);
}

static void test_parse_bad_sentinel_urls(void **state)
{
    struct redisconn_url u;
    char err[256];
    static const struct {
        const char *url, *says;
    } bad[] = {
        {"redis+sentinel://h:26379", "/MASTERNAME"},
        {"redis+sentinel://h:26379/", "/MASTERNAME"},
        {"redis+sentinel://h:26379//0", "/MASTERNAME"},
        {"redis+sentinel:///tadak", "Sentinel 1 has no host"},
        {"redis+sentinel://a:1,,b:2/tadak", "Sentinel 2 has no host"},
        {"redis+sentinel://a:1,b:0/tadak", "Sentinel 2's port"},
        {"redis+sentinel://a:x/tadak", "Sentinel 1's port"},
        {"redis+sentinel://a/tadak/db", "database"},
        {"redis+sentinel://a/tadak/0/1", "database"},
        {"redis+sentinel://a,b,c,d,e,f,g,h,i/tadak", "at most 8"},
        {"redis+sentinel://a/tadak/0?tls_ca=/x", "need rediss://"},
        {"rediss+sentinel://a/tadak/0?tls_cert=/c.pem", "go together"},
        {"redis+sentinel://:s3cret@a:x/tadak", "port"}, /* and never the password */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(redisconn_parse_url(bad[i].url, &u, err, sizeof(err)), -1);
        if (!strstr(err, bad[i].says) || !strstr(err, "Redis URL"))
            fail_msg("%s: \"%s\" does not say \"%s\"", bad[i].url, err, bad[i].says);
        assert_null(strstr(err, "s3cret"));
    }
}

/* A CA file that is not there stops the start, naming the host and the file. */
static void test_missing_ca_file_is_a_clear_error(void **state)
{
    char err[512];
    struct redisconn *rc;

    (void)state;
    rc = redisconn_new("rediss://:s3cret@cache.example:6380/0?tls_ca=/nonexistent/ca.pem", "test",
                       100, 100, err, sizeof(err));
    assert_null(rc);
    assert_non_null(strstr(err, "cache.example:6380"));
    assert_non_null(strstr(err, "/nonexistent/ca.pem"));
    assert_null(strstr(err, "s3cret"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_url),
        cmocka_unit_test(test_parse_tls_url),
        cmocka_unit_test(test_parse_sentinel_url),
        cmocka_unit_test(test_parse_bad_sentinel_urls),
        cmocka_unit_test(test_missing_ca_file_is_a_clear_error),
    };
    return cmocka_run_group_tests_name("redisconn", tests, NULL, NULL);
}
