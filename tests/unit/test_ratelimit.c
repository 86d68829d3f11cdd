/*
 * test_ratelimit.c - the producer's HTTP edge: who the client is and how
 * much it may send.
 *
 * ratelimit: a burst is allowed then refused with the right Retry-After,
 * RateLimit numbers and refill (whole and fractional rates, 20/m exact to
 * the millisecond); keys are independent; a clock going backwards neither
 * adds nor removes tokens; rates parse strictly; a flood of distinct keys
 * never grows the table, keeps a client used in between, and costs an
 * evicted client its memory (it comes back with a full bucket); two threads
 * hammering one key get exactly the burst between them.
 *
 * clientaddr: CIDRs parse strictly (prefix lengths, host bits, junk);
 * membership at /0, /32, /128 and for IPv4-mapped IPv6; the client behind
 * X-Forwarded-For is believed only from trusted proxies, walked from the
 * right, stopped by junk; the bucket key cuts IPv6 to its prefix and keeps
 * IPv4 (and IPv4-mapped) whole.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h> /* NAN */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <cmocka.h>

#include "clientaddr.h"
#include "ratelimit.h"
#include "util.h"

/* ---- ratelimit ---------------------------------------------------------- */

struct step {
    int64_t now_ms;
    int allowed;
    int64_t remaining, reset_s, retry_after_s;
};

/* A row as text, so a failure names the step and every number in it. */
static void verdict_text(char *buf, size_t size, size_t i, int64_t now_ms, int allowed,
                         int64_t limit, int64_t remaining, int64_t reset_s, int64_t retry_after_s)
{
    snprintf(buf, size,
             "step %zu at %lld ms: allowed %d limit %lld remaining %lld reset %lld retry %lld", i,
             (long long)now_ms, allowed, (long long)limit, (long long)remaining, (long long)reset_s,
             (long long)retry_after_s);
}

static void take_steps(struct ratelimit *rl, const char *key, int64_t burst, const struct step *s,
                       size_t n)
{
    for (size_t i = 0; i < n; i++) {
        struct ratelimit_verdict v;
        char got[160], want[160];
        int rc = ratelimit_take(rl, key, strlen(key), s[i].now_ms, &v);

        assert_int_equal(rc, v.allowed);
        verdict_text(got, sizeof(got), i, s[i].now_ms, v.allowed, v.limit, v.remaining, v.reset_s,
                     v.retry_after_s);
        verdict_text(want, sizeof(want), i, s[i].now_ms, s[i].allowed, burst, s[i].remaining,
                     s[i].reset_s, s[i].retry_after_s);
        assert_string_equal(got, want);
    }
}

static void test_burst_then_refusal(void **state)
{
    /* burst 3 at 1/s */
    static const struct step steps[] = {
        {0, 1, 2, 1, 0},      {0, 1, 1, 2, 0},
        {0, 1, 0, 3, 0},      {0, 0, 0, 3, 1}, /* the 4th is refused: a token is back in 1 s */
        {999, 0, 0, 3, 1},  /* 0.999 of a token is not one; 1 ms to go rounds up to 1 s */
        {1000, 1, 0, 3, 0}, /* one token back after 1000 ms */
        {1000, 0, 0, 3, 1},   {2500, 1, 0, 3, 0}, /* 1.5 tokens: one taken, half left */
        {2500, 0, 0, 3, 1},   {4000, 1, 1, 2, 0}, /* 2 tokens: one taken */
        {100000, 1, 2, 1, 0},                     /* refill stops at the burst */
        {100000, 1, 1, 2, 0},
    };
    struct ratelimit *rl = ratelimit_new(1, 3, 64);

    (void)state;
    assert_non_null(rl);
    take_steps(rl, "u:42", 3, steps, UTIL_ARRAY_LEN(steps));
    ratelimit_free(rl);
}

