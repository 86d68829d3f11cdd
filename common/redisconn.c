/*
 * redisconn.c - one Redis connection, its setup and its reconnect policy.
 * See redisconn.h.
 */
#include "redisconn.h"
#include "log.h"
#include "util.h"

#include <hiredis/hiredis_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

/* A TCP connection whose peer stopped acknowledging is given up after this. */
#define REDISCONN_TCP_USER_TIMEOUT_MS 10000
/* Connect and command timeout for one Sentinel: a dead one must not hold up the next. */
#define REDISCONN_SENTINEL_MS 500

struct redisconn {
    struct redisconn_url u;
    char purpose[96];
    int connect_ms, command_ms;
    redisconn_setup_fn on_connect;
    void *on_connect_arg;
    SSL_CTX *tls; /* rediss://: certificates checked against tls_ca or the system's */

    redisContext *c;
    int down;                      /* an outage was logged and has not ended yet */
    int64_t down_since, logged_at; /* when it began, its last log line (monotonic ms) */
    int64_t next_try;              /* no reconnect before this (monotonic ms) */
    char refused[1100];            /* the TLS peer was refused (not an outage): why */
};

/* The TLS options a rediss:// URL may carry in its query, and where each goes. */
static const struct {
    const char *key;
    size_t off, size;
} url_params[] = {
    {"tls_ca", offsetof(struct redisconn_url, tls_ca), sizeof(((struct redisconn_url *)0)->tls_ca)},
    {"tls_cert", offsetof(struct redisconn_url, tls_cert),
     sizeof(((struct redisconn_url *)0)->tls_cert)},
    {"tls_key", offsetof(struct redisconn_url, tls_key),
     sizeof(((struct redisconn_url *)0)->tls_key)},
    {"tls_server_name", offsetof(struct redisconn_url, tls_server_name),
     sizeof(((struct redisconn_url *)0)->tls_server_name)},
};

/* Copy [p, end) into dst (size bytes): -1 when empty-but-required or too long. */
static int copy_part(char *dst, size_t size, const char *p, const char *end, int may_be_empty)
{
    size_t n = (size_t)(end - p);

    if (n >= size || (n == 0 && !may_be_empty))
        return -1;
    memcpy(dst, p, n);
    dst[n] = '\0';
    return 0;
}

/* The query: key=value pairs joined by '&', each key one of url_params. */
static int parse_query(const char *q, struct redisconn_url *u, char *errstr, size_t errsize)
{
    while (*q) {
        const char *amp = strchr(q, '&'), *end = amp ? amp : q + strlen(q);
        const char *eq = memchr(q, '=', (size_t)(end - q));
        size_t i, klen = eq ? (size_t)(eq - q) : 0;

        for (i = 0; eq && i < UTIL_ARRAY_LEN(url_params); i++)
            if (strlen(url_params[i].key) == klen && memcmp(q, url_params[i].key, klen) == 0)
                break;
        if (!eq || i == UTIL_ARRAY_LEN(url_params)) {
            snprintf(errstr, errsize,
                     "bad Redis URL: unknown parameter \"%.*s\" (known: tls_ca, tls_cert, "
                     "tls_key, tls_server_name)",
                     (int)(eq                       ? klen
                           : (size_t)(end - q) > 40 ? 40
                                                    : (size_t)(end - q)),
                     q);
            return -1;
        }
        if (copy_part((char *)u + url_params[i].off, url_params[i].size, eq + 1, end, 0) != 0) {
            snprintf(errstr, errsize, "bad Redis URL: %s is empty or too long", url_params[i].key);
            return -1;
        }
        q = amp ? amp + 1 : end;
    }
    if (!u->tls && (u->tls_ca[0] || u->tls_cert[0] || u->tls_key[0] || u->tls_server_name[0])) {
        snprintf(errstr, errsize, "bad Redis URL: tls_* parameters need rediss://");
        return -1;
    }
    if (!u->tls_cert[0] != !u->tls_key[0]) {
        snprintf(errstr, errsize, "bad Redis URL: tls_cert and tls_key go together");
        return -1;
    }
    return 0;
}

