/*
 * ratelimit.c - per-client token buckets in a fixed set-associative table.
 * See ratelimit.h.
 */
#include "ratelimit.h"
#include "util.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#define RL_WAYS        4
#define RL_STRIPES     64
#define RL_SLOTS_MIN   64
#define RL_SEED_LEN    16
#define RL_KEY_INLINE  64   /* longer keys are reduced to their FNV-1a first */
#define RL_EPS         1e-9 /* a token short of this much still counts as whole */
#define RL_SECONDS_MAX 1e15 /* caps reset/retry for absurdly slow rates */
#define RL_DECIMALS    9

struct rl_entry {
    uint64_t id; /* the key's seeded hash; 0: an empty way */
    int64_t last_ms;
    double tokens;
};

struct ratelimit {
    double per_ms; /* tokens a millisecond */
    double burst;
    size_t slots;
    size_t set_mask; /* sets - 1 */
    unsigned char seed[RL_SEED_LEN];
    pthread_mutex_t locks[RL_STRIPES]; /* set s is guarded by locks[s % RL_STRIPES] */
    struct rl_entry *table;            /* slots entries; each set MRU first */
};

/* The seconds in a rate's unit, "s", "m" or "h": 0, or -1 for any other text. */
static int rate_unit(const char *unit, double *seconds)
{
    static const struct {
        const char *name;
        double seconds;
    } units[] = {{"s", 1}, {"m", 60}, {"h", 3600}};

    for (size_t i = 0; i < UTIL_ARRAY_LEN(units); i++)
        if (strcmp(unit, units[i].name) == 0) {
            *seconds = units[i].seconds;
            return 0;
        }
    return -1;
}

int ratelimit_parse_rate(const char *text, double *per_second, char *errstr, size_t errsize)
{
    const char *p = text;
    double whole = 0, frac = 0, scale = 1, unit_s = 1, rate;
    int nwhole = 0, nfrac = 0;

    if (!text || !*text) {
        snprintf(errstr, errsize, "empty rate: expected e.g. 100/s, 6000/m or 0.5/s");
        return -1;
    }
    if (*p == '-') {
        snprintf(errstr, errsize, "rate \"%.64s\": must be above 0", text);
        return -1;
    }
    for (; *p >= '0' && *p <= '9'; p++, nwhole++)
        whole = whole * 10 + (*p - '0'); /* huge: +inf, refused below as too high */
    if (*p == '.') {
        for (p++; *p >= '0' && *p <= '9'; p++, nfrac++) {
            if (nfrac == RL_DECIMALS) {
                snprintf(errstr, errsize, "rate \"%.64s\": at most %d decimals", text, RL_DECIMALS);
                return -1;
            }
            frac = frac * 10 + (*p - '0');
            scale *= 10;
        }
        if (nfrac == 0)
            nwhole = 0; /* "5." is not a number */
    }
    if (nwhole == 0) {
        snprintf(errstr, errsize,
                 "rate \"%.64s\": expected a number such as 100 or 0.5, then /s, /m or /h", text);
        return -1;
    }
    if (*p == '/') {
        if (rate_unit(p + 1, &unit_s) != 0) {
            snprintf(errstr, errsize, "rate \"%.64s\": unknown unit \"%.16s\", expected s, m or h",
                     text, p + 1);
            return -1;
        }
    } else if (*p != '\0') {
        snprintf(errstr, errsize, "rate \"%.64s\": junk after the number", text);
        return -1;
    }
    rate = (whole + frac / scale) / unit_s;
    if (!(rate > 0)) {
        snprintf(errstr, errsize, "rate \"%.64s\": must be above 0", text);
        return -1;
    }
    if (rate > RATELIMIT_RATE_MAX) {
        snprintf(errstr, errsize, "rate \"%.64s\": above the most, %.0f/s", text,
                 RATELIMIT_RATE_MAX);
        return -1;
    }
    *per_second = rate;
    return 0;
}

struct ratelimit *ratelimit_new(double per_second, int64_t burst, size_t slots)
{
    struct ratelimit *rl;
    size_t n = RL_SLOTS_MIN;

    if (!(per_second > 0 && per_second <= RATELIMIT_RATE_MAX) || burst < 1 ||
        burst > RATELIMIT_BURST_MAX || slots > RATELIMIT_SLOTS_MAX)
        return NULL;
    while (n < slots)
        n <<= 1;
    rl = xcalloc(1, sizeof(*rl));
    rl->per_ms = per_second / 1000;
    rl->burst = (double)burst;
    rl->slots = n;
    rl->set_mask = n / RL_WAYS - 1;
    rl->table = xcalloc(n, sizeof(*rl->table));
    for (size_t i = 0; i < RL_STRIPES; i++)
        pthread_mutex_init(&rl->locks[i], NULL);
    /* Without getrandom(2) the sets are still spread, just not secret. */
    if (getrandom(rl->seed, sizeof(rl->seed), 0) != (ssize_t)sizeof(rl->seed)) {
        uint64_t fallback[2] = {(uint64_t)util_wall_ms() ^ (uint64_t)getpid(),
                                (uint64_t)(uintptr_t)rl};
        memcpy(rl->seed, fallback, sizeof(rl->seed));
    }
    return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (!rl)
        return;
    for (size_t i = 0; i < RL_STRIPES; i++)
        pthread_mutex_destroy(&rl->locks[i]);
    free(rl->table);
    free(rl);
}