static void test_keys_independent(void **state)
{
    struct ratelimit *rl = ratelimit_new(1, 2, 64);
    struct ratelimit_verdict v;
    static const char a0[] = "a\0x", a1[] = "a\0y";

    (void)state;
    assert_true(ratelimit_take(rl, "u:1", 3, 0, &v));
    assert_true(ratelimit_take(rl, "u:1", 3, 0, &v));
    assert_false(ratelimit_take(rl, "u:1", 3, 0, &v));
    /* Another key, even a prefix of the first, has its own full bucket. */
    assert_true(ratelimit_take(rl, "u:10", 4, 0, &v));
    assert_int_equal(v.remaining, 1);
    assert_true(ratelimit_take(rl, "u:", 2, 0, &v));
    assert_int_equal(v.remaining, 1);
    assert_true(ratelimit_take(rl, "u:10", 4, 0, &v));
    assert_false(ratelimit_take(rl, "u:10", 4, 0, &v));
    assert_false(ratelimit_take(rl, "u:10", 4, 0, &v));
    /* Refusing u:10 took nothing from u:1, which refills on its own. */
    assert_true(ratelimit_take(rl, "u:1", 3, 1000, &v));
    assert_int_equal(v.remaining, 0);
    /* Bytes after a NUL are part of the key. */
    assert_true(ratelimit_take(rl, a0, sizeof(a0), 0, &v));
    assert_true(ratelimit_take(rl, a0, sizeof(a0), 0, &v));
    assert_false(ratelimit_take(rl, a0, sizeof(a0), 0, &v));
    assert_true(ratelimit_take(rl, a1, sizeof(a1), 0, &v));
    assert_int_equal(v.remaining, 1);
    /* A key longer than what is hashed inline is still itself. */
    {
        char long_a[200], long_b[200];

        memset(long_a, 'k', sizeof(long_a));
        memcpy(long_b, long_a, sizeof(long_b));
        long_b[sizeof(long_b) - 1] = 'j';
        assert_true(ratelimit_take(rl, long_a, sizeof(long_a), 0, &v));
        assert_true(ratelimit_take(rl, long_a, sizeof(long_a), 0, &v));
        assert_false(ratelimit_take(rl, long_a, sizeof(long_a), 0, &v));
        assert_true(ratelimit_take(rl, long_b, sizeof(long_b), 0, &v));
    }
    ratelimit_free(rl);
}

static void test_fractional_rates(void **state)
{
    static const struct step half[] = {
        /* 0.5/s, burst 1 */
        {0, 1, 0, 2, 0},    {0, 0, 0, 2, 2},    {1000, 0, 0, 1, 1},
        {1999, 0, 0, 1, 1}, {2000, 1, 0, 2, 0},
    };
    static const struct step per_minute[] = {
        /* 20/m = 1/3 per second, burst 1: a token every 3000 ms exactly */
        {0, 1, 0, 3, 0},    {0, 0, 0, 3, 3},    {2999, 0, 0, 1, 1},
        {3000, 1, 0, 3, 0}, {5999, 0, 0, 1, 1}, {6000, 1, 0, 3, 0},
    };
    static const struct step three[] = {
        /* 3/s, burst 1: a token every 333.3 ms; a bucket of one holds no more, so the
           1.002 at 334 is 1 and the next is due at 334 + 333.3 */
        {0, 1, 0, 1, 0}, {333, 0, 0, 1, 1}, {334, 1, 0, 1, 0}, {667, 0, 0, 1, 1}, {668, 1, 0, 1, 0},
    };
    static const struct step hourly[] = {
        /* 2/h, burst 2 */
        {0, 1, 1, 1800, 0},
        {0, 1, 0, 3600, 0},
        {0, 0, 0, 3600, 1800},
        {1800000, 1, 0, 3600, 0},
    };
    static const struct {
        const char *rate;
        int64_t burst;
        const struct step *steps;
        size_t n;
    } rows[] = {
        {"0.5/s", 1, half, UTIL_ARRAY_LEN(half)},
        {"20/m", 1, per_minute, UTIL_ARRAY_LEN(per_minute)},
        {"3/s", 1, three, UTIL_ARRAY_LEN(three)},
        {"2/h", 2, hourly, UTIL_ARRAY_LEN(hourly)},
    };

    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(rows); i++) {
        char err[128];
        double rate = 0;
        struct ratelimit *rl;

        assert_int_equal(ratelimit_parse_rate(rows[i].rate, &rate, err, sizeof(err)), 0);
        rl = ratelimit_new(rate, rows[i].burst, 64);
        assert_non_null(rl);
        take_steps(rl, "k", rows[i].burst, rows[i].steps, rows[i].n);
        ratelimit_free(rl);
    }
}

static void test_parse_rate_good(void **state)
{
    static const struct {
        const char *text;
        double want;
    } good[] = {
        {"100/s", 100},          {"100", 100},   {"6000/m", 100},       {"0.5/s", 0.5},
        {"2/h", 2.0 / 3600},     {"007/s", 7},   {"1000000000/s", 1e9}, {"60000000000/m", 1e9},
        {"0.000000001/s", 1e-9}, {"1.25", 1.25},
    };

    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(good); i++) {
        char err[128] = "", got[160], want[160];
        double rate = -1;
        int rc = ratelimit_parse_rate(good[i].text, &rate, err, sizeof(err));

        /* 12 significant digits: the same number up to rounding */
        snprintf(got, sizeof(got), "\"%s\": %d %.12g/s %s", good[i].text, rc, rate, err);
        snprintf(want, sizeof(want), "\"%s\": 0 %.12g/s ", good[i].text, good[i].want);
        assert_string_equal(got, want);
    }
}

