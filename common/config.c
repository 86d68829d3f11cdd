/*
 * config.c - table-driven settings: defaults, environment, flags, --help.
 * See config.h for the table format and precedence, sharedopts.h for the
 * rows both programs share.
 */
#include "config.h"
#include "log.h"
#include "util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int is_string(enum config_type t)
{
    return t == CONFIG_STR || t == CONFIG_URL || t == CONFIG_FILE || t == CONFIG_ADDR ||
           t == CONFIG_NAME;
}

static void *field(void *dst, const struct config_opt *o)
{
    return (char *)dst + o->offset;
}

static int kv_add(struct config_kv *kv, const char *text, char *errstr, size_t errsize)
{
    const char *eq = strchr(text, '=');
    size_t klen;

    if (!eq || eq == text) {
        snprintf(errstr, errsize, "expected key=value, got \"%s\"", text);
        return -1;
    }
    klen = (size_t)(eq - text);
    kv->keys = xrealloc(kv->keys, (kv->n + 1) * sizeof(*kv->keys));
    kv->vals = xrealloc(kv->vals, (kv->n + 1) * sizeof(*kv->vals));
    kv->keys[kv->n] = xmalloc(klen + 1);
    memcpy(kv->keys[kv->n], text, klen);
    kv->keys[kv->n][klen] = '\0';
    kv->vals[kv->n] = xstrdup(eq + 1);
    kv->n++;
    return 0;
}

/* One flag adds one item; the environment (or default) adds each comma-separated one. */
static int list_add(struct config_list *l, const char *text, int from_flag, char *errstr,
                    size_t errsize)
{
    if (from_flag && !l->from_flags) {
        for (size_t i = 0; i < l->n; i++)
            free(l->items[i]);
        l->n = 0;
        l->from_flags = 1;
    }
    for (const char *p = text;;) {
        const char *end = from_flag ? p + strlen(p) : strchr(p, ',');
        size_t n;

        if (!end)
            end = p + strlen(p);
        while (p < end && (*p == ' ' || *p == '\t'))
            p++;
        n = (size_t)(end - p);
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == 0 && (from_flag || *end == ',')) {
            snprintf(errstr, errsize, "an empty item in \"%s\"", text);
            return -1;
        }
        if (n > 0) {
            l->items = xrealloc(l->items, (l->n + 1) * sizeof(*l->items));
            l->items[l->n] = xmalloc(n + 1);
            memcpy(l->items[l->n], p, n);
            l->items[l->n][n] = '\0';
            l->n++;
        }
        if (*end != ',')
            return 0;
        p = end + 1;
    }
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off", ""};

    for (size_t i = 0; i < UTIL_ARRAY_LEN(yes); i++)
        if (strcasecmp(s, yes[i]) == 0)
            return *out = 1, 0;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(no); i++)
        if (strcasecmp(s, no[i]) == 0)
            return *out = 0, 0;
    return -1;
}

/* Store one textual value into its field, checking type and range. */
static int set_value(const struct config_opt *o, void *dst, const char *val, const char *origin,
                     char *errstr, size_t errsize)
{
    char why[160];
    int64_t v;

    switch (o->type) {
    case CONFIG_STR:
    case CONFIG_URL:
    case CONFIG_FILE:
    case CONFIG_ADDR:
    case CONFIG_NAME:
        *(const char **)field(dst, o) = val;
        return 0;
    case CONFIG_INT:
        if (util_parse_i64(val, &v) != 0) {
            snprintf(errstr, errsize, "%s %s: \"%s\" is not an integer", origin, o->name, val);
            return -1;
        }
        if (v < o->min || v > o->max) {
            snprintf(errstr, errsize, "%s %s: %lld is out of range [%lld, %lld]", origin, o->name,
                     (long long)v, (long long)o->min, (long long)o->max);
            return -1;
        }
        *(int64_t *)field(dst, o) = v;
        return 0;
    case CONFIG_BOOL:
        if (parse_bool(val, (int *)field(dst, o)) != 0) {
            snprintf(errstr, errsize, "%s %s: \"%s\" is not a boolean", origin, o->name, val);
            return -1;
        }
        return 0;
    case CONFIG_KV:
        return kv_add((struct config_kv *)field(dst, o), val, errstr, errsize);
    case CONFIG_LIST:
        if (list_add((struct config_list *)field(dst, o), val, strcmp(origin, "option") == 0, why,
                     sizeof(why)) == 0)
            return 0;
        snprintf(errstr, errsize, "%s %s: %s", origin, o->name, why);
        return -1;
    case CONFIG_LOG_LEVEL:
        if (log_parse_level(val, (enum log_level *)field(dst, o)) != 0) {
            snprintf(errstr, errsize,
                     "%s %s: unknown log level \"%s\" (error, warn, info or debug)", origin,
                     o->name, val);
            return -1;
        }
        return 0;
    }
    return -1;
}

