/*
 * gate.c - the Redis dedupe gate. See gate.h for the protocol.
 *
 * One synchronous hiredis connection, used in pipelined bursts: append N
 * commands, then read N replies. Two kinds of burst do not wait for their
 * replies: marking a batch done and the stats counters. Nothing in the
 * round depends on them, so Redis runs them while the consumer polls and
 * parses the next batch (that wait was a sixth of a batch's time, see
 * bench/); the next call reads them first ("pending"), and Redis keeps the
 * order, so the next SET NX GET sees the "D" markers. Any I/O error drops
 * the connection and
 * marks Redis down; reconnecting is tried at most once a second, so an
 * outage costs the consumer one failed connect per second, not one per
 * batch.
 */
#include "gate.h"
#include "event.h"
#include "log.h"
#include "util.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define GATE_RETRY_MS   1000
#define GATE_CONNECT_MS 1000
#define GATE_COMMAND_MS 2000
#define GATE_PREFIX_MAX 256
#define GATE_KEY_MAX    (GATE_PREFIX_MAX + 128)
#define GATE_SHA_LEN    41

/*
 * Compare-and-set: only the holder of the exact "P ..." value may settle it.
 * One call settles up to GATE_SETTLE_CHUNK keys: a script call costs Redis
 * far more than the GET/SET inside it, so per-key calls made marking a
 * batch done cost more than taking its locks (see bench/). ARGV[1] is the
 * window; key i's held value is ARGV[2i], its new value ARGV[2i+1].
 */
static const char done_script[] = "local n = 0 for i, k in ipairs(KEYS) do "
                                  "if redis.call('GET', k) == ARGV[2 * i] then "
                                  "redis.call('SET', k, ARGV[2 * i + 1], 'PX', ARGV[1]) "
                                  "n = n + 1 end end return n";
/* Key i's held value is ARGV[i]. */
static const char release_script[] = "local n = 0 for i, k in ipairs(KEYS) do "
                                     "if redis.call('GET', k) == ARGV[i] then "
                                     "n = n + redis.call('DEL', k) end end return n";

/* Keys per script call: bounds how long one call holds Redis (~100 us). */
#define GATE_SETTLE_CHUNK 100
#define GATE_SETTLE_ARGS  (4 + 3 * GATE_SETTLE_CHUNK)

struct gate {
    char host[256];
    int port, db;
    char password[256];
    char prefix[GATE_PREFIX_MAX];
    int64_t lock_ttl_ms, window_ms;
    char owner[GATE_OWNER_MAX];

    redisContext *c;
    int down;         /* an outage was logged and has not ended yet */
    int64_t next_try; /* no reconnect before this (monotonic ms) */
    char done_sha[GATE_SHA_LEN], release_sha[GATE_SHA_LEN];
    int warned_error_reply;

    size_t pending;     /* replies owed to commands sent without waiting */
    int reload_scripts; /* a pending reply said NOSCRIPT */

    /* gate_settle's scratch: one chunk's keys, values and argument vector. */
    char keys[GATE_SETTLE_CHUNK][GATE_KEY_MAX];
    char vals[GATE_SETTLE_CHUNK][GATE_VALUE_MAX];
    const char *argv[GATE_SETTLE_ARGS];
    size_t argvlen[GATE_SETTLE_ARGS];
};

/* ------------------------------------------------------------ decision */

enum gate_action gate_decide(const char *old, size_t len, const char *owner)
{
    size_t olen = strlen(owner);

    if (old == NULL)
        return GATE_OURS; /* nil: SET NX succeeded, the lock is ours */
    if (len >= 2 && old[0] == 'D' && old[1] == ' ')
        return GATE_DUPLICATE;
    if (len >= 2 && old[0] == 'P' && old[1] == ' ') {
        /* "P <owner> ..." is ours only on a whole-word match of the owner. */
        if (len >= 2 + olen && memcmp(old + 2, owner, olen) == 0 &&
            (len == 2 + olen || old[2 + olen] == ' '))
            return GATE_OURS;
        return GATE_BUSY;
    }
    return GATE_OPEN; /* not a value the gate wrote: let PostgreSQL decide */
}

/* ------------------------------------------------------------ url */

int gate_parse_url(const char *url, char *host, size_t hostsize, int *port, int *db, char *password,
                   size_t pwsize, char *errstr, size_t errsize)
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
    snprintf(errstr, errsize, "bad Redis URL \"%s\" (expected redis://host:port/db)", url);
    return -1;
}

/* ------------------------------------------------------------ connection */

