/*
 * kafka.c - see kafka.h.
 */
#include "kafka.h"
#include "kafkaenv.h"
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h> /* environ */

static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    /* syslog levels: 0-3 error, 4 warning, 5-6 info, 7 debug */
    enum log_level l = level <= 3   ? LOG_ERROR
                       : level == 4 ? LOG_WARN
                       : level <= 6 ? LOG_INFO
                                    : LOG_DEBUG;
    log_at(l, "librdkafka", "facility=%s detail=\"%s\"", fac, buf);
}

rd_kafka_conf_t *kafka_conf_new(const char *bootstrap, char *errstr, size_t errsize)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();

    rd_kafka_conf_set_log_cb(conf, kafka_log_cb);
    if (kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr, errsize) != 0 ||
        kafka_conf_set(conf, "client.id", "tadak", errstr, errsize) != 0) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    return conf;
}

int kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *val, char *errstr,
                   size_t errsize)
{
    char why[512];

    if (rd_kafka_conf_set(conf, key, val, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        snprintf(errstr, errsize, "kafka setting %s: %s", key, why);
        return -1;
    }
    return 0;
}

int kafka_conf_apply(rd_kafka_conf_t *conf, const struct config_kv *extra, char *errstr,
                     size_t errsize)
{
    /* TADAK_KAFKA_* first (secrets off the command line), then -X, which wins. */
    if (kafkaenv_apply(conf, environ, extra, errstr, errsize) < 0)
        return -1;
    for (size_t i = 0; extra && i < extra->n; i++)
        if (kafka_conf_set(conf, extra->keys[i], extra->vals[i], errstr, errsize) != 0)
            return -1;
    return 0;
}

rd_kafka_t *kafka_new(rd_kafka_type_t type, rd_kafka_conf_t **conf, const char *what, char *errstr,
                      size_t errsize)
{
    char why[512];
    rd_kafka_t *rk = rd_kafka_new(type, *conf, why, sizeof(why));

    if (!rk) {
        snprintf(errstr, errsize, "cannot create the %s: %s", what, why);
        return NULL;
    }
    *conf = NULL; /* now owned by rk */
    return rk;
}

const char *kafka_reach_hint(const char *brokers)
{
    if (strcmp(brokers, KAFKA_DEFAULT_BROKERS) == 0)
        return "--brokers or KAFKA_BOOTSTRAP_SERVERS; that is the built-in default: for the "
               "local stack run eval \"$(scripts/stack env)\" first";
    return "--brokers or KAFKA_BOOTSTRAP_SERVERS";
}

int kafka_err_is_outage(int err)
{
    return err == RD_KAFKA_RESP_ERR__TRANSPORT || err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN ||
           err == RD_KAFKA_RESP_ERR__RESOLVE;
}