static const struct config_opt *find_long(const struct config_opt *t, const char *name, size_t len)
{
    for (; t->name; t++)
        if (strlen(t->name) == len && strncmp(t->name, name, len) == 0)
            return t;
    return NULL;
}

/*
 * The option a mistyped long name most likely meant: the one the name is the
 * start of (at least 3 bytes, one such option), else the closest within one
 * edit per three bytes typed (at most two; ties: none). NULL when none is.
 */
static const struct config_opt *suggest_long(const struct config_opt *t, const char *name,
                                             size_t len)
{
    const struct config_opt *best = NULL, *prefixed = NULL;
    size_t limit = len / 3 > 2 ? 2 : len / 3, best_d = 64, d;
    int nprefixed = 0, tie = 0;

    if (limit < 1)
        limit = 1;
    for (; t->name; t++) {
        if (len >= 3 && strncmp(t->name, name, len) == 0) {
            prefixed = t;
            nprefixed++;
        }
        d = util_edit_distance(name, len, t->name, strlen(t->name));
        if (d < best_d) {
            best = t, best_d = d, tie = 0;
        } else if (d == best_d) {
            tie = 1;
        }
    }
    if (nprefixed == 1)
        return prefixed;
    return best && best_d <= limit && !tie ? best : NULL;
}

static const struct config_opt *find_short(const struct config_opt *t, char c)
{
    for (; t->name; t++)
        if (t->short_name && t->short_name == c)
            return t;
    return NULL;
}

/* Every field to its default, then what the environment sets: the command line comes last. */
static int load_defaults_and_env(const struct config_opt *table, void *dst, char *errstr,
                                 size_t errsize)
{
    const struct config_opt *o;

    for (o = table; o->name; o++) {
        if (o->type == CONFIG_KV)
            memset(field(dst, o), 0, sizeof(struct config_kv));
        if (o->type == CONFIG_LIST)
            memset(field(dst, o), 0, sizeof(struct config_list));
        if (o->def && set_value(o, dst, o->def, "default", errstr, errsize) != 0)
            return -1;
        if (!o->def && is_string(o->type))
            *(const char **)field(dst, o) = NULL;
    }
    for (o = table; o->name; o++) {
        const char *ev = o->env ? getenv(o->env) : NULL;
        if (ev && *ev && set_value(o, dst, ev, o->env, errstr, errsize) != 0)
            return -1;
    }
    return 0;
}

/*
 * The flag argv[*i] ("--name", "--name=value", "-c", "-cvalue") and its value
 * into dst; *i moves past a value taken from the next argument. 0 or -1.
 */
static int load_flag(const struct config_opt *table, void *dst, int argc, char **argv, int *i,
                     char *errstr, size_t errsize)
{
    const char *a = argv[*i], *val = NULL, *eq;
    const struct config_opt *o;
    size_t len = 0;

    if (a[1] == '-') {
        eq = strchr(a + 2, '=');
        len = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        o = find_long(table, a + 2, len);
        if (eq)
            val = eq + 1;
    } else {
        o = find_short(table, a[1]);
        if (a[2] != '\0')
            val = a + 2; /* -Xkey=value */
    }
    if (!o) {
        const struct config_opt *meant = a[1] == '-' ? suggest_long(table, a + 2, len) : NULL;
        if (meant)
            snprintf(errstr, errsize, "unknown option %s (did you mean --%s? try --help)", a,
                     meant->name);
        else
            snprintf(errstr, errsize, "unknown option %s (try --help)", a);
        return -1;
    }
    if (o->type == CONFIG_BOOL && !val) {
        *(int *)field(dst, o) = 1;
        return 0;
    }
    if (!val) {
        if (*i + 1 >= argc) {
            snprintf(errstr, errsize, "option %s needs a value", a);
            return -1;
        }
        val = argv[++*i];
    }
    return set_value(o, dst, val, "option", errstr, errsize);
}