/* A port in [p, end): 1-65535. */
static int parse_port(const char *p, const char *end, int *port)
{
    char num[32];
    int64_t v;

    if (copy_part(num, sizeof(num), p, end, 0) != 0 || util_parse_i64(num, &v) != 0 || v < 1 ||
        v > 65535)
        return -1;
    *port = (int)v;
    return 0;
}

/* An optional "[user]:password@" at p (before end): the URL after it. */
static const char *parse_userinfo(const char *p, const char *end, struct redisconn_url *u)
{
    const char *at = memchr(p, '@', (size_t)(end - p)), *pc;

    if (!at)
        return p;
    pc = memchr(p, ':', (size_t)(at - p));
    if (copy_part(u->user, sizeof(u->user), p, pc ? pc : at, 1) != 0 ||
        (pc && copy_part(u->password, sizeof(u->password), pc + 1, at, 1) != 0))
        return NULL;
    return at + 1;
}

/* A db number in [p, end): empty is 0. */
static int parse_db(const char *p, const char *end, int *db)
{
    char num[32];
    int64_t v;

    if (copy_part(num, sizeof(num), p, end, 1) != 0)
        return -1;
    if (num[0] && (util_parse_i64(num, &v) != 0 || v < 0 || v > 65535))
        return -1;
    *db = num[0] ? (int)v : 0;
    return 0;
}

/* redis[s]://[[user]:password@]host[:port][/db]: p is after the scheme. */
static int parse_direct(const char *p, const char *end, struct redisconn_url *u)
{
    const char *slash = memchr(p, '/', (size_t)(end - p)), *colon;

    if (slash) {
        if (parse_db(slash + 1, end, &u->db) != 0)
            return -1;
        end = slash;
    }
    if (!(p = parse_userinfo(p, end, u)))
        return -1;
    colon = memchr(p, ':', (size_t)(end - p));
    if (copy_part(u->host, sizeof(u->host), p, colon ? colon : end, 0) != 0)
        return -1;
    return colon ? parse_port(colon + 1, end, &u->port) : 0;
}

/* The comma-separated Sentinels in [p, end), each host[:port]. */
static int parse_sentinel_list(const char *p, const char *end, struct redisconn_url *u,
                               char *errstr, size_t errsize)
{
    while (1) {
        const char *comma = memchr(p, ',', (size_t)(end - p)), *e = comma ? comma : end;
        const char *colon = memchr(p, ':', (size_t)(e - p));
        struct redisconn_addr *a = &u->sentinels[u->nsentinels];

        if (u->nsentinels == REDISCONN_SENTINELS_MAX) {
            snprintf(errstr, errsize, "bad Redis URL: at most %d Sentinels",
                     REDISCONN_SENTINELS_MAX);
            return -1;
        }
        a->port = REDISCONN_SENTINEL_PORT;
        if (copy_part(a->host, sizeof(a->host), p, colon ? colon : e, 0) != 0) {
            snprintf(errstr, errsize, "bad Redis URL: Sentinel %d has no host (or a too long one)",
                     u->nsentinels + 1);
            return -1;
        }
        if (colon && parse_port(colon + 1, e, &a->port) != 0) {
            snprintf(errstr, errsize, "bad Redis URL: Sentinel %d's port must be 1-65535",
                     u->nsentinels + 1);
            return -1;
        }
        u->nsentinels++;
        if (!comma)
            return 0;
        p = comma + 1;
    }
}

/*
 * redis+sentinel://[[user]:password@]h1[:p1],h2[:p2],.../MASTER[/db]: p is
 * after the scheme. The user and password are the data node's; until a
 * Sentinel names the master, host is the master's name and port 0.
 */
static int parse_sentinel(const char *p, const char *end, struct redisconn_url *u, char *errstr,
                          size_t errsize)
{
    const char *slash = memchr(p, '/', (size_t)(end - p)), *name_end = NULL;

    if (slash && !(name_end = memchr(slash + 1, '/', (size_t)(end - slash - 1))))
        name_end = end;
    if (!slash || copy_part(u->master, sizeof(u->master), slash + 1, name_end, 0) != 0) {
        snprintf(errstr, errsize,
                 "bad Redis URL: redis+sentinel:// needs /MASTERNAME after the Sentinels "
                 "(redis+sentinel://host:port[,host:port...]/MASTERNAME[/db])");
        return -1;
    }
    if (name_end < end && parse_db(name_end + 1, end, &u->db) != 0) {
        snprintf(errstr, errsize, "bad Redis URL: the database after /%s must be 0-65535",
                 u->master);
        return -1;
    }
    if (!(p = parse_userinfo(p, slash, u))) {
        snprintf(errstr, errsize, "bad Redis URL: the user or password is too long");
        return -1;
    }
    if (parse_sentinel_list(p, slash, u, errstr, errsize) != 0)
        return -1;
    util_strlcpy(u->host, u->master, sizeof(u->host));
    u->port = 0;
    return 0;
}