static void test_parse_rate_bad(void **state)
{
    static const struct {
        const char *text;
        const char *why; /* a piece of the error */
    } bad[] = {
        {"", "empty"},
        {"abc", "expected a number"},
        {"0/s", "above 0"},
        {"0.000/m", "above 0"},
        {"-1/s", "above 0"},
        {"10/x", "unknown unit"},
        {"10/S", "unknown unit"},
        {"10/", "unknown unit"},
        {"10/s junk", "unknown unit"},
        {"10/s/s", "unknown unit"},
        {"1e99/s", "junk"},
        {"1e3", "junk"},
        {"1000000001/s", "above the most"},
        {"60000000060/m", "above the most"},
        {"99999999999999999999999999999999999999999999999/s", "above the most"},
        {"/s", "expected a number"},
        {".5/s", "expected a number"},
        {"5./s", "expected a number"},
        {"+5/s", "expected a number"},
        {" 10/s", "expected a number"},
        {"10 /s", "junk"},
        {"10/s ", "unknown unit"},
        {"0x10/s", "junk"},
        {"nan", "expected a number"},
        {"inf/s", "expected a number"},
        {"0.0000000001/s", "decimals"},
    };

    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bad); i++) {
        char err[128] = "", got[200], want[200];
        double rate = -1;
        int rc = ratelimit_parse_rate(bad[i].text, &rate, err, sizeof(err));

        /* refused, *per_second untouched, and the error says why */
        snprintf(got, sizeof(got), "\"%s\": %d %g, says \"%s\": %s", bad[i].text, rc, rate,
                 bad[i].why, strstr(err, bad[i].why) ? "yes" : err);
        snprintf(want, sizeof(want), "\"%s\": -1 -1, says \"%s\": yes", bad[i].text, bad[i].why);
        assert_string_equal(got, want);
    }
    {
        char err[128] = "";
        double got = -1;

        assert_int_equal(ratelimit_parse_rate(NULL, &got, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "empty"));
    }
}

static void test_new_arguments(void **state)
{
    static const struct {
        size_t asked, got;
    } sizes[] = {{0, 64}, {1, 64}, {64, 64}, {65, 128}, {1000, 1024}, {4096, 4096}};
    struct ratelimit *rl;

    (void)state;
    assert_null(ratelimit_new(0, 1, 64));
    assert_null(ratelimit_new(-1, 1, 64));
    assert_null(ratelimit_new(NAN, 1, 64));
    assert_null(ratelimit_new(2e9, 1, 64));
    assert_null(ratelimit_new(1, 0, 64));
    assert_null(ratelimit_new(1, -5, 64));
    assert_null(ratelimit_new(1, (int64_t)RATELIMIT_BURST_MAX + 1, 64));
    assert_null(ratelimit_new(1, 1, (size_t)RATELIMIT_SLOTS_MAX + 1));
    for (size_t i = 0; i < UTIL_ARRAY_LEN(sizes); i++) {
        rl = ratelimit_new(1, 1, sizes[i].asked);
        assert_non_null(rl);
        assert_int_equal(ratelimit_slots(rl), sizes[i].got);
        /* The table is the bulk of it: more slots, more bytes, 24 a slot. */
        assert_true(ratelimit_bytes(rl) >= sizes[i].got * 24);
        assert_true(ratelimit_bytes(rl) < sizes[i].got * 24 + 16384);
        ratelimit_free(rl);
    }
    ratelimit_free(NULL);
}

/* A peek says whether a token is there and takes none; an unknown key is not added. */
static void test_peek_takes_nothing(void **state)
{
    struct ratelimit *rl = ratelimit_new(1, 2, 64); /* 1/s, burst 2 */
    struct ratelimit_verdict v;

    (void)state;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ratelimit_peek(rl, "a", 1, 1000, &v), 1);
        assert_int_equal(v.remaining, 2);
    }
    assert_int_equal(ratelimit_take(rl, "a", 1, 1000, &v), 1);
    assert_int_equal(ratelimit_take(rl, "a", 1, 1000, &v), 1);
    assert_int_equal(ratelimit_peek(rl, "a", 1, 1000, &v), 0);
    assert_int_equal(v.retry_after_s, 1);
    assert_int_equal(v.reset_s, 2);
    assert_int_equal(ratelimit_take(rl, "a", 1, 1000, &v), 0);
    /* Refilled by time, seen by a peek, still there for the take. */
    assert_int_equal(ratelimit_peek(rl, "a", 1, 2000, &v), 1);
    assert_int_equal(v.remaining, 1);
    assert_int_equal(ratelimit_take(rl, "a", 1, 2000, &v), 1);
    assert_int_equal(ratelimit_take(rl, "a", 1, 2000, &v), 0);
    /* Peeks at many unknown keys evict nobody: "a" is still remembered as empty. */
    for (int i = 0; i < 10000; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        assert_int_equal(ratelimit_peek(rl, k, strlen(k), 2000, &v), 1);
    }
    assert_int_equal(ratelimit_take(rl, "a", 1, 2000, &v), 0);
    ratelimit_free(rl);
}