int config_load(const struct config_opt *table, void *dst, int argc, char **argv, char **pos,
                int *npos, char *errstr, size_t errsize)
{
    int only_pos = 0;

    *npos = 0;
    if (load_defaults_and_env(table, dst, errstr, errsize) != 0)
        return -1;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];

        if (only_pos || a[0] != '-' || a[1] == '\0') {
            pos[(*npos)++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return 1;
        if (load_flag(table, dst, argc, argv, &i, errstr, errsize) != 0)
            return -1;
    }
    return 0;
}

void config_usage(FILE *out, const struct config_opt *table, const char *synopsis)
{
    static const char *const metavar[] = {
        [CONFIG_STR] = "TEXT",     [CONFIG_INT] = "N",          [CONFIG_BOOL] = "",
        [CONFIG_KV] = "KEY=VALUE", [CONFIG_LOG_LEVEL] = "TEXT", [CONFIG_LIST] = "TEXT",
        [CONFIG_URL] = "URL",      [CONFIG_FILE] = "FILE",      [CONFIG_ADDR] = "HOST:PORT",
        [CONFIG_NAME] = "NAME"};

    fprintf(out, "%s\n\nOptions:\n", synopsis);
    for (const struct config_opt *o = table; o->name; o++) {
        char flag[64];
        if (o->short_name)
            snprintf(flag, sizeof(flag), "-%c, --%s %s", o->short_name, o->name, metavar[o->type]);
        else
            snprintf(flag, sizeof(flag), "    --%s %s", o->name, metavar[o->type]);
        fprintf(out, "  %-30s %s", flag, o->help);
        if (o->env)
            fprintf(out, " [env %s]", o->env);
        /* A flag that is off by default needs no "(default 0)". */
        if (o->def && *o->def && !(o->type == CONFIG_BOOL && strcmp(o->def, "0") == 0))
            fprintf(out, " (default %s)", o->def);
        fputc('\n', out);
    }
    fprintf(out, "  %-30s %s\n", "-h, --help", "Show this help and exit");
}

void config_free(const struct config_opt *table, void *dst)
{
    for (const struct config_opt *o = table; o->name; o++) {
        if (o->type == CONFIG_LIST) {
            struct config_list *l = field(dst, o);
            for (size_t i = 0; i < l->n; i++)
                free(l->items[i]);
            free(l->items);
            memset(l, 0, sizeof(*l));
            continue;
        }
        if (o->type != CONFIG_KV)
            continue;
        struct config_kv *kv = field(dst, o);
        for (size_t i = 0; i < kv->n; i++) {
            free(kv->keys[i]);
            free(kv->vals[i]);
        }
        free(kv->keys);
        free(kv->vals);
        memset(kv, 0, sizeof(*kv));
    }
}

int config_split_hostport(const char *s, char *host, size_t hostsize, int *port)
{
    const char *colon = strrchr(s, ':');
    int64_t p;

    if (!colon || (size_t)(colon - s) >= hostsize || util_parse_i64(colon + 1, &p) != 0 || p < 0 ||
        p > 65535)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    *port = (int)p;
    return 0;
}

int config_parse_listen(const char *hostport, const char *what, struct sockaddr_in *sa,
                        char *errstr, size_t errsize)
{
    char host[256];
    int port;

    if (config_split_hostport(hostport, host, sizeof(host), &port) != 0) {
        snprintf(errstr, errsize, "%s address \"%s\" is not HOST:PORT", what, hostport);
        return -1;
    }
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0)
        util_strlcpy(host, "127.0.0.1", sizeof(host));
    if (inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &sa->sin_addr) != 1) {
        snprintf(errstr, errsize, "%s host \"%s\" is not an IPv4 address", what, host);
        return -1;
    }
    return 0;
}