int redisconn_parse_url(const char *url, struct redisconn_url *u, char *errstr, size_t errsize)
{
    const char *p, *query, *end;

    memset(u, 0, sizeof(*u));
    u->port = 6379;
    if (strncmp(url, "redis+sentinel://", 17) == 0 || strncmp(url, "rediss+sentinel://", 18) == 0) {
        u->tls = url[5] == 's';
        p = url + (u->tls ? 18 : 17);
        query = strchr(p, '?');
        end = query ? query : p + strlen(p);
        if (parse_sentinel(p, end, u, errstr, errsize) != 0)
            return -1;
    } else {
        if (strncmp(url, "redis://", 8) == 0) {
            p = url + 8;
        } else if (strncmp(url, "rediss://", 9) == 0) {
            p = url + 9;
            u->tls = 1;
        } else {
            goto bad;
        }
        query = strchr(p, '?');
        end = query ? query : p + strlen(p);
        if (parse_direct(p, end, u) != 0)
            goto bad;
    }
    if (query && parse_query(query + 1, u, errstr, errsize) != 0)
        return -1;
    if (u->tls && !u->nsentinels && !u->tls_server_name[0])
        util_strlcpy(u->tls_server_name, u->host, sizeof(u->tls_server_name));
    return 0;
bad:
    /* Never echo the URL: it may hold the password. */
    snprintf(errstr, errsize,
             "bad Redis URL (expected redis[s]://[[user]:password@]host[:port][/db][?tls_ca=FILE"
             "&tls_cert=FILE&tls_key=FILE&tls_server_name=NAME], or "
             "redis+sentinel://host:port[,host:port...]/MASTERNAME[/db])");
    return -1;
}

/* OpenSSL's first queued error, for a message. */
static const char *ssl_error(void)
{
    unsigned long e = ERR_get_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r ? r : "unknown error";
}

/*
 * The client side of rediss://: TLS 1.2 or newer, the peer's certificate
 * checked against tls_ca (or the system's CA store), optionally our own
 * certificate and key. The host name is checked per connection.
 */