static void test_time_backwards(void **state)
{
    /* burst 3 at 1/s */
    static const struct step steps[] = {
        {10000, 1, 2, 1, 0},
        {5000, 1, 1, 2, 0},  /* 5 s earlier: no tokens taken away (it would be -3) */
        {5000, 1, 0, 3, 0},  /* ... just the two left */
        {4000, 0, 0, 3, 1},  /* and none added for the way back */
        {10500, 0, 0, 3, 1}, /* refill counts from 10000, the latest time seen */
        {11000, 1, 0, 3, 0},
    };
    struct ratelimit *rl = ratelimit_new(1, 3, 64);

    (void)state;
    take_steps(rl, "u:7", 3, steps, UTIL_ARRAY_LEN(steps));
    ratelimit_free(rl);
}

static void take_until_refused(struct ratelimit *rl, const char *key, int64_t burst, int64_t now)
{
    struct ratelimit_verdict v;

    for (int64_t i = 0; i < burst; i++)
        assert_true(ratelimit_take(rl, key, strlen(key), now, &v));
    assert_false(ratelimit_take(rl, key, strlen(key), now, &v));
}

#define FLOOD 5000

/*
 * The cost of bounded memory: a client pushed out of its set by a flood of
 * new keys is forgotten, and comes back with a whole burst.
 */
static void test_eviction_bounded(void **state)
{
    struct ratelimit *rl = ratelimit_new(0.001, 5, 64);
    struct ratelimit_verdict v;
    size_t bytes = ratelimit_bytes(rl);
    char key[32];

    (void)state;
    assert_int_equal(ratelimit_slots(rl), 64);
    take_until_refused(rl, "victim", 5, 0);
    for (int i = 0; i < FLOOD; i++) {
        snprintf(key, sizeof(key), "flood:%d", i);
        assert_true(ratelimit_take(rl, key, strlen(key), 1, &v)); /* each is new: full */
        assert_int_equal(v.remaining, 4);
    }
    assert_int_equal(ratelimit_bytes(rl), bytes);
    assert_int_equal(ratelimit_slots(rl), 64);
    /* 5000 keys through 16 sets of 4: the victim's set has long forgotten it. */
    assert_true(ratelimit_take(rl, "victim", 6, 2, &v));
    assert_int_equal(v.remaining, 4);
    ratelimit_free(rl);
}

/* Eviction takes the least recently used: a client active during the flood stays. */
static void test_eviction_keeps_recent(void **state)
{
    struct ratelimit *rl = ratelimit_new(0.001, 5, 64);
    struct ratelimit_verdict v;
    char key[32];

    (void)state;
    take_until_refused(rl, "regular", 5, 0);
    for (int i = 0; i < FLOOD; i++) {
        snprintf(key, sizeof(key), "flood:%d", i);
        ratelimit_take(rl, key, strlen(key), 1, &v);
        assert_false(ratelimit_take(rl, "regular", 7, 1, &v));
    }
    ratelimit_free(rl);
}

#define HAMMER_THREADS 2
#define HAMMER_TAKES   100000
#define HAMMER_BURST   1000

static void *hammer(void *arg)
{
    struct ratelimit *rl = arg;
    struct ratelimit_verdict v;
    intptr_t allowed = 0;

    /* Each thread's own clock: the two interleave, so time often goes back. */
    for (int64_t i = 0; i < HAMMER_TAKES; i++)
        allowed += ratelimit_take(rl, "hot", 3, i, &v);
    return (void *)allowed;
}

static void test_concurrent_takes(void **state)
{
    /* 1e-6/s over 100 s refills 1e-4 of a token: the burst is all there is. */
    struct ratelimit *rl = ratelimit_new(1e-6, HAMMER_BURST, 64);
    pthread_t th[HAMMER_THREADS];
    intptr_t total = 0;

    (void)state;
    for (int i = 0; i < HAMMER_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hammer, rl), 0);
    for (int i = 0; i < HAMMER_THREADS; i++) {
        void *ret;

        assert_int_equal(pthread_join(th[i], &ret), 0);
        total += (intptr_t)ret;
    }
    assert_int_equal(total, HAMMER_BURST);
    ratelimit_free(rl);
}

