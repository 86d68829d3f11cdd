/*
 * idem.h - Idempotency-Key for POST /votes: the values kept in Redis, the
 * decision they lead to (pure functions), and the Redis calls themselves.
 *
 * Following the IETF httpapi idempotency-key draft, a client that sends the
 * same key again gets the same answer, and no second event is published.
 * The key <prefix>idem:<key> holds one of
 *
 *   "inflight <hash> <event_id>"   a request with this key is being published;
 *                                  expires after the delivery timeout + margin
 *   "done <hash> <202 body>"       it was accepted; kept for the window
 *
 * where <hash> is the SHA-256 of the request body (64 hex digits, libcrypto):
 * a fingerprint nobody can make two bodies share on purpose, so a key cannot
 * be replayed with another body. The event id makes an in-flight value
 * unique to one request, so releasing it after a failure (compare-and-delete)
 * never removes another request's marker.
 *
 * The previous version fingerprinted with FNV-1a 64 (16 hex digits). Its
 * values are still honoured, compared with idem_legacy_hex() of the body,
 * until they expire: drop that once one --idempotency-window-s has passed.
 *
 *   idem_hash_hex(body, len, hex)               hex[IDEM_HASH_HEX], SHA-256
 *   idem_legacy_hex(body, len, hex)             hex[IDEM_LEGACY_HEX], FNV-1a 64
 *   idem_inflight_value(hex, event_id, buf, n)  the value claimed with SET NX
 *   idem_accepted_value(hex, body, buf, n)          the value stored after the 202
 *   idem_decide(old, hex, legacy_or_null, &body, &len)   what to answer when the key existed
 *
 * The Redis side has its own connection (redisconn.h), under a mutex shared
 * by the HTTP threads: it is on the vote path, so no status read ever holds
 * it. Claiming is one `SET <prefix>idem:<key> <value> NX PX <ttl> GET`;
 * settling and releasing are compare-and-set / compare-and-delete scripts,
 * so a request only ever changes its own value.
 *
 *   im = idem_new(redis_url, prefix, err, sizeof err);
 *   idem_claim(im, key, value, ttl_ms, old, sizeof old, &existed, err, sizeof err)
 *   idem_settle(im, key, expect, value, ttl_ms)    "inflight ..." -> "done ..."
 *   idem_release(im, key, expect)                  delete "inflight ..." (ours only)
 *   idem_free(im);
 */
#ifndef TADAK_IDEM_H
#define TADAK_IDEM_H

#include <stddef.h>
#include <stdint.h>

#define IDEM_HASH_HEX   65 /* 64 hex digits + NUL */
#define IDEM_LEGACY_HEX 17 /* 16 hex digits + NUL */

enum idem_verdict {
    IDEM_REPLAY,      /* "done", same body: answer the stored 202 again */
    IDEM_IN_PROGRESS, /* "inflight", same body: 409, the first is still running */
    IDEM_MISMATCH,    /* the key was used with another body (or holds junk): 422 */
};

void idem_hash_hex(const char *body, size_t len, char hex[IDEM_HASH_HEX]);
void idem_legacy_hex(const char *body, size_t len, char hex[IDEM_LEGACY_HEX]);
int idem_inflight_value(const char *hex, const char *event_id, char *buf, size_t size);
int idem_accepted_value(const char *hex, const char *body, char *buf, size_t size);
enum idem_verdict idem_decide(const char *old, const char *hex, const char *legacy_hex,
                              const char **body, size_t *len);

struct idem;

struct idem *idem_new(const char *redis_url, const char *prefix, char *errstr, size_t errsize);
void idem_free(struct idem *im);
int idem_claim(struct idem *im, const char *key, const char *value, int64_t ttl_ms, char *old,
               size_t oldsize, int *existed, char *errstr, size_t errsize);
int idem_settle(struct idem *im, const char *key, const char *expect, const char *value,
                int64_t ttl_ms);
int idem_release(struct idem *im, const char *key, const char *expect);

#endif