static SSL_CTX *tls_new(const struct redisconn_url *u, char *errstr, size_t errsize)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (!ctx) {
        snprintf(errstr, errsize, "redis %s:%d: cannot create a TLS context: %s", u->host, u->port,
                 ssl_error());
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    if (u->tls_ca[0] ? SSL_CTX_load_verify_locations(ctx, u->tls_ca, NULL) != 1
                     : SSL_CTX_set_default_verify_paths(ctx) != 1) {
        snprintf(errstr, errsize, "redis %s:%d: cannot load the CA certificates %s: %s", u->host,
                 u->port, u->tls_ca[0] ? u->tls_ca : "(the system's)", ssl_error());
        goto fail;
    }
    if (u->tls_cert[0] && (SSL_CTX_use_certificate_chain_file(ctx, u->tls_cert) != 1 ||
                           SSL_CTX_use_PrivateKey_file(ctx, u->tls_key, SSL_FILETYPE_PEM) != 1 ||
                           SSL_CTX_check_private_key(ctx) != 1)) {
        snprintf(errstr, errsize,
                 "redis %s:%d: cannot use the client certificate %s and key %s: %s", u->host,
                 u->port, u->tls_cert, u->tls_key, ssl_error());
        goto fail;
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/*
 * The TLS handshake on a new connection c to host:port (the URL's host, a
 * Sentinel or the master one named): SNI, and the certificate must be for
 * that host (or tls_server_name), not merely signed by a trusted CA. 0, or
 * -1 with why; a certificate refused is recorded in rc->refused.
 */
static int tls_start(struct redisconn *rc, redisContext *c, const char *host, int port, char *why,
                     size_t whysize)
{
    const char *name = rc->u.tls_server_name[0] ? rc->u.tls_server_name : host;
    unsigned char ip[16];
    SSL *ssl = SSL_new(rc->tls);
    long verify;
    int is_ip = inet_pton(AF_INET, name, ip) == 1 || inet_pton(AF_INET6, name, ip) == 1;

    if (!ssl) {
        snprintf(why, whysize, "TLS: %s", ssl_error());
        return -1;
    }
    if ((!is_ip && SSL_set_tlsext_host_name(ssl, name) != 1) ||
        (is_ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name) != 1
               : SSL_set1_host(ssl, name) != 1)) {
        snprintf(why, whysize, "TLS: cannot check the name %.100s: %s", name, ssl_error());
        SSL_free(ssl);
        return -1;
    }
    if (redisInitiateSSL(c, ssl) == REDIS_OK)
        return 0; /* ssl now belongs to the context */
    verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK) {
        snprintf(rc->refused, sizeof(rc->refused),
                 "the TLS certificate of redis %.200s:%d is refused: %s (name checked: %.200s; "
                 "CA: %.400s)",
                 host, port, X509_verify_cert_error_string(verify), name,
                 rc->u.tls_ca[0] ? rc->u.tls_ca : "the system's");
        util_strlcpy(why, rc->refused, whysize);
    } else {
        snprintf(why, whysize, "TLS handshake: %s", c->errstr);
    }
    SSL_free(ssl);
    return -1;
}

struct redisconn *redisconn_new(const char *url, const char *purpose, int connect_ms,
                                int command_ms, char *errstr, size_t errsize)
{
    struct redisconn *rc = xcalloc(1, sizeof(*rc));

    if (redisconn_parse_url(url, &rc->u, errstr, errsize) != 0)
        goto fail;
    if (rc->u.tls && !(rc->tls = tls_new(&rc->u, errstr, errsize)))
        goto fail;
    util_strlcpy(rc->purpose, purpose ? purpose : "", sizeof(rc->purpose));
    rc->connect_ms = connect_ms;
    rc->command_ms = command_ms;
    return rc;
fail:
    free(rc);
    return NULL;
}

const char *redisconn_refused(const struct redisconn *rc)
{
    return rc->refused[0] ? rc->refused : NULL;
}

void redisconn_free(struct redisconn *rc)
{
    if (!rc)
        return;
    if (rc->c)
        redisFree(rc->c);
    if (rc->tls)
        SSL_CTX_free(rc->tls);
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
    int64_t now = util_now_ms();

    if (!rc->down) {
        log_warn("redis unavailable", "for=\"%s\" host=%s port=%d error=\"%s\"", rc->purpose,
                 rc->u.host, rc->u.port, why);
        rc->down_since = rc->logged_at = now;
    } else if (now - rc->logged_at >= REDISCONN_LOG_EVERY_MS) {
        /* An outage that lasts is said again: a single line scrolls away unseen. */
        log_warn("redis still unavailable",
                 "for=\"%s\" host=%s port=%d down_s=%" PRId64 " error=\"%s\"", rc->purpose,
                 rc->u.host, rc->u.port, (now - rc->down_since) / 1000, why);
        rc->logged_at = now;
    }
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
    return rc->u.host;
}

