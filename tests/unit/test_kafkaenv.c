/*
 * test_kafkaenv.c - librdkafka settings from the environment: the name
 * mapping, precedence (-X on the command line wins), unknown names skipped,
 * bad values refused without echoing the value (it may be a secret).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>

#include "config.h"
#include "kafkaenv.h"

static void test_names(void **state)
{
    static const struct {
        const char *var, *key; /* key NULL: not a setting */
    } rows[] = {
        {"TADAK_KAFKA_SASL_PASSWORD=x", "sasl.password"},
        {"TADAK_KAFKA_SSL_CA_LOCATION=/etc/ca.pem", "ssl.ca.location"},
        {"TADAK_KAFKA_LINGER_MS=1", "linger.ms"},
        {"TADAK_KAFKA_=x", NULL},
        {"TADAK_KAFKA_X", NULL}, /* no '=' */
        {"TADAK_KAFKA__A=1", NULL},
        {"TADAK_KAFKA_A__B=1", NULL},
        {"TADAK_KAFKA_a=1", NULL},
        {"KAFKA_BOOTSTRAP_SERVERS=h:1", NULL},
        {"TADAK_TOPIC=votes", NULL},
        {"XTADAK_KAFKA_LINGER_MS=1", NULL},
    };
    char key[128];

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        int rc = kafkaenv_key(rows[i].var, key, sizeof(key));
        if (rc != (rows[i].key != NULL))
            fail_msg("%s: rc %d", rows[i].var, rc);
        if (rows[i].key)
            assert_string_equal(key, rows[i].key);
    }
    assert_int_equal(kafkaenv_key("TADAK_KAFKA_SASL_PASSWORD=x", key, 8), 0); /* too long */
}

static void get(rd_kafka_conf_t *conf, const char *key, char *buf, size_t size)
{
    assert_int_equal(rd_kafka_conf_get(conf, key, buf, &size), RD_KAFKA_CONF_OK);
}

static void test_apply(void **state)
{
    char e0[] = "TADAK_KAFKA_SASL_USERNAME=alice", e1[] = "TADAK_KAFKA_SASL_PASSWORD=s3cret",
         e2[] = "TADAK_KAFKA_LINGER_MS=7", e3[] = "TADAK_KAFKA_PORT=19092", /* the stack's */
        e4[] = "TADAK_KAFKA_CLIENT_ID=from-env", e5[] = "PATH=/bin";
    char *envp[] = {e0, e1, e2, e3, e4, e5, NULL};
    char k0[] = "client.id", v0[] = "from-flag";
    char *keys[] = {k0}, *vals[] = {v0};
    struct config_kv extra = {1, keys, vals};
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256], buf[128];

    (void)state;
    assert_int_equal(kafkaenv_apply(conf, envp, &extra, err, sizeof(err)), 3);
    get(conf, "sasl.username", buf, sizeof(buf));
    assert_string_equal(buf, "alice");
    get(conf, "sasl.password", buf, sizeof(buf));
    assert_string_equal(buf, "s3cret");
    get(conf, "linger.ms", buf, sizeof(buf));
    assert_string_equal(buf, "7");
    /* -X client.id=... was given: the environment does not touch it (it is applied after). */
    get(conf, "client.id", buf, sizeof(buf));
    assert_string_equal(buf, "rdkafka");
    rd_kafka_conf_destroy(conf);
}

static void test_bad_value_is_refused_quietly(void **state)
{
    char e0[] = "TADAK_KAFKA_LINGER_MS=hunter2";
    char *envp[] = {e0, NULL};
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];

    (void)state;
    assert_int_equal(kafkaenv_apply(conf, envp, NULL, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "TADAK_KAFKA_LINGER_MS"));
    assert_non_null(strstr(err, "linger.ms"));
    assert_null(strstr(err, "hunter2"));
    rd_kafka_conf_destroy(conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_apply),
        cmocka_unit_test(test_bad_value_is_refused_quietly),
    };
    return cmocka_run_group_tests_name("kafkaenv", tests, NULL, NULL);
}