/* MurmurHash3's finalizer: FNV-1a's low bits, which pick the set, are weak. */
static uint64_t mix64(uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static uint64_t key_id(const struct ratelimit *rl, const void *key, size_t keylen)
{
    unsigned char buf[RL_SEED_LEN + RL_KEY_INLINE];
    uint64_t reduced, id;

    if (keylen > RL_KEY_INLINE) {
        reduced = util_fnv1a64(key, keylen);
        key = &reduced;
        keylen = sizeof(reduced);
    }
    memcpy(buf, rl->seed, RL_SEED_LEN);
    if (keylen > 0)
        memcpy(buf + RL_SEED_LEN, key, keylen);
    id = mix64(util_fnv1a64(buf, RL_SEED_LEN + keylen));
    return id ? id : 1; /* 0 marks an empty way */
}

/* Whole seconds (rounded up) until the bucket has `shortfall` more tokens. */
static int64_t seconds_until(const struct ratelimit *rl, double shortfall)
{
    double ms, s;

    if (shortfall <= RL_EPS)
        return 0;
    ms = ceil((shortfall - RL_EPS) / rl->per_ms); /* the clock ticks in whole ms */
    s = ceil(ms / 1000);
    return s < RL_SECONDS_MAX ? (int64_t)s : (int64_t)RL_SECONDS_MAX;
}

/* Refill key's bucket to now_ms and, if take, take a token: *v says how it stands. */
static int visit(struct ratelimit *rl, const void *key, size_t keylen, int64_t now_ms, int take,
                 struct ratelimit_verdict *v)
{
    uint64_t id = key_id(rl, key, keylen);
    size_t set = (size_t)(id & rl->set_mask);
    struct rl_entry *ways = rl->table + set * RL_WAYS;
    pthread_mutex_t *lock = &rl->locks[set % RL_STRIPES];
    struct rl_entry e;
    size_t i;
    int allowed;

    pthread_mutex_lock(lock);
    for (i = 0; i < RL_WAYS && ways[i].id != id; i++)
        ;
    if (i < RL_WAYS) {
        e = ways[i];
        /* A clock that went back gives nothing and takes nothing: last stays. */
        if (now_ms > e.last_ms) {
            e.tokens += ((double)now_ms - (double)e.last_ms) * rl->per_ms;
            if (e.tokens > rl->burst)
                e.tokens = rl->burst;
            e.last_ms = now_ms;
        }
    } else {
        /* The last way is empty or the least recently used: its client is forgotten. */
        i = RL_WAYS - 1;
        e = (struct rl_entry){.id = id, .last_ms = now_ms, .tokens = rl->burst};
    }
    allowed = e.tokens >= 1 - RL_EPS;
    if (take) {
        if (allowed)
            e.tokens = e.tokens > 1 ? e.tokens - 1 : 0;
        memmove(ways + 1, ways, i * sizeof(*ways)); /* most recently used first */
        ways[0] = e;
    }
    pthread_mutex_unlock(lock);

    v->allowed = allowed;
    v->limit = (int64_t)rl->burst;
    v->remaining = allowed ? (int64_t)floor(e.tokens + RL_EPS) : 0;
    v->reset_s = seconds_until(rl, rl->burst - e.tokens);
    v->retry_after_s = 0;
    if (!allowed) {
        v->retry_after_s = seconds_until(rl, 1 - e.tokens);
        if (v->retry_after_s < 1)
            v->retry_after_s = 1;
    }
    return allowed;
}

int ratelimit_take(struct ratelimit *rl, const void *key, size_t keylen, int64_t now_ms,
                   struct ratelimit_verdict *v)
{
    return visit(rl, key, keylen, now_ms, 1, v);
}

int ratelimit_peek(struct ratelimit *rl, const void *key, size_t keylen, int64_t now_ms,
                   struct ratelimit_verdict *v)
{
    return visit(rl, key, keylen, now_ms, 0, v);
}

size_t ratelimit_slots(const struct ratelimit *rl)
{
    return rl->slots;
}

size_t ratelimit_bytes(const struct ratelimit *rl)
{
    return sizeof(*rl) + rl->slots * sizeof(*rl->table);
}
