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
 *   idem_hash_hex(body, len, hex)               hex[IDEM_HASH_HEX], SHA-256
 *   idem_inflight_value(hex, event_id, buf, n)  the value claimed with SET NX
 *   idem_accepted_value(hex, body, buf, n)      the value stored after the 202
 *   idem_decide(old, hex, &body, &len)          what to answer when the key existed
 *
 * The Redis side never runs on an HTTP thread: a stalled Redis (stopped,
 * overloaded, packets lost) must not hold votes without the header, or
 * /healthz. IDEM_THREADS workers, each with its own connection
 * (redisconn.h), take the Redis calls from queues of their own; a key always
 * goes to the same worker (its hash picks it), so a settle queued before a
 * 202 is sent runs before the claim of the client's retry. Claiming is one
 * `SET <prefix>idem:<key> <value> NX PX <ttl> GET`; settling and releasing
 * are compare-and-set / compare-and-delete scripts, so a request only ever
 * changes its own value.
 *
 * A claim is the caller's (embed it in the request) and is answered through
 * its done() callback, which says whether the answer was still wanted: a
 * requester whose deadline passed (it answered 503) returns 1, and a key
 * the claim took anyway is released at once. A claim still queued at its
 * deadline is not sent. Settles and releases are copied and forgotten by
 * the caller. Queues are bounded (IDEM_QUEUE_MAX a worker): a claim that
 * finds its queue full fails at once; a settle or release is dropped with
 * a warning (the in-flight marker then expires by itself).
 *
 *   im = idem_new(redis_url, prefix, timeout_ms, err, sizeof err);
 *        timeout_ms: each Redis connect and command, and what a caller waits
 *   idem_claim(im, &claim)                         0 queued, -1 full or stopping
 *   idem_settle(im, key, expect, value, ttl_ms)    "inflight ..." -> "done ..."
 *   idem_release(im, key, expect)                  delete "inflight ..." (ours only)
 *   idem_stop(im);     queued claims fail (shutting_down), settles and
 *                      releases still run, the workers are joined
 *   idem_free(im);
 */
#ifndef TADAK_IDEM_H
#define TADAK_IDEM_H

#include <stddef.h>
#include <stdint.h>

#define IDEM_HASH_HEX 65 /* 64 hex digits + NUL */

enum idem_verdict {
    IDEM_REPLAY,      /* "done", same body: answer the stored 202 again */
    IDEM_IN_PROGRESS, /* "inflight", same body: 409, the first is still running */
    IDEM_MISMATCH,    /* the key was used with another body (or holds junk): 422 */
};

void idem_hash_hex(const char *body, size_t len, char hex[IDEM_HASH_HEX]);
int idem_inflight_value(const char *hex, const char *event_id, char *buf, size_t size);
int idem_accepted_value(const char *hex, const char *body, char *buf, size_t size);
enum idem_verdict idem_decide(const char *old, const char *hex, const char **body, size_t *len);

#define IDEM_THREADS   2
#define IDEM_QUEUE_MAX 1024
#define IDEM_OLD_MAX   1024 /* a stored value longer than this is cut (and will not match) */

/* One claim, owned by the caller (embed it in the request). */
struct idem_claim {
    /*
     * Called once, from a worker (or idem_stop): 0 the answer was taken, 1
     * the requester gave up (then a key this claim took is released).
     */
    int (*done)(struct idem_claim *c);
    const char *key, *value; /* the caller's: valid until done() */
    int64_t ttl_ms;
    int64_t deadline_ms; /* monotonic: still queued by then, it is not sent */

    /* The answer. */
    int failed;        /* Redis could not be asked or did not answer: why says */
    int shutting_down; /* failed because idem_stop ran */
    int existed;       /* the key was there: old is its value */
    char old[IDEM_OLD_MAX];
    char why[256];
};

struct idem;

struct idem *idem_new(const char *redis_url, const char *prefix, int64_t timeout_ms, char *errstr,
                      size_t errsize);
void idem_stop(struct idem *im);
void idem_free(struct idem *im);
int idem_claim(struct idem *im, struct idem_claim *c);
void idem_settle(struct idem *im, const char *key, const char *expect, const char *value,
                 int64_t ttl_ms);
void idem_release(struct idem *im, const char *key, const char *expect);

#endif