static void gate_disconnect(struct gate *g, const char *why)
{
    if (!g->down)
        log_warn("redis unavailable, deduping in PostgreSQL only", "host=%s port=%d error=\"%s\"",
                 g->host, g->port, why);
    g->down = 1;
    if (g->c)
        redisFree(g->c);
    g->c = NULL;
    g->pending = 0;
    g->next_try = util_now_ms() + GATE_RETRY_MS;
}

static int load_script(struct gate *g, const char *script, char sha[GATE_SHA_LEN])
{
    redisReply *r = redisCommand(g->c, "SCRIPT LOAD %s", script);
    int rc = -1;

    if (r && r->type == REDIS_REPLY_STRING && r->len == GATE_SHA_LEN - 1) {
        memcpy(sha, r->str, GATE_SHA_LEN - 1);
        sha[GATE_SHA_LEN - 1] = '\0';
        rc = 0;
    }
    if (r)
        freeReplyObject(r);
    return rc;
}

/* Run a setup command; 0 when it answered without an error. */
static int setup_command(struct gate *g, redisReply *r, char *why, size_t whysize)
{
    int rc = 0;

    if (!r) {
        snprintf(why, whysize, "%s", g->c->errstr);
        return -1;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(why, whysize, "%s", r->str);
        rc = -1;
    }
    freeReplyObject(r);
    return rc;
}

/* 0 when connected (now or already), -1 when Redis is down for now. */
static int gate_connect(struct gate *g)
{
    struct timeval ct = {GATE_CONNECT_MS / 1000, (GATE_CONNECT_MS % 1000) * 1000};
    struct timeval cmd = {GATE_COMMAND_MS / 1000, (GATE_COMMAND_MS % 1000) * 1000};
    char why[256] = "";

    if (g->c)
        return 0;
    if (util_now_ms() < g->next_try)
        return -1;
    g->c = redisConnectWithTimeout(g->host, g->port, ct);
    if (!g->c || g->c->err) {
        snprintf(why, sizeof(why), "%s", g->c ? g->c->errstr : "cannot allocate a context");
        goto fail;
    }
    if (redisSetTimeout(g->c, cmd) != REDIS_OK) {
        snprintf(why, sizeof(why), "cannot set the command timeout");
        goto fail;
    }
    if (g->password[0] &&
        setup_command(g, redisCommand(g->c, "AUTH %s", g->password), why, sizeof(why)) != 0)
        goto fail;
    if (g->db && setup_command(g, redisCommand(g->c, "SELECT %d", g->db), why, sizeof(why)) != 0)
        goto fail;
    if (load_script(g, done_script, g->done_sha) != 0 ||
        load_script(g, release_script, g->release_sha) != 0) {
        snprintf(why, sizeof(why), "SCRIPT LOAD failed%s%s", g->c->err ? ": " : "",
                 g->c->err ? g->c->errstr : "");
        goto fail;
    }
    if (g->down)
        log_info("redis reachable again", "host=%s port=%d", g->host, g->port);
    g->down = 0;
    return 0;
fail:
    gate_disconnect(g, why);
    return -1;
}

/*
 * Read the replies owed to commands sent without waiting. A NOSCRIPT among
 * them (the script cache was flushed) loads the scripts again; the markers
 * it lost only leave "P" locks to expire, and PostgreSQL decides meanwhile.
 */
static int gate_drain(struct gate *g)
{
    for (; g->pending > 0; g->pending--) {
        redisReply *r = NULL;
        if (redisGetReply(g->c, (void **)&r) != REDIS_OK || !r) {
            gate_disconnect(g, g->c->errstr[0] ? g->c->errstr : "no reply");
            return -1;
        }
        if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0)
            g->reload_scripts = 1;
        freeReplyObject(r);
    }
    if (g->reload_scripts) {
        g->reload_scripts = 0;
        if (load_script(g, done_script, g->done_sha) != 0 ||
            load_script(g, release_script, g->release_sha) != 0) {
            gate_disconnect(g, g->c->err ? g->c->errstr : "SCRIPT LOAD failed");
            return -1;
        }
    }
    return 0;
}

/* Connected, with no reply owed: 0, or -1 when Redis is down. */
static int gate_ready(struct gate *g)
{
    return gate_connect(g) == 0 && gate_drain(g) == 0 ? 0 : -1;
}

