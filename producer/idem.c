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

#define IDEM_CONNECT_MS 500
#define IDEM_COMMAND_MS 1000
#define IDEM_PREFIX_MAX 256
#define IDEM_KEY_MAX    (IDEM_PREFIX_MAX + 512)

static const char settle_script[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                    "redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) "
                                    "return 1 end return 0";
static const char release_script[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then "
                                     "return redis.call('DEL', KEYS[1]) end return 0";

struct idem {
    pthread_mutex_t lock; /* the connection is used by one HTTP thread at a time */
    struct redisconn *rc;
    char prefix[IDEM_PREFIX_MAX];
};

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

void idem_legacy_hex(const char *body, size_t len, char hex[IDEM_LEGACY_HEX])
{
    /* The standard FNV-1a 64 (offset basis 14695981039346656037), as the old values used. */
    snprintf(hex, IDEM_LEGACY_HEX, "%016" PRIx64, util_fnv1a64(body ? body : "", len));
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
 * <hash> is this body's: SHA-256 for 64 digits, the legacy FNV for 16.
 */
static const char *match(const char *old, const char *word, const char *hex, const char *legacy,
                         int *same)
{
    size_t w = strlen(word), h;

    *same = 0;
    if (strncmp(old, word, w) != 0 || old[w] != ' ')
        return NULL;
    old += w + 1;
    h = strcspn(old, " ");
    if (old[h] != ' ')
        return NULL;
    if (h == strlen(hex))
        *same = memcmp(old, hex, h) == 0;
    else if (legacy && h == strlen(legacy))
        *same = memcmp(old, legacy, h) == 0;
    return old + h + 1;
}

enum idem_verdict idem_decide(const char *old, const char *hex, const char *legacy_hex,
                              const char **body, size_t *len)
{
    const char *rest;
    int same;

    *body = NULL;
    *len = 0;
    if ((rest = match(old, "done", hex, legacy_hex, &same)) != NULL) {
        if (!same || *rest == '\0')
            return IDEM_MISMATCH;
        *body = rest;
        *len = strlen(rest);
        return IDEM_REPLAY;
    }
    if ((rest = match(old, "inflight", hex, legacy_hex, &same)) != NULL)
        return same ? IDEM_IN_PROGRESS : IDEM_MISMATCH;
    return IDEM_MISMATCH;
}

/* ------------------------------------------------------------ Redis */

struct idem *idem_new(const char *redis_url, const char *prefix, char *errstr, size_t errsize)
{
    struct idem *im = xcalloc(1, sizeof(*im));

    pthread_mutex_init(&im->lock, NULL);
    if (!prefix)
        prefix = "";
    if (strlen(prefix) >= sizeof(im->prefix)) {
        snprintf(errstr, errsize, "key prefix longer than %d bytes", IDEM_PREFIX_MAX - 1);
        goto fail;
    }
    util_strlcpy(im->prefix, prefix, sizeof(im->prefix));
    if (!(im->rc = redisconn_new(redis_url, "Idempotency-Key answers 503", IDEM_CONNECT_MS,
                                 IDEM_COMMAND_MS, errstr, errsize)))
        goto fail;
    return im;
fail:
    idem_free(im);
    return NULL;
}

void idem_free(struct idem *im)
{
    if (!im)
        return;
    redisconn_free(im->rc);
    pthread_mutex_destroy(&im->lock);
    free(im);
}

int idem_claim(struct idem *im, const char *key, const char *value, int64_t ttl_ms, char *old,
               size_t oldsize, int *existed, char *errstr, size_t errsize)
{
    redisReply *r;
    char ttl[24];
    int rc = -1;

    *existed = 0;
    old[0] = '\0';
    snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_ms);
    pthread_mutex_lock(&im->lock);
    r = redisconn_command(im->rc, errstr, errsize, "SET %sidem:%s %s NX PX %s GET", im->prefix, key,
                          value, ttl);
    pthread_mutex_unlock(&im->lock);
    if (!r)
        return -1;
    if (r->type == REDIS_REPLY_STRING) {
        *existed = 1;
        util_strlcpy(old, r->str, oldsize);
        rc = 0;
    } else if (r->type == REDIS_REPLY_NIL) {
        rc = 0;
    } else {
        snprintf(errstr, errsize, "unexpected reply type %d to SET NX GET", r->type);
    }
    freeReplyObject(r);
    return rc;
}

static int run_script(struct idem *im, const char *script, const char *key, int nargs,
                      const char *a1, const char *a2, const char *a3)
{
    char err[256], fullkey[IDEM_KEY_MAX];
    redisReply *r;
    int rc;

    snprintf(fullkey, sizeof(fullkey), "%sidem:%s", im->prefix, key);
    pthread_mutex_lock(&im->lock);
    if (nargs == 3)
        r = redisconn_command(im->rc, err, sizeof(err), "EVAL %s 1 %s %s %s %s", script, fullkey,
                              a1, a2, a3);
    else
        r = redisconn_command(im->rc, err, sizeof(err), "EVAL %s 1 %s %s", script, fullkey, a1);
    pthread_mutex_unlock(&im->lock);
    if (!r) {
        log_warn("idempotency marker not updated", "error=\"%s\"", err);
        return -1;
    }
    rc = r->type == REDIS_REPLY_INTEGER && r->integer == 1 ? 0 : -1;
    freeReplyObject(r);
    return rc;
}

int idem_settle(struct idem *im, const char *key, const char *expect, const char *value,
                int64_t ttl_ms)
{
    char ttl[24];

    snprintf(ttl, sizeof(ttl), "%" PRId64, ttl_ms);
    return run_script(im, settle_script, key, 3, expect, value, ttl);
}

int idem_release(struct idem *im, const char *key, const char *expect)
{
    return run_script(im, release_script, key, 1, expect, NULL, NULL);
}