int redisconn_port(const struct redisconn *rc)
{
    return rc->u.port;
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

/*
 * A TCP connection with hiredis' own connect and command timeouts and a TCP
 * user timeout (a peer that vanished fails a write in seconds, not
 * minutes); NULL with why.
 */
static redisContext *tcp_connect(const char *host, int port, int connect_ms, int command_ms,
                                 char *why, size_t whysize)
{
    struct timeval ct = {connect_ms / 1000, (connect_ms % 1000) * 1000};
    struct timeval cmd = {command_ms / 1000, (command_ms % 1000) * 1000};
    redisOptions opt = {0};
    redisContext *c;

    REDIS_OPTIONS_SET_TCP(&opt, host, port);
    opt.connect_timeout = &ct;
    opt.command_timeout = &cmd;
    c = redisConnectWithOptions(&opt);
    if (!c || c->err) {
        snprintf(why, whysize, "%s", c ? c->errstr : "cannot allocate a context");
        if (c)
            redisFree(c);
        return NULL;
    }
    redisSetTcpUserTimeout(c, REDISCONN_TCP_USER_TIMEOUT_MS);
    return c;
}

/*
 * rc->c to rc->u.host:port, then TLS, AUTH (with the URL's user for an ACL
 * user) and SELECT. 0, or -1 with why (rc->c may be set: the caller drops).
 */
static int connect_node(struct redisconn *rc, char *why, size_t whysize)
{
    rc->c = tcp_connect(rc->u.host, rc->u.port, rc->connect_ms, rc->command_ms, why, whysize);
    if (!rc->c)
        return -1;
    if (rc->tls && tls_start(rc, rc->c, rc->u.host, rc->u.port, why, whysize) != 0)
        return -1;
    rc->refused[0] = '\0';
    if (rc->u.password[0] &&
        setup(rc,
              rc->u.user[0] ? redisCommand(rc->c, "AUTH %s %s", rc->u.user, rc->u.password)
                            : redisCommand(rc->c, "AUTH %s", rc->u.password),
              "AUTH", why, whysize) != 0)
        return -1;
    if (rc->u.db &&
        setup(rc, redisCommand(rc->c, "SELECT %d", rc->u.db), "SELECT", why, whysize) != 0)
        return -1;
    return 0;
}

/* The master's address from one Sentinel, into rc->u.host and port: 0, or -1 (why). */
static int sentinel_ask(struct redisconn *rc, const struct redisconn_addr *s, char *why,
                        size_t whysize)
{
    int ms = rc->connect_ms < REDISCONN_SENTINEL_MS ? rc->connect_ms : REDISCONN_SENTINEL_MS;
    char err[256];
    redisContext *c = tcp_connect(s->host, s->port, ms, ms, err, sizeof(err));
    redisReply *r;
    int64_t port;
    int ok = 0;

    if (!c || (rc->tls && tls_start(rc, c, s->host, s->port, err, sizeof(err)) != 0)) {
        snprintf(why, whysize, "Sentinel %.100s:%d: %.100s", s->host, s->port, err);
        if (c)
            redisFree(c);
        return -1;
    }
    r = redisCommand(c, "SENTINEL get-master-addr-by-name %s", rc->u.master);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING &&
        r->element[0]->len < sizeof(rc->u.host) && util_parse_i64(r->element[1]->str, &port) == 0 &&
        port >= 1 && port <= 65535) {
        memcpy(rc->u.host, r->element[0]->str, r->element[0]->len + 1);
        rc->u.port = (int)port;
        ok = 1;
    } else {
        snprintf(why, whysize, "Sentinel %.100s:%d: %.100s", s->host, s->port,
                 !r                             ? c->errstr
                 : r->type == REDIS_REPLY_ERROR ? r->str
                 : r->type == REDIS_REPLY_NIL   ? "does not know the master"
                                                : "unexpected reply");
    }
    if (r)
        freeReplyObject(r);
    redisFree(c);
    return ok ? 0 : -1;
}

/* ROLE on the node a Sentinel named: 0 when it says master, else -1 (why). */
static int confirm_master(struct redisconn *rc, char *why, size_t whysize)
{
    redisReply *r = redisCommand(rc->c, "ROLE");
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
             r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "master") == 0;

    if (!ok)
        snprintf(why, whysize, "ROLE: %.100s",
                 !r                             ? rc->c->errstr
                 : r->type == REDIS_REPLY_ERROR ? r->str
                 : r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
                         r->element[0]->type == REDIS_REPLY_STRING
                     ? r->element[0]->str
                     : "unexpected reply");
    if (r)
        freeReplyObject(r);
    return ok ? 0 : -1;
}

/*
 * redis+sentinel://, as the Sentinel client guidelines say: ask each
 * Sentinel in turn (a short timeout each), connect to the address it names
 * and confirm with ROLE that the node is the master (a failover in progress
 * may name a node that is not yet, or no longer, one); the Sentinel that
 * answered right moves to the head of the list. 0 with rc->c connected, or
 * -1 with why: what each Sentinel said.
 */