/* Send what was appended, replies owed: n more (they are read by gate_drain). */
static int gate_send(struct gate *g, size_t n)
{
    int done = 0;

    while (!done)
        if (redisBufferWrite(g->c, &done) != REDIS_OK) {
            gate_disconnect(g, g->c->errstr[0] ? g->c->errstr : "write failed");
            return -1;
        }
    g->pending += n;
    return 0;
}

/* hostname:pid:random - unique per process, no spaces (the value is space-separated). */
static void gate_make_owner(char *owner, size_t size)
{
    char host[64], id[EVENT_ID_LEN];

    if (gethostname(host, sizeof(host)) != 0)
        util_strlcpy(host, "localhost", sizeof(host));
    host[sizeof(host) - 1] = '\0';
    for (char *h = host; *h; h++)
        if (*h == ' ')
            *h = '_';
    event_new_id(id);
    snprintf(owner, size, "%s:%ld:%.8s", host, (long)getpid(), id);
}

struct gate *gate_new(const char *url, const char *prefix, int64_t lock_ttl_ms, int64_t window_ms,
                      char *errstr, size_t errsize)
{
    struct gate *g = xcalloc(1, sizeof(*g));

    if (gate_parse_url(url, g->host, sizeof(g->host), &g->port, &g->db, g->password,
                       sizeof(g->password), errstr, errsize) != 0)
        goto fail;
    if (strlen(prefix) >= sizeof(g->prefix)) {
        snprintf(errstr, errsize, "key prefix longer than %d bytes", GATE_PREFIX_MAX - 1);
        goto fail;
    }
    util_strlcpy(g->prefix, prefix, sizeof(g->prefix));
    g->lock_ttl_ms = lock_ttl_ms;
    g->window_ms = window_ms;
    gate_make_owner(g->owner, sizeof(g->owner));
    gate_connect(g); /* Redis down at start is an outage like any other, not an error */
    return g;
fail:
    free(g);
    return NULL;
}

void gate_free(struct gate *g)
{
    if (!g)
        return;
    if (g->c)
        redisFree(g->c);
    free(g);
}

const char *gate_owner(const struct gate *g)
{
    return g->owner;
}

/* ------------------------------------------------------------ batches */

static size_t gate_key(const struct gate *g, const char *token, char *key, size_t size)
{
    int n = snprintf(key, size, "%s%s", g->prefix, token);
    return n < 0 ? 0 : (size_t)n >= size ? size - 1 : (size_t)n;
}

int gate_acquire(struct gate *g, struct gate_item *const *items, size_t n)
{
    char key[GATE_KEY_MAX], val[GATE_VALUE_MAX];
    size_t i, got = 0;

    for (i = 0; i < n; i++)
        items[i]->action = GATE_OPEN;
    if (n == 0)
        return 0;
    if (gate_ready(g) != 0)
        return -1;
    for (i = 0; i < n; i++) {
        size_t klen = gate_key(g, items[i]->token, key, sizeof(key));
        int vlen = snprintf(val, sizeof(val), "P %s %s", g->owner, items[i]->event_id);
        redisAppendCommand(g->c, "SET %b %b NX PX %lld GET", key, klen, val, (size_t)vlen,
                           (long long)g->lock_ttl_ms);
    }
    for (; got < n; got++) {
        struct gate_item *it = items[got];
        redisReply *r = NULL;

        if (redisGetReply(g->c, (void **)&r) != REDIS_OK || !r)
            goto io_error;
        if (r->type == REDIS_REPLY_NIL) {
            it->action = GATE_OURS;
            snprintf(it->lock, sizeof(it->lock), "P %s %s", g->owner, it->event_id);
        } else if (r->type == REDIS_REPLY_STRING) {
            it->action = gate_decide(r->str, r->len, g->owner);
            /* Re-acquiring our own lock: the value to compare is the one in Redis. */
            if (it->action == GATE_OURS) {
                if (r->len < sizeof(it->lock)) {
                    memcpy(it->lock, r->str, r->len);
                    it->lock[r->len] = '\0';
                } else {
                    it->action = GATE_OPEN;
                }
            }
        } else {
            if (r->type == REDIS_REPLY_ERROR && !g->warned_error_reply) {
                log_warn("redis refused SET NX GET (Redis >= 7 needed?), PostgreSQL decides",
                         "error=\"%s\"", r->str);
                g->warned_error_reply = 1;
            }
            it->action = GATE_OPEN;
        }
        freeReplyObject(r);
    }
    return 0;
io_error:
    for (i = 0; i < n; i++)
        items[i]->action = GATE_OPEN;
    gate_disconnect(g, g->c->errstr[0] ? g->c->errstr : "no reply");
    return -1;
}

