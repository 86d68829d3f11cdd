/*
 * kafkaenv.c - TADAK_KAFKA_* environment variables as librdkafka settings.
 * See kafkaenv.h.
 */
#include "kafkaenv.h"
#include "log.h"

#include <stdio.h>
#include <string.h>

int kafkaenv_key(const char *var, char *key, size_t keysize)
{
    static const size_t plen = sizeof(KAFKAENV_PREFIX) - 1;
    const char *eq = strchr(var, '='), *name = var + plen;
    size_t n;

    if (strncmp(var, KAFKAENV_PREFIX, plen) != 0 || !eq || eq == name)
        return 0;
    n = (size_t)(eq - name);
    if (n >= keysize || name[0] == '_' || name[n - 1] == '_')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (c == '_') {
            if (name[i + 1] == '_')
                return 0;
            key[i] = '.';
        } else if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) {
            key[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
        } else {
            return 0;
        }
    }
    key[n] = '\0';
    return 1;
}

static int given_with_x(const struct config_kv *extra, const char *key)
{
    for (size_t i = 0; extra && i < extra->n; i++)
        if (strcmp(extra->keys[i], key) == 0)
            return 1;
    return 0;
}

int kafkaenv_apply(rd_kafka_conf_t *conf, char **envp, const struct config_kv *extra, char *errstr,
                   size_t errsize)
{
    int applied = 0;

    for (char **e = envp; e && *e; e++) {
        char key[128], why[512], name[160];
        const char *eq = strchr(*e, '=');

        if (!kafkaenv_key(*e, key, sizeof(key)) || given_with_x(extra, key))
            continue;
        snprintf(name, sizeof(name), "%.*s", (int)(eq - *e), *e);
        switch (rd_kafka_conf_set(conf, key, eq + 1, why, sizeof(why))) {
        case RD_KAFKA_CONF_OK:
            applied++;
            break;
        case RD_KAFKA_CONF_UNKNOWN:
            /* The prefix is shared with scripts/stack's TADAK_KAFKA_PORT and _BROKERS. */
            log_debug("environment variable is no librdkafka setting; ignored",
                      "variable=%s key=%s", name, key);
            break;
        default: /* librdkafka's text quotes the value, which may be a secret */
            snprintf(errstr, errsize, "environment %s: invalid value for the kafka setting %s",
                     name, key);
            return -1;
        }
    }
    return applied;
}
