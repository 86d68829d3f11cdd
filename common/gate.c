/*
 * gate.c - the Redis dedupe gate. See gate.h for the protocol.
 *
 * One synchronous hiredis connection, used in pipelined bursts: append N
 * commands, then read N replies. Three kinds of burst do not wait for their
 * replies: marking a batch done, the stats counters and the heartbeat.
 * Nothing in the round depends on them, so Redis runs them while the
 * consumer goes on (that wait was a sixth of a batch's time, see bench/). A
 * small FIFO says what each owed reply is ("pending"); the next call reads
 * them first, and Redis keeps the order, so the next SET NX GET sees the
 * done markers.
 *
 * The connection and its reconnect policy are redisconn's (redisconn.h):
 * any I/O error drops it and marks Redis down, reconnecting is tried at most
 * once a second, so an outage costs the consumer one failed connect per
 * second, not one per batch. Every (re)connect then runs the gate's own
 * setup, synchronously: the namespace check, our alive key, SCRIPT LOAD.
 * A reader (gate_reader, the producer's status routes) skips that setup: it
 * owns nothing, it only reads keys in the formats this file defines.
 *
 * gate_acquire makes a second round trip only when some locks belong to
 * other owners: one takeover script per such lock, which takes it when its
 * owner's alive key no longer names that owner.
 *
 * Every reply is read by gate_reply, and every burst of script calls
 * (takeover, release) goes through gate_run_scripts: after a NOSCRIPT (the
 * script cache was flushed) the calls go again with the scripts' bodies,
 * and the next call loads the scripts again (gate_drain).
 *
 * Stats: per field, "confirmed" (Redis answered the burst's EXEC with an
 * array) and "sent" (confirmed + in flight). A burst carries totals - sent;
 * its EXEC reply adds those deltas to confirmed, a failed EXEC takes them
 * back from sent, and a lost connection sets sent to confirmed, so the next
 * call sends the difference again. A burst Redis applied but whose reply
 * was lost is counted twice: the hash may run ahead, never behind, and its
 * fields always move together.
 */
#include "gate.h"
#include "event.h"
#include "log.h"
#include "redisconn.h"
#include "util.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#define GATE_CONNECT_MS 1000
#define GATE_COMMAND_MS 2000
#define GATE_PREFIX_MAX 256
#define GATE_KEY_MAX    (GATE_PREFIX_MAX + 128)
/* An alive key names the owner of any lock value we may read. */
#define GATE_ALIVE_KEY_MAX (GATE_PREFIX_MAX + sizeof(GATE_ALIVE_KEY) + GATE_VALUE_MAX)
#define GATE_SHA_LEN       41
#define GATE_PENDING_MIN   8 /* FIFO entries to start with; it doubles when full */

/*
 * Releasing is compare-and-delete: only the holder of the exact "P ..."
 * value may delete it. One call releases up to GATE_SETTLE_CHUNK keys (a
 * script call costs Redis far more than the GET/DEL inside it).
 * Key i's held value is ARGV[i].
 */
static const char release_script[] = "local n = 0 for i, k in ipairs(KEYS) do "
                                     "if redis.call('GET', k) == ARGV[i] then "
                                     "n = n + redis.call('DEL', k) end end return n";
/*
 * Takeover of a dead owner's lock. KEYS: the lock, the alive key of its
 * owner; ARGV: the lock's value as read, that owner, our value, the lock
 * TTL. Taken only while the lock is unchanged and the alive key names
 * someone else (a successor under the same instance id) or nobody.
 */
static const char takeover_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] and redis.call('GET', KEYS[2]) ~= ARGV[2] then "
    "redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4]) return 1 end return 0";