/* ---- clientaddr --------------------------------------------------------- */

static int addr_of(const char *text, unsigned char *addr)
{
    int family = strchr(text, ':') ? AF_INET6 : AF_INET;

    assert_int_equal(inet_pton(family, text, addr), 1);
    return family;
}

static void test_cidr_parse_good(void **state)
{
    static const struct {
        const char *text;
        int family, bits;
        const char *net;
    } good[] = {
        {"10.0.0.0/8", AF_INET, 8, "10.0.0.0"},
        {"127.0.0.1", AF_INET, 32, "127.0.0.1"},
        {"1.2.3.4/32", AF_INET, 32, "1.2.3.4"},
        {"192.168.1.128/25", AF_INET, 25, "192.168.1.128"},
        {"0.0.0.0/0", AF_INET, 0, "0.0.0.0"},
        {"10.0.0.0/08", AF_INET, 8, "10.0.0.0"},
        {"::1", AF_INET6, 128, "::1"},
        {"fd00::/8", AF_INET6, 8, "fd00::"},
        {"2001:db8::/32", AF_INET6, 32, "2001:db8::"},
        {"::/0", AF_INET6, 0, "::"},
        {"2001:db8::1/128", AF_INET6, 128, "2001:db8::1"},
        {"::ffff:10.0.0.0/104", AF_INET6, 104, "::ffff:10.0.0.0"},
    };

    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(good); i++) {
        struct clientaddr_cidr c = {0};
        unsigned char want[16] = {0};
        char err[160] = "";

        char got_s[200], want_s[200];
        int rc = clientaddr_cidr_parse(good[i].text, &c, err, sizeof(err));

        snprintf(got_s, sizeof(got_s), "\"%s\": %d family %d bits %d %s", good[i].text, rc,
                 c.family, c.bits, err);
        snprintf(want_s, sizeof(want_s), "\"%s\": 0 family %d bits %d ", good[i].text,
                 good[i].family, good[i].bits);
        assert_string_equal(got_s, want_s);
        addr_of(good[i].net, want);
        assert_memory_equal(c.addr, want, 16);
    }
}

static void test_cidr_parse_bad(void **state)
{
    static const struct {
        const char *text;
        const char *why;
    } bad[] = {
        {"", "empty"},
        {"abc", "not an IP address"},
        {"10.0.0.0/33", "above 32"},
        {"::/129", "above 128"},
        {"10.0.0.0/999", "above 32"},
        {"10.0.0.0/1000", "bad prefix"},
        {"10.0.0.0/", "bad prefix"},
        {"10.0.0.0/-1", "bad prefix"},
        {"10.0.0.0/+8", "bad prefix"},
        {"10.0.0.0/8x", "bad prefix"},
        {"10.0.0.0/ 8", "bad prefix"},
        {"10.0.0.0/8/8", "bad prefix"},
        {"10.0.0.0/8 ", "bad prefix"},
        {" 10.0.0.0/8", "not an IP address"},
        {"10.0.0/8", "not an IP address"},
        {"256.0.0.0/8", "not an IP address"},
        {"10.0.0.0.0/8", "not an IP address"},
        {"/8", "not an IP address"},
        {"fe80::1%eth0", "not an IP address"},
        {"[::1]/128", "not an IP address"},
        {"example.com/24", "not an IP address"},
        {"10.0.0.1/8", "10.0.0.0/8?"},
        {"192.168.1.129/25", "192.168.1.128/25?"},
        {"fd00::1/8", "fd00::/8?"},
        {"1.0.0.0/0", "0.0.0.0/0?"},
    };

    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bad); i++) {
        struct clientaddr_cidr c = {.family = -7};
        char err[160] = "", got[300], want[300];
        int rc = clientaddr_cidr_parse(bad[i].text, &c, err, sizeof(err));

        /* refused, *out untouched, and the error says why */
        snprintf(got, sizeof(got), "\"%s\": %d family %d, says \"%s\": %s", bad[i].text, rc,
                 c.family, bad[i].why, strstr(err, bad[i].why) ? "yes" : err);
        snprintf(want, sizeof(want), "\"%s\": -1 family -7, says \"%s\": yes", bad[i].text,
                 bad[i].why);
        assert_string_equal(got, want);
    }
}

static size_t parse_list(const char *const *texts, size_t n, struct clientaddr_cidr *out)
{
    for (size_t i = 0; i < n; i++) {
        char err[160];
        assert_int_equal(clientaddr_cidr_parse(texts[i], &out[i], err, sizeof(err)), 0);
    }
    return n;
}

