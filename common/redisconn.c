/*
 * redisconn.c - one Redis connection, its setup and its reconnect policy.
 * See redisconn.h.
 */
#include "redisconn.h"
#include "log.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

struct redisconn {
    char host[256];
    int port, db;
    char password[256];
    char purpose[96];
    int connect_ms, command_ms;
    redisconn_setup_fn on_connect;
    void *on_connect_arg;

    redisContext *c;
    int down;         /* an outage was logged and has not ended yet */
    int64_t next_try; /* no reconnect before this (monotonic ms) */
};

int redisconn_parse_url(const char *url, char *host, size_t hostsize, int *port, int *db,
                        char *password, size_t pwsize, char *errstr, size_t errsize)
{
    static const char scheme[] = "redis://";
    const char *p, *at, *end, *colon, *slash;
    char num[32];
    int64_t v;

    *port = 6379;
    *db = 0;
    password[0] = '\0';
    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0)
        goto bad;
    p = url + sizeof(scheme) - 1;
    slash = strchr(p, '/');
    end = slash ? slash : p + strlen(p);
    at = memchr(p, '@', (size_t)(end - p));
    if (at) {
        const char *pc = memchr(p, ':', (size_t)(at - p));
        if (pc) {
            size_t n = (size_t)(at - pc - 1);
            if (n >= pwsize)
                goto bad;
            memcpy(password, pc + 1, n);
            password[n] = '\0';
        }
        p = at + 1;
    }
    colon = memchr(p, ':', (size_t)(end - p));
    if ((size_t)((colon ? colon : end) - p) >= hostsize || (colon ? colon : end) == p)
        goto bad;
    memcpy(host, p, (size_t)((colon ? colon : end) - p));
    host[(colon ? colon : end) - p] = '\0';
    if (colon) {
        size_t n = (size_t)(end - colon - 1);
        if (n == 0 || n >= sizeof(num))
            goto bad;
        memcpy(num, colon + 1, n);
        num[n] = '\0';
        if (util_parse_i64(num, &v) != 0 || v < 1 || v > 65535)
            goto bad;
        *port = (int)v;
    }
    if (slash && slash[1] != '\0') {
        if (util_parse_i64(slash + 1, &v) != 0 || v < 0 || v > 65535)
            goto bad;
        *db = (int)v;
    }
    return 0;
bad:
    /* Never echo the URL: it may hold the password. */
    snprintf(errstr, errsize,
             "bad Redis URL (expected redis://[[user]:password@]host[:port][/db])");
    return -1;
}

struct redisconn *redisconn_new(const char *url, const char *purpose, int connect_ms,
                                int command_ms, char *errstr, size_t errsize)
{
    struct redisconn *rc = xcalloc(1, sizeof(*rc));

    if (redisconn_parse_url(url, rc->host, sizeof(rc->host), &rc->port, &rc->db, rc->password,
                            sizeof(rc->password), errstr, errsize) != 0) {
        free(rc);
        return NULL;
    }
    util_strlcpy(rc->purpose, purpose ? purpose : "", sizeof(rc->purpose));
    rc->connect_ms = connect_ms;
    rc->command_ms = command_ms;
    return rc;
}

void redisconn_free(struct redisconn *rc)
{
    if (!rc)
        return;
    if (rc->c)
        redisFree(rc->c);
    free(rc);
}

static void close_and_back_off(struct redisconn *rc)
{
    if (rc->c)
        redisFree(rc->c);
    rc->c = NULL;
    rc->next_try = util_now_ms() + REDISCONN_RETRY_MS;
}

void redisconn_drop(struct redisconn *rc, const char *why)
{
    if (!rc->down)
        log_warn("redis unavailable", "for=\"%s\" host=%s port=%d error=\"%s\"", rc->purpose,
                 rc->host, rc->port, why);
    rc->down = 1;
    close_and_back_off(rc);
}

void redisconn_on_connect(struct redisconn *rc, redisconn_setup_fn fn, void *arg)
{
    rc->on_connect = fn;
    rc->on_connect_arg = arg;
}

int redisconn_is_down(const struct redisconn *rc)
{
    return rc->down;
}

const char *redisconn_host(const struct redisconn *rc)
{
    return rc->host;
}

int redisconn_port(const struct redisconn *rc)
{
    return rc->port;
}

/* Run a setup command; 0 when it answered without an error. */
static int setup(struct redisconn *rc, redisReply *r, const char *what, char *why, size_t whysize)
{
    int ok = r && r->type != REDIS_REPLY_ERROR;

    if (!r)
        snprintf(why, whysize, "%s: %s", what, rc->c->errstr);
    else if (!ok)
        snprintf(why, whysize, "%s: %s", what, r->str);
    if (r)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

redisContext *redisconn_get(struct redisconn *rc)
{
    struct timeval ct = {rc->connect_ms / 1000, (rc->connect_ms % 1000) * 1000};
    struct timeval cmd = {rc->command_ms / 1000, (rc->command_ms % 1000) * 1000};
    char why[256] = "";
    int setup_rc;

    if (rc->c)
        return rc->c;
    if (util_now_ms() < rc->next_try)
        return NULL;
    rc->c = redisConnectWithTimeout(rc->host, rc->port, ct);
    if (!rc->c || rc->c->err) {
        snprintf(why, sizeof(why), "%s", rc->c ? rc->c->errstr : "cannot allocate a context");
        goto fail;
    }
    if (redisSetTimeout(rc->c, cmd) != REDIS_OK) {
        snprintf(why, sizeof(why), "cannot set the command timeout");
        goto fail;
    }
    if (rc->password[0] &&
        setup(rc, redisCommand(rc->c, "AUTH %s", rc->password), "AUTH", why, sizeof(why)) != 0)
        goto fail;
    if (rc->db &&
        setup(rc, redisCommand(rc->c, "SELECT %d", rc->db), "SELECT", why, sizeof(why)) != 0)
        goto fail;
    if (rc->on_connect &&
        (setup_rc = rc->on_connect(rc->c, rc->on_connect_arg, why, sizeof(why)))) {
        if (setup_rc < 0)
            goto fail;
        rc->down = 1; /* quietly: the caller logged its reason */
        close_and_back_off(rc);
        return NULL;
    }
    if (rc->down)
        log_info("redis reachable again", "for=\"%s\" host=%s port=%d", rc->purpose, rc->host,
                 rc->port);
    rc->down = 0;
    return rc->c;
fail:
    redisconn_drop(rc, why);
    return NULL;
}

redisReply *redisconn_vcommand(struct redisconn *rc, char *errstr, size_t errsize, const char *fmt,
                               va_list ap)
{
    redisContext *c = redisconn_get(rc);
    redisReply *r;

    if (!c) {
        snprintf(errstr, errsize, "redis %s:%d is unreachable; retrying", rc->host, rc->port);
        return NULL;
    }
    r = redisvCommand(c, fmt, ap);
    if (!r) {
        snprintf(errstr, errsize, "redis %s:%d: %s", rc->host, rc->port,
                 c->errstr[0] ? c->errstr : "no reply");
        redisconn_drop(rc, errstr);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errsize, "redis %s:%d: %s", rc->host, rc->port, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

redisReply *redisconn_command(struct redisconn *rc, char *errstr, size_t errsize, const char *fmt,
                              ...)
{
    redisReply *r;
    va_list ap;

    va_start(ap, fmt);
    r = redisconn_vcommand(rc, errstr, errsize, fmt, ap);
    va_end(ap);
    return r;
}
