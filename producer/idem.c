/*
 * idem.c - Idempotency-Key values, decisions and their Redis calls. See idem.h.
 */
#include "idem.h"
#include "log.h"
#include "redisconn.h"
#include "util.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDEM_PREFIX_MAX 256
#define IDEM_KEY_MAX    (IDEM_PREFIX_MAX + 512)

static const char settle_script[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                    "redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) "
                                    "return 1 end return 0";
static const char release_script[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                     "return redis.call('DEL', KEYS[1]) end return 0";

void idem_hash_hex(const char *body, size_t len, char hex[IDEM_HASH_HEX])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    /* SHA-256 cannot fail on memory input; if libcrypto ever says otherwise, stop. */
    if (EVP_Digest(body ? body : "", len, md, &n, EVP_sha256(), NULL) != 1 || n != 32)
        abort();
    for (unsigned int i = 0; i < n; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[2 * n] = '\0';
}

static int fits(int n, size_t size)
{
    return (n < 0 || (size_t)n >= size) ? -1 : n;
}

int idem_inflight_value(const char *hex, const char *event_id, char *buf, size_t size)
{
    return fits(snprintf(buf, size, "inflight %s %s", hex, event_id), size);
}

int idem_accepted_value(const char *hex, const char *body, char *buf, size_t size)
{
    return fits(snprintf(buf, size, "done %s %s", hex, body), size);
}

/*
 * "<word> <hash> " at the start of old: the rest follows. *same says whether
 * <hash> is this body's (hex, all of it: a fingerprint cut short is another).
 */
static const char *match(const char *old, const char *word, const char *hex, int *same)
{
    size_t w = strlen(word), h;

    *same = 0;
    if (strncmp(old, word, w) != 0 || old[w] != ' ')
        return NULL;
    old += w + 1;
    h = strcspn(old, " ");
    if (old[h] != ' ')
        return NULL;
    *same = h == strlen(hex) && memcmp(old, hex, h) == 0;
    return old + h + 1;
}

enum idem_verdict idem_decide(const char *old, const char *hex, const char **body, size_t *len)
{
    const char *rest;
    int same;

    *body = NULL;
    *len = 0;
    if ((rest = match(old, "done", hex, &same)) != NULL) {
        if (!same || *rest == '\0')
            return IDEM_MISMATCH;
        *body = rest;
        *len = strlen(rest);
        return IDEM_REPLAY;
    }
    if ((rest = match(old, "inflight", hex, &same)) != NULL)
        return same ? IDEM_IN_PROGRESS : IDEM_MISMATCH;
    return IDEM_MISMATCH;
}

/* ------------------------------------------------------------ Redis */

enum op_kind { OP_CLAIM, OP_SETTLE, OP_RELEASE };

/* One queued Redis call. A claim's strings are its caller's; the others' are ours. */
struct op {
    enum op_kind kind;
    struct idem_claim *claim;         /* OP_CLAIM */
    char *key, *expect, *value, *ttl; /* settle and release */
    struct op *next;
};

struct worker {
    struct idem *im;
    pthread_t thread;
    struct redisconn *rc; /* this worker's alone: no lock around it */
    pthread_cond_t work;
    struct op *head, *tail;
    size_t queued;
};

struct idem {
    char prefix[IDEM_PREFIX_MAX];
    pthread_mutex_t lock; /* every worker's queue, stopping */
    int stopping;
    int started; /* workers running */
    struct worker workers[IDEM_THREADS];
};

static int claim_in_redis(struct worker *w, struct idem_claim *c)
{
    redisReply *r;
    char ttl[24];
    int rc = -1;

    snprintf(ttl, sizeof(ttl), "%" PRId64, c->ttl_ms);
    r = redisconn_command(w->rc, c->why, sizeof(c->why), "SET %sidem:%s %s NX PX %s GET",
                          w->im->prefix, c->key, c->value, ttl);
    if (!r)
        return -1;
    if (r->type == REDIS_REPLY_STRING) {
        c->existed = 1;
        util_strlcpy(c->old, r->str, sizeof(c->old));
        rc = 0;
    } else if (r->type == REDIS_REPLY_NIL) {
        rc = 0;
    } else {
        snprintf(c->why, sizeof(c->why), "unexpected reply type %d to SET NX GET", r->type);
    }
    freeReplyObject(r);
    return rc;
}

static int run_script(struct worker *w, const char *script, const char *key, int nargs,
                      const char *a1, const char *a2, const char *a3)
{
    char err[256], fullkey[IDEM_KEY_MAX];
    redisReply *r;
    int rc;

    snprintf(fullkey, sizeof(fullkey), "%sidem:%s", w->im->prefix, key);
    if (nargs == 3)
        r = redisconn_command(w->rc, err, sizeof(err), "EVAL %s 1 %s %s %s %s", script, fullkey, a1,
                              a2, a3);
    else
        r = redisconn_command(w->rc, err, sizeof(err), "EVAL %s 1 %s %s", script, fullkey, a1);
    if (!r) {
        log_warn("idempotency marker not updated", "error=\"%s\"", err);
        return -1;
    }
    rc = r->type == REDIS_REPLY_INTEGER && r->integer == 1 ? 0 : -1;
    freeReplyObject(r);
    return rc;
}

static void release_in_redis(struct worker *w, const char *key, const char *expect)
{
    run_script(w, release_script, key, 1, expect, NULL, NULL);
}

/* A claim: asked unless its time is up; a key taken for nobody is given back. */
static void run_claim(struct worker *w, struct idem_claim *c, int stopping)
{
    char key[IDEM_KEY_MAX], value[IDEM_KEY_MAX];
    int took;

    c->failed = c->shutting_down = c->existed = 0;
    c->old[0] = c->why[0] = '\0';
    if (stopping) {
        c->failed = c->shutting_down = 1;
        util_strlcpy(c->why, "shutting down", sizeof(c->why));
    } else if (util_now_ms() >= c->deadline_ms) {
        c->failed = 1;
        util_strlcpy(c->why, "queued until its deadline behind a slow Redis", sizeof(c->why));
    } else if (claim_in_redis(w, c) != 0) {
        c->failed = 1;
    }
    /* done() may free the claim's strings: keep what a release would need. */
    took = !c->failed && !c->existed && util_strlcpy(key, c->key, sizeof(key)) < sizeof(key) &&
           util_strlcpy(value, c->value, sizeof(value)) < sizeof(value);
    if (c->done(c) != 0 && took)
        release_in_redis(w, key, value);
}

static void run(struct worker *w, struct op *op, int stopping)
{
    switch (op->kind) {
    case OP_CLAIM:
        run_claim(w, op->claim, stopping);
        break;
    case OP_SETTLE:
        run_script(w, settle_script, op->key, 3, op->expect, op->value, op->ttl);
        break;
    case OP_RELEASE:
        release_in_redis(w, op->key, op->expect);
        break;
    }
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct idem *im = w->im;

    pthread_mutex_lock(&im->lock);
    for (;;) {
        struct op *op;
        int stopping;

        while (!w->head && !im->stopping)
            pthread_cond_wait(&w->work, &im->lock);
        if (!(op = w->head))
            break; /* stopping, and all that was queued is done */
        w->head = op->next;
        if (!w->head)
            w->tail = NULL;
        w->queued--;
        stopping = im->stopping;
        pthread_mutex_unlock(&im->lock);
        run(w, op, stopping);
        free(op);
        pthread_mutex_lock(&im->lock);
    }
    pthread_mutex_unlock(&im->lock);
    return NULL;
}

/* Queue op on its key's worker: 0, or -1 (full, or stopping) and op is freed. */
static int submit(struct idem *im, const char *key, struct op *op)
{
    struct worker *w = &im->workers[util_fnv1a64(key, strlen(key)) % IDEM_THREADS];
    int rc = -1;

    op->next = NULL;
    pthread_mutex_lock(&im->lock);
    if (!im->stopping && im->started == IDEM_THREADS && w->queued < IDEM_QUEUE_MAX) {
        if (w->tail)
            w->tail->next = op;
        else
            w->head = op;
        w->tail = op;
        w->queued++;
        pthread_cond_signal(&w->work);
        rc = 0;
    }
    pthread_mutex_unlock(&im->lock);
    if (rc != 0)
        free(op);
    return rc;
}

struct idem *idem_new(const char *redis_url, const char *prefix, int64_t timeout_ms, char *errstr,
                      size_t errsize)
{
    struct idem *im = xcalloc(1, sizeof(*im));
    int ms = timeout_ms > 0 && timeout_ms < 600000 ? (int)timeout_ms : 1000;

    pthread_mutex_init(&im->lock, NULL);
    for (int i = 0; i < IDEM_THREADS; i++) {
        im->workers[i].im = im;
        pthread_cond_init(&im->workers[i].work, NULL);
    }
    if (!prefix)
        prefix = "";
    if (strlen(prefix) >= sizeof(im->prefix)) {
        snprintf(errstr, errsize, "key prefix longer than %d bytes", IDEM_PREFIX_MAX - 1);
        goto fail;
    }
    util_strlcpy(im->prefix, prefix, sizeof(im->prefix));
    for (int i = 0; i < IDEM_THREADS; i++)
        if (!(im->workers[i].rc =
                  redisconn_new(redis_url, "Idempotency-Key answers 503", ms, ms, errstr, errsize)))
            goto fail;
    /*
     * One connect now: Redis down is an outage like any other (keyed votes
     * get 503 until it answers), but a certificate we cannot trust is a
     * setting to fix, said at start.
     */
    if (!redisconn_get(im->workers[0].rc) && redisconn_refused(im->workers[0].rc)) {
        snprintf(errstr, errsize, "%s", redisconn_refused(im->workers[0].rc));
        goto fail;
    }
    for (int i = 0; i < IDEM_THREADS; i++) {
        if (pthread_create(&im->workers[i].thread, NULL, worker_main, &im->workers[i]) != 0) {
            snprintf(errstr, errsize, "cannot start an Idempotency-Key thread");
            goto fail;
        }
        im->started = i + 1;
    }
    return im;
fail:
    idem_free(im);
    return NULL;
}

void idem_stop(struct idem *im)
{
    if (!im)
        return;
    pthread_mutex_lock(&im->lock);
    im->stopping = 1;
    for (int i = 0; i < IDEM_THREADS; i++)
        pthread_cond_broadcast(&im->workers[i].work);
    pthread_mutex_unlock(&im->lock);
    for (int i = 0; i < im->started; i++)
        pthread_join(im->workers[i].thread, NULL);
    im->started = 0;
}

void idem_free(struct idem *im)
{
    if (!im)
        return;
    idem_stop(im);
    for (int i = 0; i < IDEM_THREADS; i++) {
        redisconn_free(im->workers[i].rc);
        pthread_cond_destroy(&im->workers[i].work);
    }
    pthread_mutex_destroy(&im->lock);
    free(im);
}

int idem_claim(struct idem *im, struct idem_claim *c)
{
    struct op *op = xcalloc(1, sizeof(*op));

    op->kind = OP_CLAIM;
    op->claim = c;
    return submit(im, c->key, op);
}

/* A settle or release: the op and copies of its strings, in one allocation. */
static void submit_copy(struct idem *im, enum op_kind kind, const char *key, const char *expect,
                        const char *value, int64_t ttl_ms)
{
    char ttl[24];
    const char *src[] = {key, expect, value ? value : "", ttl};
    size_t len[UTIL_ARRAY_LEN(src)], total = 0;
    char **dst[UTIL_ARRAY_LEN(src)];
    struct op *op;
    char *p;

    snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_ms);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(src); i++)
        total += len[i] = strlen(src[i]) + 1;
    op = xcalloc(1, sizeof(*op) + total);
    op->kind = kind;
    dst[0] = &op->key, dst[1] = &op->expect, dst[2] = &op->value, dst[3] = &op->ttl;
    p = (char *)(op + 1);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(src); i++) {
        *dst[i] = memcpy(p, src[i], len[i]);
        p += len[i];
    }
    if (submit(im, key, op) != 0)
        log_warn("idempotency marker not updated", "error=\"queue full or stopping\" op=%s",
                 kind == OP_SETTLE ? "settle" : "release");
}

void idem_settle(struct idem *im, const char *key, const char *expect, const char *value,
                 int64_t ttl_ms)
{
    submit_copy(im, OP_SETTLE, key, expect, value, ttl_ms);
}

void idem_release(struct idem *im, const char *key, const char *expect)
{
    submit_copy(im, OP_RELEASE, key, expect, NULL, 0);
}