/* Our alive key, deleted only while it still names us (a successor may own it now). */
static const char retire_script[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                    "return redis.call('DEL', KEYS[1]) end return 0";

/* The namespace key of an older tadak (no "#<id>") becomes ours, if it still says that. */
static const char upgrade_script[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                     "return redis.call('SET', KEYS[1], ARGV[2]) end return 0";

/* Keys per script call: bounds how long one call holds Redis (~100 us). */
#define GATE_SETTLE_CHUNK 100
#define GATE_SETTLE_ARGS  (3 + 2 * GATE_SETTLE_CHUNK)

/* What replies owed to commands sent without waiting are (one FIFO entry). */
enum pend_kind {
    PEND_PLAIN,    /* n replies to read and drop; a NOSCRIPT among them reloads the scripts */
    PEND_STATS,    /* the EXEC of a stats burst: an array confirms its deltas */
    PEND_IDENTITY, /* SET <database key> <ours> NX GET of a heartbeat: still ours? */
};

struct pend {
    enum pend_kind kind;
    size_t n; /* replies left (1 for PEND_STATS) */
    int64_t deltas[GATE_NSTATS];
};

struct gate {
    struct redisconn *rc;
    int reader; /* gate_reader: no owner, no alive key, no scripts */
    char prefix[GATE_PREFIX_MAX];
    int64_t lock_ttl_ms, window_ms;
    char owner[GATE_OWNER_MAX];
    char alive_key[GATE_ALIVE_KEY_MAX];
    char *db_identity;  /* NULL: no namespace check */
    char foreign[256];  /* the database the prefix belongs to, when not ours */
    int foreign_logged; /* found on a reconnect and logged; cleared by a good connect */
    int started;        /* gate_new is done: a foreign prefix is logged, not returned */

    redisContext *c; /* rc's context while connected and set up, else NULL */
    int64_t next_beat;
    char release_sha[GATE_SHA_LEN], takeover_sha[GATE_SHA_LEN];
    int warned_error_reply;

    /* Replies owed to commands sent without waiting: a ring, grown only when full. */
    struct pend *pending;
    size_t qcap, qhead, qlen;
    int reload_scripts; /* a pending reply said NOSCRIPT */
    int64_t stats_sent[GATE_NSTATS], stats_confirmed[GATE_NSTATS];

    /* gate_release's scratch: one chunk's keys and argument vector. */
    char keys[GATE_SETTLE_CHUNK][GATE_KEY_MAX];
    const char *argv[GATE_SETTLE_ARGS];
    size_t argvlen[GATE_SETTLE_ARGS];
};

/* ------------------------------------------------------------ decision */

enum gate_action gate_decide(const char *old, size_t len, const char *owner)
{
    size_t olen = strlen(owner);

    if (old == NULL)
        return GATE_OURS; /* nil: SET NX succeeded, the lock is ours */
    if (len == sizeof(GATE_DONE_VALUE) - 1 && memcmp(old, GATE_DONE_VALUE, len) == 0)
        return GATE_DUPLICATE;
    if (len == 1 && old[0] == 'D')
        return GATE_DUPLICATE; /* the done marker as earlier versions wrote it */
    if (len >= 2 && old[0] == 'P' && old[1] == ' ') {
        /* "P <owner> ..." is ours only on a whole-word match of the owner. */
        if (len >= 2 + olen && memcmp(old + 2, owner, olen) == 0 &&
            (len == 2 + olen || old[2 + olen] == ' '))
            return GATE_OURS;
        return GATE_BUSY;
    }
    return GATE_OPEN; /* not a value the gate wrote: let PostgreSQL decide */
}

size_t gate_owner_id(const char *owner, size_t len)
{
    for (size_t i = len; i > 0; i--)
        if (owner[i - 1] == '@')
            return i - 1;
    return len;
}

/* The owner in a "P <owner> <event_id>" value; NULL when there is none. */
static const char *lock_owner(const char *val, size_t len, size_t *olen)
{
    const char *sp;

    if (len < 3 || val[0] != 'P' || val[1] != ' ' || val[2] == ' ')
        return NULL;
    sp = memchr(val + 2, ' ', len - 2);
    *olen = (size_t)((sp ? sp : val + len) - (val + 2));
    return val + 2;
}

/* ------------------------------------------------------------ connection */

static void gate_disconnect(struct gate *g, const char *why)
{
    redisconn_drop(g->rc, why);
    g->c = NULL;
    g->qhead = g->qlen = 0;
    /* Bursts in flight may or may not have been applied: send all unconfirmed again. */
    memcpy(g->stats_sent, g->stats_confirmed, sizeof(g->stats_sent));
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

static int load_scripts(struct gate *g)
{
    return load_script(g, release_script, g->release_sha) == 0 &&
                   load_script(g, takeover_script, g->takeover_sha) == 0
               ? 0
               : -1;
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

/*
 * 1 when a value of <prefix>tadak:database names our database: our identity,
 * or what an older tadak claimed for it, our identity without its "#<id>"
 * (store_identity; '#' is escaped in the rest, so the cut is unambiguous).
 */
static int identity_is_ours(const struct gate *g, const char *v, size_t len)
{
    const char *hash = strrchr(g->db_identity, '#');
    size_t ours = strlen(g->db_identity), legacy = hash ? (size_t)(hash - g->db_identity) : 0;

    return (len == ours || (hash && len == legacy)) && memcmp(v, g->db_identity, len) == 0;
}

/*
 * The namespace key's previous value, from the SET ... NX GET sent with a
 * heartbeat or a batch: 0 when the prefix is still ours (nil: the key was
 * gone, evicted or flushed, and we have just claimed it again: nobody else
 * had). -1 with why when it names another database (logged once, until the
 * prefix is ours again) or Redis refused the check (OOM, ...): the caller
 * then stops trusting Redis, as in an outage.
 */
static int identity_reply(struct gate *g, const redisReply *r, char *why, size_t whysize)
{
    if (r->type == REDIS_REPLY_NIL) {
        log_warn("redis key prefix had lost its database key, claimed it again",
                 "prefix=\"%s\" database=\"%s\"", g->prefix, g->db_identity);
        return 0;
    }
    if (r->type == REDIS_REPLY_STRING && identity_is_ours(g, r->str, r->len))
        return 0;
    if (r->type != REDIS_REPLY_STRING) {
        snprintf(why, whysize, "namespace check (SET %s NX GET): %s", GATE_DATABASE_KEY,
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        return -1;
    }
    snprintf(g->foreign, sizeof(g->foreign), "%.*s", (int)r->len, r->str);
    if (!g->foreign_logged)
        log_error("redis key prefix no longer names our database, deduping in PostgreSQL only",
                  "prefix=\"%s\" database=\"%s\" ours=\"%s\"", g->prefix, g->foreign,
                  g->db_identity);
    g->foreign_logged = 1;
    snprintf(why, whysize, "key prefix \"%s\" names another database", g->prefix);
    return -1;
}

/* Append the namespace check (its reply goes to identity_reply); 1 when appended. */
static int append_identity(struct gate *g)
{
    char key[GATE_KEY_MAX];

    if (!g->db_identity)
        return 0;
    snprintf(key, sizeof(key), "%s%s", g->prefix, GATE_DATABASE_KEY);
    return redisAppendCommand(g->c, "SET %s %s NX GET", key, g->db_identity) == REDIS_OK;
}

/*
 * Claim <prefix>tadak:database for our database, or find whose it is: 0
 * when it is ours (now or already), 1 when it names another database (kept
 * in g->foreign), -1 on an error (why).
 */
static int check_database(struct gate *g, char *why, size_t whysize)
{
    char key[GATE_KEY_MAX];
    size_t len = strlen(g->db_identity);
    redisReply *r;
    int rc = -1;

    snprintf(key, sizeof(key), "%s%s", g->prefix, GATE_DATABASE_KEY);
    r = redisCommand(g->c, "SET %s %b NX GET", key, g->db_identity, len);
    if (!r) {
        snprintf(why, whysize, "%s", g->c->errstr);
        return -1;
    }
    if (r->type == REDIS_REPLY_NIL || (r->type == REDIS_REPLY_STRING && r->len == len &&
                                       memcmp(r->str, g->db_identity, len) == 0)) {
        rc = 0;
    } else if (r->type == REDIS_REPLY_STRING && identity_is_ours(g, r->str, r->len)) {
        /* An older tadak's claim for this database: now the full identity (if still so). */
        redisReply *up = redisCommand(g->c, "EVAL %s 1 %s %b %s", upgrade_script, key, r->str,
                                      r->len, g->db_identity);
        rc = 0;
        if (!up) {
            snprintf(why, whysize, "%s", g->c->errstr);
            rc = -1;
        } else {
            freeReplyObject(up);
        }
    } else if (r->type == REDIS_REPLY_STRING) {
        size_t n = r->len < sizeof(g->foreign) - 1 ? r->len : sizeof(g->foreign) - 1;
        memcpy(g->foreign, r->str, n);
        g->foreign[n] = '\0';
        rc = 1;
    } else {
        snprintf(why, whysize, "namespace check (SET %s NX GET): %s", GATE_DATABASE_KEY,
                 r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    }
    freeReplyObject(r);
    return rc;
}

/*
 * redisconn's on_connect: the gate's own steps on every new connection. 0
 * when set up; 1 when the prefix belongs to another database (logged here,
 * not an outage); -1 on an error (why).
 */
static int gate_setup(redisContext *c, void *arg, char *why, size_t whysize)
{
    struct gate *g = arg;
    int rc;

    g->c = c;
    if (g->reader)
        return 0;
    if (g->db_identity && (rc = check_database(g, why, whysize)) != 0) {
        g->c = NULL;
        if (rc < 0)
            return -1;
        /* gate_new reports it; later it is logged once and the gate stays down. */
        if (g->started && !g->foreign_logged)
            log_error("redis key prefix belongs to another database, deduping in PostgreSQL only",
                      "host=%s port=%d prefix=\"%s\" database=\"%s\" ours=\"%s\"",
                      redisconn_host(g->rc), redisconn_port(g->rc), g->prefix, g->foreign,
                      g->db_identity);
        g->foreign_logged = g->started;
        return 1;
    }
    if (setup_command(g,
                      redisCommand(c, "SET %s %s PX %d", g->alive_key, g->owner, GATE_ALIVE_TTL_MS),
                      why, whysize) != 0 ||
        load_scripts(g) != 0) {
        if (!why[0])
            snprintf(why, whysize, "SCRIPT LOAD failed%s%s", c->err ? ": " : "",
                     c->err ? c->errstr : "");
        g->c = NULL;
        return -1;
    }
    g->foreign[0] = '\0';
    g->foreign_logged = 0;
    g->next_beat = util_now_ms() + GATE_HEARTBEAT_MS;
    return 0;
}

/* 0 when connected (now or already), -1 when Redis is down for now. */
static int gate_connect(struct gate *g)
{
    if (g->c)
        return 0;
    g->c = redisconn_get(g->rc);
    if (!g->c) {
        g->qhead = g->qlen = 0;
        memcpy(g->stats_sent, g->stats_confirmed, sizeof(g->stats_sent));
        return -1;
    }
    return 0;
}

/* A stats burst's EXEC answered: applied (an array) or not at all (nil, an error). */
static void stats_reply(struct gate *g, const int64_t *deltas, int applied)
{
    for (size_t i = 0; i < GATE_NSTATS; i++) {
        if (applied)
            g->stats_confirmed[i] += deltas[i];
        else
            g->stats_sent[i] -= deltas[i];
    }
}

/* 1 for the error Redis answers an EVALSHA whose script it no longer has. */
static int is_noscript(const redisReply *r)
{
    return r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0;
}

/*
 * The next reply: every burst reads its replies here. NULL when the
 * connection failed, or when a redis+sentinel:// master was demoted
 * (READONLY); it is dropped then (Redis is down, g->c is NULL). A
 * NOSCRIPT (the script cache was flushed: SCRIPT FLUSH, a restart) sets
 * reload_scripts, so the next gate_drain loads every script again: an EVAL
 * caches only its own script, and each other one would meet NOSCRIPT too.
 */
static redisReply *gate_reply(struct gate *g)
{
    redisReply *r = NULL;

    if (redisGetReply(g->c, (void **)&r) != REDIS_OK || !r) {
        gate_disconnect(g, g->c->errstr[0] ? g->c->errstr : "no reply");
        return NULL;
    }
    if (redisconn_lost_master(g->rc, r)) { /* demoted under us: find the master again */
        char why[128];
        snprintf(why, sizeof(why), "%.120s", r->str);
        freeReplyObject(r);
        gate_disconnect(g, why);
        return NULL;
    }
    if (is_noscript(r))
        g->reload_scripts = 1;
    return r;
}

/*
 * Read the replies owed to commands sent without waiting, then load the
 * scripts again if a reply said NOSCRIPT; the markers a flush lost only
 * leave "P" locks to expire, and PostgreSQL decides meanwhile.
 */
static int gate_drain(struct gate *g)
{
    char why[GATE_PREFIX_MAX + 128];

    while (g->qlen > 0) {
        struct pend *e = &g->pending[g->qhead];
        redisReply *r = gate_reply(g);
        int foreign;

        if (!r)
            return -1;
        if (e->kind == PEND_STATS)
            stats_reply(g, e->deltas, r->type == REDIS_REPLY_ARRAY);
        foreign = e->kind == PEND_IDENTITY && identity_reply(g, r, why, sizeof(why)) != 0;
        freeReplyObject(r);
        if (foreign) {
            gate_disconnect(g, why);
            return -1;
        }
        if (--e->n == 0) {
            g->qhead = (g->qhead + 1) % g->qcap;
            g->qlen--;
        }
    }
    if (g->reload_scripts) {
        g->reload_scripts = 0;
        if (load_scripts(g) != 0) {
            gate_disconnect(g, g->c->err ? g->c->errstr : "SCRIPT LOAD failed");
            return -1;
        }
    }
    return 0;
}

/*
 * A burst of script calls: append sends them (the scripts' bodies with
 * EVAL when eval, else EVALSHA) and returns how many, or -1; answer (may
 * be NULL) takes their replies in order, NULL for a NOSCRIPT: that call
 * goes again, so its item stays as it is.
 */
struct script_calls {
    int (*append)(struct gate *g, void *arg, int eval);
    void (*answer)(struct gate *g, void *arg, const redisReply *r);
    void *arg;
};

/*
 * Send a burst of script calls and read the replies: one round trip, and
 * the one NOSCRIPT path. When a call met NOSCRIPT, the burst goes again
 * once with the bodies (its answered calls find their items settled and
 * send nothing, or send again what is harmless to repeat), and gate_reply
 * has set reload_scripts: the next call loads the scripts first. 0, or -1
 * when append failed or the connection did (then dropped).
 */
static int gate_run_scripts(struct gate *g, const struct script_calls *sc)
{
    for (int eval = 0; eval <= 1; eval++) {
        size_t noscript = 0;
        int sent = sc->append(g, sc->arg, eval);

        if (sent < 0)
            return -1;
        for (; sent > 0; sent--) {
            redisReply *r = gate_reply(g);

            if (!r)
                return -1;
            noscript += (size_t)is_noscript(r);
            if (sc->answer)
                sc->answer(g, sc->arg, is_noscript(r) ? NULL : r);
            freeReplyObject(r);
        }
        if (noscript == 0)
            break;
    }
    return 0;
}

/* Connected, with no reply owed: 0, or -1 when Redis is down. */
static int gate_ready(struct gate *g)
{
    return gate_connect(g) == 0 && gate_drain(g) == 0 ? 0 : -1;
}

/* Write out what was appended; say what its replies are with gate_expect. */
static int gate_flush(struct gate *g)
{
    int written = 0;

    while (!written)
        if (redisBufferWrite(g->c, &written) != REDIS_OK) {
            gate_disconnect(g, g->c->errstr[0] ? g->c->errstr : "write failed");
            return -1;
        }
    return 0;
}

/* n more replies of this kind are owed (read by gate_drain, in order). */
static void gate_expect(struct gate *g, enum pend_kind kind, size_t n, const int64_t *deltas)
{
    struct pend *e;

    if (n == 0)
        return;
    if (kind == PEND_PLAIN && g->qlen > 0) {
        e = &g->pending[(g->qhead + g->qlen - 1) % g->qcap];
        if (e->kind == PEND_PLAIN) {
            e->n += n;
            return;
        }
    }
    if (g->qlen == g->qcap) {
        struct pend *q = xmalloc(2 * g->qcap * sizeof(*q));
        for (size_t i = 0; i < g->qlen; i++)
            q[i] = g->pending[(g->qhead + i) % g->qcap];
        free(g->pending);
        g->pending = q;
        g->qhead = 0;
        g->qcap *= 2;
    }
    e = &g->pending[(g->qhead + g->qlen++) % g->qcap];
    e->kind = kind;
    e->n = n;
    if (deltas)
        memcpy(e->deltas, deltas, sizeof(e->deltas));
}

/*
 * "<instance id>@<host>:<pid>:<random>", or "<host>:<pid>:<random>" without
 * an instance id: unique per process, without spaces (the lock value is
 * space-separated) and without '@' in the host, so gate_owner_id finds the
 * instance id. A long host name is cut to fit; -1 when the instance id
 * leaves no room.
 */
static int gate_make_owner(char *owner, size_t size, const char *instance_id)
{
    char host[64], id[EVENT_ID_LEN], tail[48];
    size_t ilen = instance_id ? strlen(instance_id) : 0, tlen;
    int n;

    if (gethostname(host, sizeof(host)) != 0)
        util_strlcpy(host, "localhost", sizeof(host));
    host[sizeof(host) - 1] = '\0';
    for (char *h = host; *h; h++)
        if (*h == ' ' || *h == '@')
            *h = '_';
    event_new_id(id);
    n = snprintf(tail, sizeof(tail), ":%ld:%.8s", (long)getpid(), id);
    tlen = n < 0 ? 0 : (size_t)n;
    if (ilen + 1 + 1 + tlen >= size) /* the instance id, '@', a host of one byte, the tail */
        return -1;
    snprintf(owner, size, "%s%s%.*s%s", ilen ? instance_id : "", ilen ? "@" : "",
             (int)(size - 1 - tlen - (ilen ? ilen + 1 : 0)), host, tail);
    return 0;
}

/* <prefix>tadak:alive:<id>; its length. */
static size_t gate_alive_key(const struct gate *g, const char *id, size_t idlen, char *key,
                             size_t size)
{
    int n = snprintf(key, size, "%s%s%.*s", g->prefix, GATE_ALIVE_KEY, (int)idlen, id);
    return n < 0 ? 0 : (size_t)n >= size ? size - 1 : (size_t)n;
}

/* The part gate_new and gate_reader share: the connection and the prefix. */
static struct gate *gate_alloc(const char *url, const char *purpose, int command_ms,
                               const char *prefix, char *errstr, size_t errsize)
{
    struct gate *g = xcalloc(1, sizeof(*g));

    if (!prefix)
        prefix = "";
    if (strlen(prefix) >= sizeof(g->prefix)) {
        snprintf(errstr, errsize, "key prefix longer than %d bytes", GATE_PREFIX_MAX - 1);
        goto fail;
    }
    util_strlcpy(g->prefix, prefix, sizeof(g->prefix));
    if (!(g->rc = redisconn_new(url, purpose, GATE_CONNECT_MS, command_ms, errstr, errsize)))
        goto fail;
    redisconn_on_connect(g->rc, gate_setup, g);
    g->qcap = GATE_PENDING_MIN;
    g->pending = xmalloc(g->qcap * sizeof(*g->pending));
    return g;
fail:
    gate_free(g);
    return NULL;
}

struct gate *gate_reader(const char *url, const char *prefix, int command_ms, char *errstr,
                         size_t errsize)
{
    struct gate *g = gate_alloc(url, "status reads", command_ms, prefix, errstr, errsize);

    if (g) {
        g->reader = 1;
        g->started = 1;
    }
    return g;
}

struct gate *gate_new(const char *url, const char *prefix, const char *instance_id,
                      const char *db_identity, int64_t lock_ttl_ms, int64_t window_ms, char *errstr,
                      size_t errsize)
{
    struct gate *g =
        gate_alloc(url, "deduping in PostgreSQL only", GATE_COMMAND_MS, prefix, errstr, errsize);

    if (!g)
        return NULL;
    g->lock_ttl_ms = lock_ttl_ms;
    g->window_ms = window_ms;
    if (instance_id && strchr(instance_id, ' ')) {
        snprintf(errstr, errsize, "instance id \"%s\" holds a space", instance_id);
        goto fail;
    }
    if (gate_make_owner(g->owner, sizeof(g->owner), instance_id) != 0) {
        snprintf(errstr, errsize, "instance id too long for a Redis lock owner (%zu bytes)",
                 strlen(instance_id));
        goto fail;
    }
    gate_alive_key(g, g->owner, gate_owner_id(g->owner, strlen(g->owner)), g->alive_key,
                   sizeof(g->alive_key));
    g->db_identity = db_identity ? xstrdup(db_identity) : NULL;
    gate_connect(g); /* Redis down at start is an outage like any other, not an error */
    if (redisconn_refused(g->rc)) { /* but a certificate we cannot trust is a setting to fix */
        snprintf(errstr, errsize, "%s", redisconn_refused(g->rc));
        goto fail;
    }
    if (g->foreign[0]) {
        snprintf(errstr, errsize,
                 "redis %s:%d key prefix \"%s\" already holds markers of database %s, this "
                 "consumer writes to %s: give each database its own --key-prefix",
                 redisconn_host(g->rc), redisconn_port(g->rc), g->prefix, g->foreign,
                 g->db_identity);
        goto fail;
    }
    g->started = 1;
    return g;
fail:
    gate_free(g);
    return NULL;
}

void gate_free(struct gate *g)
{
    if (!g)
        return;
    redisconn_free(g->rc);
    free(g->pending);
    free(g->db_identity);
    free(g);
}

const char *gate_owner(const struct gate *g)
{
    return g->owner;
}

/* ------------------------------------------------------------ batches */

/* prefix + token, cut to size; its length. Called per token per batch: no printf. */
static size_t gate_key(const struct gate *g, const char *token, char *key, size_t size)
{
    size_t plen = strlen(g->prefix), tlen = strlen(token);

    if (plen >= size)
        plen = size - 1;
    if (plen + tlen >= size)
        tlen = size - 1 - plen;
    memcpy(key, g->prefix, plen);
    memcpy(key + plen, token, tlen);
    key[plen + tlen] = '\0';
    return plen + tlen;
}

/* "P <owner> <event_id>" into val (GATE_VALUE_MAX); its length. */
static size_t gate_lock_value(const struct gate *g, const char *event_id, char *val)
{
    size_t olen = strlen(g->owner), elen = strlen(event_id);

    if (4 + olen + elen >= GATE_VALUE_MAX) /* cannot happen: both are bounded */
        elen = GATE_VALUE_MAX - 4 - olen;
    val[0] = 'P';
    val[1] = ' ';
    memcpy(val + 2, g->owner, olen);
    val[2 + olen] = ' ';
    memcpy(val + 3 + olen, event_id, elen);
    val[3 + olen + elen] = '\0';
    return 3 + olen + elen;
}

/* A takeover candidate: another owner's lock, its value kept in it->lock. */
static int takeover_candidate(const struct gate_item *it)
{
    return it->action == GATE_BUSY && it->lock[0] != '\0';
}

/*
 * Append the takeover script call for one candidate: 1 when appended, 0
 * when its lock names no owner to ask about (it is no candidate then), -1
 * when appending failed.
 */
static int append_takeover(struct gate *g, struct gate_item *it, const char *ttl, int eval)
{
    char key[GATE_KEY_MAX], alive[GATE_ALIVE_KEY_MAX], val[GATE_VALUE_MAX];
    size_t olen = 0;
    const char *owner = lock_owner(it->lock, strlen(it->lock), &olen);

    if (!owner) {
        it->lock[0] = '\0'; /* "P" with no owner to ask about: wait for it to expire */
        return 0;
    }
    /* KEYS: the lock, its owner's alive key; ARGV: the lock as read, that owner, ours, TTL. */
    const char *argv[9] = {eval ? "EVAL" : "EVALSHA",
                           eval ? takeover_script : g->takeover_sha,
                           "2",
                           key,
                           alive,
                           it->lock,
                           owner,
                           val,
                           ttl};
    size_t argvlen[9] = {
        strlen(argv[0]),
        strlen(argv[1]),
        1,
        gate_key(g, it->token, key, sizeof(key)),
        gate_alive_key(g, owner, gate_owner_id(owner, olen), alive, sizeof(alive)),
        strlen(it->lock),
        olen,
        gate_lock_value(g, it->event_id, val),
        strlen(ttl),
    };

    return redisAppendCommandArgv(g->c, 9, argv, argvlen) == REDIS_OK ? 1 : -1;
}

/* gate_takeover's burst: its items, and the first one the next answer may be for. */
struct takeover {
    struct gate_item *const *items;
    size_t n, next;
    char ttl[24];
    int taken;
};

static int takeover_append(struct gate *g, void *arg, int eval)
{
    struct takeover *t = arg;
    int sent = 0, rc;

    t->next = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (!takeover_candidate(t->items[i]))
            continue;
        if ((rc = append_takeover(g, t->items[i], t->ttl, eval)) < 0)
            return -1;
        sent += rc;
    }
    return sent;
}

/* The replies come in the order sent: the same candidates, in the same order. */
static void takeover_answer(struct gate *g, void *arg, const redisReply *r)
{
    struct takeover *t = arg;
    struct gate_item *it;

    while (t->next < t->n && !takeover_candidate(t->items[t->next]))
        t->next++;
    if (t->next == t->n)
        return;
    it = t->items[t->next++];
    if (!r)
        return; /* NOSCRIPT: still a candidate, asked again with the script's body */
    if (r->type == REDIS_REPLY_INTEGER && r->integer == 1) {
        it->action = GATE_OURS;
        gate_lock_value(g, it->event_id, it->lock);
        t->taken++;
    } else {
        it->lock[0] = '\0';
    }
}

/*
 * One round trip for the candidates among items: each lock whose owner's
 * alive key no longer names that owner becomes ours (GATE_OURS, our value
 * in lock); the others stay GATE_BUSY. The number taken, or -1 on an error
 * (the caller drops the connection if it is not dropped yet).
 */
static int gate_takeover(struct gate *g, struct gate_item *const *items, size_t n)
{
    struct takeover t = {.items = items, .n = n};
    const struct script_calls calls = {
        .append = takeover_append, .answer = takeover_answer, .arg = &t};

    snprintf(t.ttl, sizeof(t.ttl), "%lld", (long long)g->lock_ttl_ms);
    if (gate_run_scripts(g, &calls) != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (items[i]->action == GATE_BUSY)
            items[i]->lock[0] = '\0';
    return t.taken;
}

/*
 * Append one `SET <prefix><token> <val> PX <px>` (with NX GET when lock:
 * take it only if free, and say what was there). 1 when appended.
 */
static int append_set(struct gate *g, const char *token, const char *val, size_t vlen,
                      const char *px, size_t pxlen, int lock)
{
    char key[GATE_KEY_MAX];
    size_t klen = gate_key(g, token, key, sizeof(key));
    const char *argv[7] = {"SET", key, val, "PX", px, "NX", "GET"};
    size_t argvlen[7] = {3, klen, vlen, 2, pxlen, 2, 3};

    return redisAppendCommandArgv(g->c, lock ? 7 : 5, argv, argvlen) == REDIS_OK;
}

/* A lock (SET NX GET) per item, then the namespace check: 1 when the check was appended. */
static int append_locks(struct gate *g, struct gate_item *const *items, size_t n)
{
    char val[GATE_VALUE_MAX], ttl[24];
    int tlen = snprintf(ttl, sizeof(ttl), "%lld", (long long)g->lock_ttl_ms);

    for (size_t i = 0; i < n; i++)
        append_set(g, items[i]->token, val, gate_lock_value(g, items[i]->event_id, val), ttl,
                   (size_t)tlen, 1);
    /* After the locks, so that its answer covers what they read: see check_after_locks. */
    return append_identity(g);
}

/* What SET ... NX GET answered for it: its action and lock. 1 when another owner holds it. */
static int lock_reply(struct gate *g, struct gate_item *it, const redisReply *r)
{
    if (r->type == REDIS_REPLY_NIL) {
        it->action = GATE_OURS;
        gate_lock_value(g, it->event_id, it->lock);
        return 0;
    }
    if (r->type != REDIS_REPLY_STRING) {
        if (r->type == REDIS_REPLY_ERROR && !g->warned_error_reply) {
            log_warn("redis refused SET NX GET (Redis >= 7 needed?), PostgreSQL decides",
                     "error=\"%s\"", r->str);
            g->warned_error_reply = 1;
        }
        it->action = GATE_OPEN;
        return 0;
    }
    it->action = gate_decide(r->str, r->len, g->owner);
    if (it->action != GATE_OURS && it->action != GATE_BUSY)
        return 0;
    /*
     * Ours (re-acquired): the value to compare is the one in Redis.
     * Another owner's: the value a takeover compares.
     */
    if (r->len >= sizeof(it->lock)) {
        it->lock[0] = '\0';
        if (it->action == GATE_OURS)
            it->action = GATE_OPEN;
        return 0;
    }
    memcpy(it->lock, r->str, r->len);
    it->lock[r->len] = '\0';
    return it->action == GATE_BUSY;
}

/*
 * The namespace check sent after the locks: 0 when the prefix still names
 * our database after the SETs ran, so nothing they read (a done marker
 * above all) was written for another database: one that claimed the
 * prefix after ours was evicted or flushed would still hold it. If not,
 * the answers are worth nothing: the locks just taken there are given
 * back and the connection dropped, so PostgreSQL decides until the prefix
 * is ours again (-1; also when the connection failed).
 */
static int check_after_locks(struct gate *g, struct gate_item *const *items, size_t n)
{
    char why[GATE_PREFIX_MAX + 128];
    redisReply *r = gate_reply(g);
    int foreign;

    if (!r)
        return -1;
    foreign = identity_reply(g, r, why, sizeof(why)) != 0;
    freeReplyObject(r);
    if (!foreign)
        return 0;
    gate_release(g, items, n);
    if (g->c)
        gate_disconnect(g, why);
    return -1;
}

int gate_acquire(struct gate *g, struct gate_item *const *items, size_t n)
{
    size_t i, busy = 0;
    int checked, taken;

    for (i = 0; i < n; i++)
        items[i]->action = GATE_OPEN;
    if (n == 0)
        return 0;
    if (gate_ready(g) != 0)
        return -1;
    checked = append_locks(g, items, n);
    for (i = 0; i < n; i++) {
        redisReply *r = gate_reply(g);

        if (!r)
            goto fail;
        busy += (size_t)lock_reply(g, items[i], r);
        freeReplyObject(r);
    }
    if (checked && check_after_locks(g, items, n) != 0)
        goto fail;
    if (busy > 0) {
        if ((taken = gate_takeover(g, items, n)) < 0)
            goto fail;
        if (taken > 0)
            log_info("took over locks of dead owners", "count=%d", taken);
    }
    return 0;
fail:
    for (i = 0; i < n; i++)
        items[i]->action = GATE_OPEN;
    if (g->c)
        gate_disconnect(g, g->c->errstr[0] ? g->c->errstr : "no reply");
    return -1;
}

/* Append one script call releasing those of items[from..to) we hold; 1 if one was sent. */
static size_t gate_release_chunk(struct gate *g, struct gate_item *const *items, size_t from,
                                 size_t to, int use_eval)
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
    argv[argc++] = use_eval ? release_script : g->release_sha;
    argv[argc++] = numkeys;
    for (i = 0; i < argc; i++)
        argvlen[i] = strlen(argv[i]);
    /* KEYS, then ARGV: per key the lock we hold. */
    for (i = from; i < to; i++)
        if (items[i]->action == GATE_OURS) {
            argvlen[argc] = gate_key(g, items[i]->token, g->keys[k], sizeof(g->keys[k]));
            argv[argc++] = g->keys[k++];
        }
    for (i = from; i < to; i++)
        if (items[i]->action == GATE_OURS) {
            argvlen[argc] = strlen(items[i]->lock);
            argv[argc++] = items[i]->lock;
        }
    return redisAppendCommandArgv(g->c, (int)argc, argv, argvlen) == REDIS_OK;
}

/*
 * Mark recorded tokens done: a plain `SET key 1 PX window` each,
 * pipelined, not waited for. It needs no compare-and-set: the caller marks
 * only tokens PostgreSQL has just confirmed are recorded, so the marker is
 * true whoever holds the key (a lock of another owner that expired onto
 * ours, or one still recording the same vote: its marker is the same, and
 * its release, a compare-and-delete, finds the marker and does nothing).
 * A script call per chunk cost about five times the Redis time. Items whose
 * gate answer was GATE_OPEN are marked too, so their later copies stop in
 * Redis.
 */
int gate_mark_done(struct gate *g, struct gate_item *const *items, size_t n)
{
    char window[32];
    size_t i, sent = 0;
    int wlen = snprintf(window, sizeof(window), "%lld", (long long)g->window_ms);

    if (n == 0)
        return 0;
    if (gate_ready(g) != 0)
        return -1;
    for (i = 0; i < n; i++)
        sent += append_set(g, items[i]->token, GATE_DONE_VALUE, sizeof(GATE_DONE_VALUE) - 1, window,
                           (size_t)wlen, 0);
    if (gate_flush(g) != 0)
        return -1;
    gate_expect(g, PEND_PLAIN, sent, NULL);
    return 0;
}

/* gate_release's burst: a script call per GATE_SETTLE_CHUNK items (see gate_release_chunk). */
struct release {
    struct gate_item *const *items;
    size_t n;
};

static int release_append(struct gate *g, void *arg, int eval)
{
    const struct release *rl = arg;
    size_t sent = 0;

    for (size_t i = 0; i < rl->n; i += GATE_SETTLE_CHUNK)
        sent += gate_release_chunk(
            g, rl->items, i, i + GATE_SETTLE_CHUNK < rl->n ? i + GATE_SETTLE_CHUNK : rl->n, eval);
    return (int)sent;
}

/*
 * Release every lock we hold (compare-and-delete), GATE_SETTLE_CHUNK keys a
 * script call, all calls in one round trip, waiting for the replies (the
 * number of keys deleted: nothing to act on).
 */
int gate_release(struct gate *g, struct gate_item *const *items, size_t n)
{
    struct release rl = {.items = items, .n = n};
    const struct script_calls calls = {.append = release_append, .arg = &rl};

    if (gate_ready(g) != 0)
        return -1;
    return gate_run_scripts(g, &calls);
}

int gate_heartbeat(struct gate *g)
{
    int64_t now = util_now_ms();
    int checked;

    if (g->c && now < g->next_beat)
        return 0;
    if (gate_ready(g) != 0)
        return -1;
    if (now < g->next_beat)
        return 0; /* just (re)connected: gate_connect wrote the alive key */
    redisAppendCommand(g->c, "SET %s %s PX %d", g->alive_key, g->owner, GATE_ALIVE_TTL_MS);
    checked = append_identity(g);
    if (gate_flush(g) != 0)
        return -1;
    gate_expect(g, PEND_PLAIN, 1, NULL);
    if (checked)
        gate_expect(g, PEND_IDENTITY, 1, NULL);
    g->next_beat = now + GATE_HEARTBEAT_MS;
    return 0;
}

void gate_retire(struct gate *g)
{
    redisReply *r;

    if (!g || gate_ready(g) != 0)
        return; /* best effort: the key expires by itself within GATE_ALIVE_TTL_MS */
    r = redisCommand(g->c, "EVAL %s 1 %s %s", retire_script, g->alive_key, g->owner);
    if (!r) {
        gate_disconnect(g, g->c->errstr[0] ? g->c->errstr : "no reply");
        return;
    }
    freeReplyObject(r);
}

int gate_is_down(const struct gate *g, char *where, size_t wheresize)
{
    if (where)
        snprintf(where, wheresize, "%s:%d", redisconn_host(g->rc), redisconn_port(g->rc));
    return redisconn_is_down(g->rc);
}

const char *const gate_stat_names[GATE_NSTATS] = {"consumed", "inserted", "dup_redis", "dup_db",
                                                  "dead_lettered"};

int gate_add_stats(struct gate *g, const char *group, const int64_t totals[GATE_NSTATS])
{
    char key[GATE_KEY_MAX];
    int64_t deltas[GATE_NSTATS] = {0};
    size_t i, n = GATE_NSTATS, changed = 0;

    for (i = 0; i < n; i++)
        changed += totals[i] != g->stats_sent[i];
    if (changed == 0)
        return 0;
    /* Draining may confirm a burst or, losing the connection, take back what was sent. */
    if (gate_ready(g) != 0)
        return -1;
    for (i = 0, changed = 0; i < n; i++)
        changed += (deltas[i] = totals[i] - g->stats_sent[i]) != 0;
    if (changed == 0)
        return 0;
    snprintf(key, sizeof(key), "%s%s%s", g->prefix, GATE_STATS_KEY, group);
    redisAppendCommand(g->c, "MULTI");
    for (i = 0; i < n; i++)
        if (deltas[i] != 0)
            redisAppendCommand(g->c, "HINCRBY %s %s %lld", key, gate_stat_names[i],
                               (long long)deltas[i]);
    redisAppendCommand(g->c, "EXEC");
    /* Replies are read by a later call (gate_drain): +OK, QUEUED..., then the EXEC. */
    if (gate_flush(g) != 0)
        return -1;
    gate_expect(g, PEND_PLAIN, changed + 1, NULL);
    gate_expect(g, PEND_STATS, 1, deltas);
    for (i = 0; i < n; i++)
        g->stats_sent[i] += deltas[i];
    return 0;
}

/* ------------------------------------------------------------ readers */

/* One command of a reader, waited for: its reply, or NULL with errstr set. */
static redisReply *gate_read(struct gate *g, char *errstr, size_t errsize, const char *fmt, ...)
{
    redisReply *r;
    va_list ap;

    if (gate_ready(g) != 0) {
        snprintf(errstr, errsize, "redis %s:%d is unreachable", redisconn_host(g->rc),
                 redisconn_port(g->rc));
        return NULL;
    }
    va_start(ap, fmt);
    r = redisconn_vcommand(g->rc, errstr, errsize, fmt, ap);
    va_end(ap);
    if (!r && redisconn_is_down(g->rc))
        g->c = NULL; /* an I/O error dropped it; an error reply leaves it up */
    return r;
}

int gate_peek(struct gate *g, const char *token, enum gate_state *state, char *errstr,
              size_t errsize)
{
    char key[GATE_KEY_MAX];
    redisReply *r;

    *state = GATE_STATE_NONE;
    gate_key(g, token, key, sizeof(key));
    if (!(r = gate_read(g, errstr, errsize, "GET %s", key)))
        return -1;
    if (r->type == REDIS_REPLY_STRING && r->len >= 2 && r->str[0] == 'P' && r->str[1] == ' ')
        *state = GATE_STATE_PENDING;
    else if (r->type == REDIS_REPLY_STRING && gate_decide(r->str, r->len, "") == GATE_DUPLICATE)
        *state = GATE_STATE_DONE;
    freeReplyObject(r);
    return 0;
}

int gate_read_stats(struct gate *g, const char *group, int64_t vals[GATE_NSTATS], char *errstr,
                    size_t errsize)
{
    char key[GATE_KEY_MAX];
    redisReply *r;

    memset(vals, 0, sizeof(int64_t) * GATE_NSTATS);
    snprintf(key, sizeof(key), "%s%s%s", g->prefix, GATE_STATS_KEY, group);
    if (!(r = gate_read(g, errstr, errsize, "HMGET %s %s %s %s %s %s", key, gate_stat_names[0],
                        gate_stat_names[1], gate_stat_names[2], gate_stat_names[3],
                        gate_stat_names[4])))
        return -1;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == GATE_NSTATS)
        for (size_t i = 0; i < GATE_NSTATS; i++)
            if (r->element[i]->type == REDIS_REPLY_STRING &&
                util_parse_i64(r->element[i]->str, &vals[i]) != 0)
                vals[i] = 0;
    freeReplyObject(r);
    return 0;
}