/* Address, in one of test_cidr_membership's lists or not. */
static const struct membership_row {
    int list; /* 0 mixed, 1 all4, 2 all6, 3 mapped */
    const char *addr;
    int want;
} membership_rows[] = {
    {0, "10.1.2.3", 1},
    {0, "9.255.255.255", 0},
    {0, "11.0.0.0", 0},
    {0, "192.168.1.128", 1},
    {0, "192.168.1.255", 1},
    {0, "192.168.1.127", 0},
    {0, "203.0.113.7", 1}, /* /32: that one address */
    {0, "203.0.113.6", 0},
    {0, "203.0.113.8", 0},
    {0, "fd12:3456::1", 1},
    {0, "fe00::1", 0},
    {0, "2001:db8::1", 1}, /* /128 */
    {0, "2001:db8::2", 0},
    {0, "::ffff:10.9.9.9", 1}, /* IPv4-mapped: in 10.0.0.0/8 */
    {0, "::ffff:203.0.113.7", 1},
    {0, "::ffff:11.0.0.1", 0},
    {0, "::10.9.9.9", 0}, /* IPv4-compatible is not mapped */
    {0, "::1", 0},
    {1, "0.0.0.0", 1},
    {1, "255.255.255.255", 1},
    {1, "::ffff:1.2.3.4", 1},
    {1, "::1", 0},
    {2, "::1", 1},
    {2, "ffff::1", 1},
    {2, "1.2.3.4", 1}, /* as ::ffff:1.2.3.4 */
    {3, "1.2.3.4", 1},
    {3, "::ffff:1.2.3.4", 1},
    {3, "::1", 0},
};

static void test_cidr_membership(void **state)
{
    static const char *const mixed[] = {"10.0.0.0/8", "192.168.1.128/25", "fd00::/8", "203.0.113.7",
                                        "2001:db8::1"};
    static const char *const all4[] = {"0.0.0.0/0"};
    static const char *const all6[] = {"::/0"};
    static const char *const mapped[] = {"::ffff:0:0/96"};
    struct clientaddr_cidr lists[4][8];
    size_t lens[4];
    unsigned char addr[16];

    (void)state;
    lens[0] = parse_list(mixed, UTIL_ARRAY_LEN(mixed), lists[0]);
    lens[1] = parse_list(all4, UTIL_ARRAY_LEN(all4), lists[1]);
    lens[2] = parse_list(all6, UTIL_ARRAY_LEN(all6), lists[2]);
    lens[3] = parse_list(mapped, UTIL_ARRAY_LEN(mapped), lists[3]);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(membership_rows); i++) {
        const struct membership_row *row = &membership_rows[i];
        int family = addr_of(row->addr, addr);
        int in = clientaddr_in(lists[row->list], lens[row->list], family, addr);
        char got[80], want[80];

        snprintf(got, sizeof(got), "%s in list %d: %d", row->addr, row->list, in);
        snprintf(want, sizeof(want), "%s in list %d: %d", row->addr, row->list, row->want);
        assert_string_equal(got, want);
    }
    addr_of("10.0.0.1", addr);
    assert_int_equal(clientaddr_in(NULL, 0, AF_INET, addr), 0);
    assert_int_equal(clientaddr_in(lists[1], lens[1], AF_UNIX, addr), 0);
}

static void peer_of(const char *text, struct sockaddr_storage *ss)
{
    unsigned char addr[16];
    int family = addr_of(text, addr);

    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(40000);
        memcpy(&sin->sin_addr, addr, 4);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(40000);
        memcpy(&sin6->sin6_addr, addr, 16);
    }
}

