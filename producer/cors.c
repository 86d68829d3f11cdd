/*
 * cors.c - the configured origins and the verdict on a request's Origin.
 * See cors.h.
 */
#include "cors.h"
#include "config.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* scheme://host[:port], http or https, host of [A-Za-z0-9.-] or [v6], nothing after. */
static int origin_valid(const char *o)
{
    static const char *const schemes[] = {"http://", "https://"};
    const char *p = NULL, *end;
    int64_t port;

    for (size_t i = 0; i < UTIL_ARRAY_LEN(schemes); i++)
        if (strncasecmp(o, schemes[i], strlen(schemes[i])) == 0)
            p = o + strlen(schemes[i]);
    if (!p || !*p)
        return 0;
    if (*p == '[') {
        end = strchr(p, ']');
        if (!end || end == p + 1)
            return 0;
        for (const char *c = p + 1; c < end; c++)
            if (!strchr("0123456789abcdefABCDEF:.", *c))
                return 0;
        p = end + 1;
    } else {
        const char *h = p;
        while (*p &&
               (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-", *p)))
            p++;
        if (p == h)
            return 0;
    }
    if (*p == ':')
        return util_parse_i64(p + 1, &port) == 0 && port >= 1 && port <= 65535;
    return *p == '\0';
}

int cors_parse(struct cors *c, const struct config_list *origins, int64_t max_age_s, char *errstr,
               size_t errsize)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->max_age, sizeof(c->max_age), "%" PRId64, max_age_s);
    if (!origins || origins->n == 0)
        return 0;
    c->origin = xcalloc(origins->n, sizeof(*c->origin));
    for (size_t i = 0; i < origins->n; i++) {
        const char *o = origins->items[i];
        if (strcmp(o, "*") == 0) {
            c->any = 1;
        } else if (!origin_valid(o)) {
            snprintf(errstr, errsize,
                     "--cors-origin \"%s\" is not an origin: scheme://host[:port] with http or "
                     "https and no path, or *",
                     o);
            cors_free(c);
            return -1;
        }
        c->origin[c->n++] = xstrdup(o);
    }
    return 0;
}

int cors_enabled(const struct cors *c)
{
    return c->n > 0;
}

int cors_public_origin(struct cors *c, const char *origin, char *errstr, size_t errsize)
{
    free(c->public_origin);
    c->public_origin = NULL;
    if (!origin || !*origin)
        return 0;
    if (!origin_valid(origin)) {
        snprintf(errstr, errsize,
                 "--public-origin \"%s\" is not an origin: scheme://host[:port] with http or "
                 "https and no path",
                 origin);
        return -1;
    }
    c->public_origin = xstrdup(origin);
    return 0;
}

/*
 * The page came from us. With --public-origin, only that origin is ours
 * (Host is the client's word: a DNS-rebound name sends its own). Without
 * it, the Origin is http (we serve no TLS: an https page is not ours) and
 * its host[:port] is the Host header.
 */
static int own_origin(const struct cors *c, const char *origin, const char *host)
{
    static const char scheme[] = "http://";

    if (c->public_origin)
        return strcasecmp(origin, c->public_origin) == 0;
    return host && *host && strncasecmp(origin, scheme, sizeof(scheme) - 1) == 0 &&
           strcasecmp(origin + sizeof(scheme) - 1, host) == 0;
}

enum cors_verdict cors_check(const struct cors *c, const char *origin, const char *host)
{
    if (!cors_enabled(c) || !origin)
        return CORS_NONE;
    for (size_t i = 0; i < c->n; i++)
        if (strcasecmp(c->origin[i], origin) == 0)
            return CORS_ALLOWED;
    if (c->any)
        return CORS_ALLOWED;
    return own_origin(c, origin, host) ? CORS_NONE : CORS_REFUSED;
}

const char *cors_allow_origin(const struct cors *c, const char *origin)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcasecmp(c->origin[i], origin) == 0)
            return origin;
    return "*";
}

void cors_free(struct cors *c)
{
    for (size_t i = 0; i < c->n; i++)
        free(c->origin[i]);
    free(c->origin);
    c->origin = NULL;
    free(c->public_origin);
    c->public_origin = NULL;
    c->n = 0;
    c->any = 0;
}