static int sentinel_connect(struct redisconn *rc, char *why, size_t whysize)
{
    char one[256], from[300];
    size_t used = 0;

    snprintf(from, sizeof(from), "%.255s:%d", rc->u.host, rc->u.port);
    for (int i = 0; i < rc->u.nsentinels; i++) {
        struct redisconn_addr s = rc->u.sentinels[i];

        if (sentinel_ask(rc, &s, one, sizeof(one)) == 0) {
            char node[128];
            if (connect_node(rc, node, sizeof(node)) == 0 &&
                confirm_master(rc, node, sizeof(node)) == 0) {
                memmove(&rc->u.sentinels[1], &rc->u.sentinels[0], (size_t)i * sizeof(s));
                rc->u.sentinels[0] = s;
                log_debug("redis master found",
                          "for=\"%s\" master=%s host=%s port=%d sentinel=%s:%d was=%s", rc->purpose,
                          rc->u.master, rc->u.host, rc->u.port, s.host, s.port, from);
                return 0;
            }
            if (rc->c)
                redisFree(rc->c);
            rc->c = NULL;
            snprintf(one, sizeof(one), "Sentinel %.60s:%d named %.60s:%d: %.100s", s.host, s.port,
                     rc->u.host, rc->u.port, node);
        }
        used += (size_t)snprintf(why + used, used < whysize ? whysize - used : 0, "%s%s",
                                 used ? "; " : "", one);
        if (used >= whysize)
            used = whysize - 1;
    }
    return -1;
}

/*
 * A connected context: the one we have, or a new connection (to the master
 * the Sentinels name, for redis+sentinel://) with the user's own steps
 * run on it; NULL while Redis is down (a reconnect at most once per
 * REDISCONN_RETRY_MS).
 */
redisContext *redisconn_get(struct redisconn *rc)
{
    char why[512] = "";
    int setup_rc;

    if (rc->c)
        return rc->c;
    if (util_now_ms() < rc->next_try)
        return NULL;
    if ((rc->u.nsentinels ? sentinel_connect(rc, why, sizeof(why))
                          : connect_node(rc, why, sizeof(why))) != 0)
        goto fail;
    if (rc->on_connect &&
        (setup_rc = rc->on_connect(rc->c, rc->on_connect_arg, why, sizeof(why)))) {
        if (setup_rc < 0)
            goto fail;
        if (!rc->down)
            rc->down_since = rc->logged_at = util_now_ms();
        rc->down = 1; /* quietly: the caller logged its reason */
        close_and_back_off(rc);
        return NULL;
    }
    if (rc->down)
        log_info("redis reachable again", "for=\"%s\" host=%s port=%d", rc->purpose, rc->u.host,
                 rc->u.port);
    rc->down = 0;
    return rc->c;
fail:
    redisconn_drop(rc, why);
    return NULL;
}

/*
 * A master demoted while it kept running (an operator's REPLICAOF, a
 * partition healed) answers writes with READONLY and keeps the connection
 * open: without a drop, a redis+sentinel:// user would stay on it for good.
 * A plain URL names one node on purpose, so it keeps the old behaviour.
 */
int redisconn_lost_master(const struct redisconn *rc, const redisReply *r)
{
    return rc->u.nsentinels && r && r->type == REDIS_REPLY_ERROR &&
           strncmp(r->str, "READONLY", 8) == 0;
}

redisReply *redisconn_vcommand(struct redisconn *rc, char *errstr, size_t errsize, const char *fmt,
                               va_list ap)
{
    redisContext *c = redisconn_get(rc);
    redisReply *r;

    if (!c) {
        snprintf(errstr, errsize, "redis %s:%d is unreachable; retrying", rc->u.host, rc->u.port);
        return NULL;
    }
    r = redisvCommand(c, fmt, ap);
    if (!r) {
        snprintf(errstr, errsize, "redis %s:%d: %s", rc->u.host, rc->u.port,
                 c->errstr[0] ? c->errstr : "no reply");
        redisconn_drop(rc, errstr);
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(errstr, errsize, "redis %s:%d: %s", rc->u.host, rc->u.port, r->str);
        if (redisconn_lost_master(rc, r))
            redisconn_drop(rc, errstr);
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