/* Peer, X-Forwarded-For, the client resolved, with test_resolve's trusted proxies. */
static const struct resolve_row {
    const char *peer, *xff, *want;
} resolve_rows[] = {
    /* an untrusted peer's header is ignored entirely */
    {"203.0.113.9", "1.1.1.1", "203.0.113.9"},
    {"203.0.113.9", "1.1.1.1, 10.0.0.2", "203.0.113.9"},
    {"2001:db8::9", "1.1.1.1", "2001:db8::9"},
    /* no header, nothing in it */
    {"10.0.0.1", NULL, "10.0.0.1"},
    {"10.0.0.1", "", "10.0.0.1"},
    {"10.0.0.1", " , ,", "10.0.0.1"},
    /* from the right, past trusted proxies, to the first untrusted */
    {"10.0.0.1", "1.1.1.1", "1.1.1.1"},
    {"127.0.0.1", "1.1.1.1", "1.1.1.1"},
    {"10.0.0.1", "1.1.1.1, 10.0.0.2", "1.1.1.1"},
    {"10.0.0.1", "9.9.9.9, 1.1.1.1, 10.0.0.2", "1.1.1.1"}, /* 9.9.9.9: the client's word */
    {"10.0.0.1", "1.1.1.1,10.0.0.5, 10.0.0.2", "1.1.1.1"}, /* header values joined */
    {"10.0.0.1", "1.1.1.1 ,\t10.0.0.2 ", "1.1.1.1"},
    {"10.0.0.1", "1.1.1.1,,10.0.0.2,", "1.1.1.1"}, /* empty elements skipped */
    /* all trusted: the leftmost */
    {"10.0.0.1", "10.0.0.3, 10.0.0.2", "10.0.0.3"},
    {"10.0.0.1", ",10.0.0.2", "10.0.0.2"},
    /* junk stops the walk: the last address found so far, else the peer */
    {"10.0.0.1", "1.1.1.1, unknown, 10.0.0.2", "10.0.0.2"},
    {"10.0.0.1", "1.1.1.1, unknown", "10.0.0.1"},
    {"10.0.0.1", "garbage", "10.0.0.1"},
    {"10.0.0.1", "1.1.1.1, 10.0.0.2 10.0.0.3", "10.0.0.1"},
    {"10.0.0.1", "fe80::1%eth0", "10.0.0.1"},
    {"10.0.0.1", "example.com", "10.0.0.1"},
    {"10.0.0.1", "1.1.1.1, 1111111111111111111111111111111111111111111111111111111111111111",
     "10.0.0.1"},
    /* ports, where unambiguous */
    {"10.0.0.1", "1.1.1.1:5678, 10.0.0.2:80", "1.1.1.1"},
    {"10.0.0.1", "[2001:db8::5]:443", "2001:db8::5"},
    {"10.0.0.1", "[2001:db8::5]", "2001:db8::5"},
    {"10.0.0.1", "2001:db8::5", "2001:db8::5"},
    {"10.0.0.1", "1.1.1.1:99999", "10.0.0.1"},
    {"10.0.0.1", "1.1.1.1:", "10.0.0.1"},
    {"10.0.0.1", "1.1.1.1:80x", "10.0.0.1"},
    {"10.0.0.1", "[2001:db8::5]x", "10.0.0.1"},
    {"10.0.0.1", "[2001:db8::5", "10.0.0.1"},
    {"10.0.0.1", "[1.1.1.1]", "10.0.0.1"},
    /* IPv6 peers */
    {"fd00::1", "2001:db8::7, fd00::2", "2001:db8::7"},
    {"fd00::1", "1.1.1.1, fd00::2, 10.0.0.9", "1.1.1.1"},
    {"::1", "1.1.1.1", "::1"}, /* only 127.0.0.1 is trusted, not ::1 */
    /* IPv4-mapped: reported as IPv4, trusted by IPv4 CIDRs */
    {"::ffff:10.0.0.1", "1.1.1.1", "1.1.1.1"},
    {"::ffff:203.0.113.9", "1.1.1.1", "203.0.113.9"},
    {"10.0.0.1", "::ffff:1.1.1.1", "1.1.1.1"},
    {"10.0.0.1", "1.1.1.1, ::ffff:10.0.0.2", "1.1.1.1"},
};

static void test_resolve(void **state)
{
    static const char *const trusted_text[] = {"10.0.0.0/8", "fd00::/8", "127.0.0.1"};
    struct clientaddr_cidr trusted[8];
    size_t ntrusted = parse_list(trusted_text, UTIL_ARRAY_LEN(trusted_text), trusted);

    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(resolve_rows); i++) {
        const struct resolve_row *row = &resolve_rows[i];
        struct sockaddr_storage ss;
        struct clientaddr got;
        unsigned char want[16] = {0};
        char got_s[300], want_s[300];
        int family = addr_of(row->want, want), rc;

        peer_of(row->peer, &ss);
        memset(&got, 0xa5, sizeof(got));
        rc = clientaddr_resolve((struct sockaddr *)&ss, row->xff, trusted, ntrusted, &got);
        got.text[sizeof(got.text) - 1] = '\0';
        snprintf(got_s, sizeof(got_s), "peer %s, X-Forwarded-For \"%s\": %d %s family %d",
                 row->peer, row->xff ? row->xff : "(none)", rc, got.text, got.family);
        snprintf(want_s, sizeof(want_s), "peer %s, X-Forwarded-For \"%s\": 0 %s family %d",
                 row->peer, row->xff ? row->xff : "(none)", row->want, family);
        assert_string_equal(got_s, want_s);
        assert_memory_equal(got.addr, want, 16); /* the unused bytes are zero */
    }
}