/* Append one script call settling those of items[from..to) we hold; 1 if one was sent. */
static size_t gate_settle_chunk(struct gate *g, struct gate_item *const *items, size_t from,
                                size_t to, int done, int use_eval, const char *window)
{
    const char **argv = g->argv;
    size_t *argvlen = g->argvlen, nkeys = 0, argc = 0, k = 0, i;
    char numkeys[24];

    for (i = from; i < to; i++)
        nkeys += items[i]->action == GATE_OURS;
    if (nkeys == 0)
        return 0;
    snprintf(numkeys, sizeof(numkeys), "%zu", nkeys);
    argv[argc++] = use_eval ? "EVAL" : "EVALSHA";
    argv[argc++] =
        use_eval ? (done ? done_script : release_script) : (done ? g->done_sha : g->release_sha);
    argv[argc++] = numkeys;
    for (i = 0; i < argc; i++)
        argvlen[i] = strlen(argv[i]);
    /* KEYS, then ARGV: the window (done only), then per key its lock (and "D" value). */
    for (i = from; i < to; i++)
        if (items[i]->action == GATE_OURS) {
            argvlen[argc] = gate_key(g, items[i]->token, g->keys[k], sizeof(g->keys[k]));
            argv[argc++] = g->keys[k++];
        }
    if (done) {
        argvlen[argc] = strlen(window);
        argv[argc++] = window;
    }
    for (i = from, k = 0; i < to; i++) {
        if (items[i]->action != GATE_OURS)
            continue;
        argvlen[argc] = strlen(items[i]->lock);
        argv[argc++] = items[i]->lock;
        if (done) {
            int vlen = snprintf(g->vals[k], sizeof(g->vals[k]), "D %s", items[i]->event_id);
            argvlen[argc] = vlen < 0 ? 0 : (size_t)vlen;
            argv[argc++] = g->vals[k++];
        }
    }
    return redisAppendCommandArgv(g->c, (int)argc, argv, argvlen) == REDIS_OK;
}

/*
 * Run the compare-and-set script for every item we hold, GATE_SETTLE_CHUNK
 * keys a call, all calls in one round trip. Marking done does not wait for
 * the replies (see the top of the file); releasing does.
 */
static int gate_settle(struct gate *g, struct gate_item *const *items, size_t n, int done)
{
    char window[32];
    size_t i, sent = 0, noscript = 0;
    int use_eval = 0;

    snprintf(window, sizeof(window), "%lld", (long long)g->window_ms);
again:
    if (gate_ready(g) != 0)
        return -1;
    sent = 0;
    for (i = 0; i < n; i += GATE_SETTLE_CHUNK)
        sent +=
            gate_settle_chunk(g, items, i, i + GATE_SETTLE_CHUNK < n ? i + GATE_SETTLE_CHUNK : n,
                              done, use_eval, window);
    if (done)
        return gate_send(g, sent);
    noscript = 0;
    for (i = 0; i < sent; i++) {
        redisReply *r = NULL;
        if (redisGetReply(g->c, (void **)&r) != REDIS_OK || !r) {
            gate_disconnect(g, g->c->errstr[0] ? g->c->errstr : "no reply");
            return -1;
        }
        if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0)
            noscript++;
        freeReplyObject(r);
    }
    /* The script cache was flushed (SCRIPT FLUSH, a restart): send the bodies once. */
    if (noscript && !use_eval) {
        use_eval = 1;
        goto again;
    }
    return 0;
}

int gate_mark_done(struct gate *g, struct gate_item *const *items, size_t n)
{
    return gate_settle(g, items, n, 1);
}

int gate_release(struct gate *g, struct gate_item *const *items, size_t n)
{
    return gate_settle(g, items, n, 0);
}

int gate_count(struct gate *g, const char *const *fields, const int64_t *deltas, size_t n)
{
    char key[GATE_KEY_MAX];
    size_t i, sent = 0;

    for (i = 0; i < n; i++)
        sent += deltas[i] != 0;
    if (sent == 0)
        return 0;
    if (gate_ready(g) != 0)
        return -1;
    snprintf(key, sizeof(key), "%s%s", g->prefix, GATE_STATS_KEY);
    for (i = 0; i < n; i++)
        if (deltas[i] != 0)
            redisAppendCommand(g->c, "HINCRBY %s %s %lld", key, fields[i], (long long)deltas[i]);
    /* Replies are read (and an error reply ignored) by the next call, see gate_drain. */
    return gate_send(g, sent);
}