/* No trusted proxies: the header is never believed. */
static void test_resolve_without_proxies(void **state)
{
    struct sockaddr_storage ss;
    struct clientaddr got;

    (void)state;
    peer_of("10.0.0.1", &ss);
    assert_int_equal(clientaddr_resolve((struct sockaddr *)&ss, "1.1.1.1", NULL, 0, &got), 0);
    assert_string_equal(got.text, "10.0.0.1");
}

static void test_resolve_bad_peer(void **state)
{
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    struct clientaddr got = {.family = -7};

    (void)state;
    assert_int_equal(clientaddr_resolve(NULL, "1.1.1.1", NULL, 0, &got), -1);
    assert_int_equal(clientaddr_resolve((struct sockaddr *)&un, NULL, NULL, 0, &got), -1);
    assert_int_equal(got.family, -7); /* untouched */
}

/* The bucket key: IPv6 by its prefix, IPv4 (and IPv4-mapped) by the whole address. */
static void test_bucket_key(void **state)
{
    static const struct {
        const char *a, *b;
        int prefix, same;
    } rows[] = {
        {"2001:db8:1:1::1", "2001:db8:1:1:ffff:ffff:ffff:ffff", 64, 1},
        {"2001:db8:1:1::1", "2001:db8:1:2::1", 64, 0},
        {"2001:db8:1:1::1", "2001:db8:1:2::1", 48, 1},
        {"2001:db8:1:1::1", "2001:db8:1:1::2", 128, 0},
        {"2001:db8:1:1::1", "2001:db8:1:1::1", 128, 1},
        {"2001:db8::1", "2001:db9::1", 31, 1}, /* 0x0db8 and 0x0db9 differ in bit 32 */
        {"2001:db8::1", "2001:db9::1", 32, 0},
        {"2001:db8::1", "3001:db8::1", 1, 1},
        {"2001:db8::1", "a001:db8::1", 1, 0},
        {"198.51.100.1", "198.51.100.2", 64, 0}, /* IPv4: never by prefix */
        {"198.51.100.1", "198.51.100.1", 1, 1},
        {"::ffff:198.51.100.1", "198.51.100.1", 64, 1}, /* mapped: the IPv4 client */
        {"::ffff:198.51.100.1", "::ffff:198.51.100.2", 64, 0},
        {"198.51.100.1", "::c633:6401", 128, 0}, /* the same 4 bytes, another family */
    };
    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(rows); i++) {
        struct sockaddr_storage sa, sb;
        struct clientaddr ca, cb;
        unsigned char ka[CLIENTADDR_KEY_LEN], kb[CLIENTADDR_KEY_LEN];
        char got[160], want[160];

        peer_of(rows[i].a, &sa);
        peer_of(rows[i].b, &sb);
        assert_int_equal(clientaddr_resolve((struct sockaddr *)&sa, NULL, NULL, 0, &ca), 0);
        assert_int_equal(clientaddr_resolve((struct sockaddr *)&sb, NULL, NULL, 0, &cb), 0);
        clientaddr_key(&ca, rows[i].prefix, ka);
        clientaddr_key(&cb, rows[i].prefix, kb);
        snprintf(got, sizeof(got), "%s %s /%d same %d", rows[i].a, rows[i].b, rows[i].prefix,
                 memcmp(ka, kb, sizeof(ka)) == 0);
        snprintf(want, sizeof(want), "%s %s /%d same %d", rows[i].a, rows[i].b, rows[i].prefix,
                 rows[i].same);
        assert_string_equal(got, want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refusal),
        cmocka_unit_test(test_keys_independent),
        cmocka_unit_test(test_fractional_rates),
        cmocka_unit_test(test_parse_rate_good),
        cmocka_unit_test(test_parse_rate_bad),
        cmocka_unit_test(test_new_arguments),
        cmocka_unit_test(test_time_backwards),
        cmocka_unit_test(test_eviction_bounded),
        cmocka_unit_test(test_eviction_keeps_recent),
        cmocka_unit_test(test_concurrent_takes),
        cmocka_unit_test(test_cidr_parse_good),
        cmocka_unit_test(test_cidr_parse_bad),
        cmocka_unit_test(test_cidr_membership),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_resolve_without_proxies),
        cmocka_unit_test(test_resolve_bad_peer),
        cmocka_unit_test(test_bucket_key),
        cmocka_unit_test(test_peek_takes_nothing),
    };
    return cmocka_run_group_tests_name("ratelimit", tests, NULL, NULL);
}
