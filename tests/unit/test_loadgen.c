/*
 * test_loadgen.c - the load stream is a pure function of its parameters:
 * every user appears exactly D times with one candidate, the candidates and
 * the order are the ones computed independently for that seed, the order is
 * shuffled, and the same seed replays the same sequence.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "loadgen.h"
#include "testtypes.h"
#include "util.h"

struct pair {
    int64_t user, candidate;
};

static struct pair *drain(uint64_t users, uint64_t dup, uint64_t seed, uint64_t k, size_t *n)
{
    char err[128];
    struct loadgen *g = loadgen_new(users, dup, seed, k, err, sizeof(err));
    struct pair *out;
    size_t i = 0;

    assert_non_null(g);
    *n = (size_t)loadgen_count(g);
    out = calloc(*n + 1, sizeof(*out));
    while (loadgen_next(g, &out[i].user, &out[i].candidate))
        i++;
    assert_int_equal(i, *n);
    assert_int_equal(loadgen_next(g, &out[i].user, &out[i].candidate), 0);
    loadgen_free(g);
    return out;
}

/*
 * Expected values computed outside C (Python's big integers) from
 * loadgen.h's description: splitmix64, the candidate 1 + splitmix64(seed ^
 * user * 0xd1b54a32d192ed03) % candidates, a Fisher-Yates shuffle with
 * rejection sampling. The test must not ask the generator what it should
 * have produced.
 */
static const int64_t seed7_k5[20] = {1, 4, 5, 5, 4, 1, 3, 4, 2, 3, 5, 3, 1, 1, 2, 2, 1, 5, 3, 2};
static const int64_t seed1_k4[20] = {4, 2, 2, 1, 3, 1, 3, 4, 4, 2, 4, 2, 2, 4, 1, 2, 3, 2, 1, 4};

static void test_counts_and_candidates(void **state)
{
    size_t n;
    struct pair *p = drain(200, 3, 7, 5, &n);
    int seen[201] = {0};
    int64_t cand[201] = {0};

    (void)state;
    assert_int_equal(n, 600);
    for (size_t i = 0; i < n; i++) {
        assert_true(p[i].user >= 1 && p[i].user <= 200);
        assert_true(p[i].candidate >= 1 && p[i].candidate <= 5);
        if (cand[p[i].user])
            assert_int_equal(cand[p[i].user], p[i].candidate); /* one vote per user */
        cand[p[i].user] = p[i].candidate;
        seen[p[i].user]++;
    }
    for (int u = 1; u <= 200; u++)
        assert_int_equal(seen[u], 3);
    for (int u = 1; u <= 20; u++)
        assert_int_equal(cand[u], seed7_k5[u - 1]);
    for (uint64_t u = 1; u <= 20; u++)
        assert_int_equal(loadgen_candidate(1, u, 4), seed1_k4[u - 1]);
    free(p);
}

/* The whole stream of a small run, as benchmarks replaying a seed expect it. */
static void test_known_sequence(void **state)
{
    static const struct pair want[] = {{3, 2}, {4, 2}, {4, 2}, {5, 1}, {6, 1}, {2, 1},
                                       {6, 1}, {1, 2}, {2, 1}, {1, 2}, {5, 1}, {3, 2}};
    size_t n;
    struct pair *p = drain(6, 2, 1, 3, &n);

    (void)state;
    assert_int_equal(n, UTIL_ARRAY_LEN(want));
    for (size_t i = 0; i < n; i++)
        if (p[i].user != want[i].user || p[i].candidate != want[i].candidate)
            fail_msg("event %zu: user %lld candidate %lld, want %lld %lld", i, (long long)p[i].user,
                     (long long)p[i].candidate, (long long)want[i].user,
                     (long long)want[i].candidate);
    free(p);
}

/* Candidates are spread evenly: 2000 users over 5 candidates, 400 +- 5 sigma each. */
static void test_candidates_even(void **state)
{
    int64_t votes[6] = {0};

    (void)state;
    for (uint64_t u = 1; u <= 2000; u++)
        votes[loadgen_candidate(3, u, 5)]++;
    for (int k = 1; k <= 5; k++)
        if (votes[k] < 310 || votes[k] > 490)
            fail_msg("candidate %d got %lld of 2000 votes", k, (long long)votes[k]);
}

static void test_same_seed_same_sequence(void **state)
{
    size_t n1, n2, n3, same = 0;
    struct pair *a = drain(1000, 4, 42, 5, &n1);
    struct pair *b = drain(1000, 4, 42, 5, &n2);
    struct pair *c = drain(1000, 4, 43, 5, &n3);

    (void)state;
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1 * sizeof(*a));
    for (size_t i = 0; i < n1; i++)
        same += a[i].user == c[i].user;
    assert_true(same < n1 / 10); /* another seed, another order */
    free(a);
    free(b);
    free(c);
}

static void test_shuffled(void **state)
{
    size_t n, in_order = 0;
    struct pair *p = drain(1000, 2, 1, 5, &n);
    int all_candidates[6] = {0};

    (void)state;
    for (size_t i = 0; i < n; i++) {
        in_order += p[i].user == (int64_t)(i / 2 + 1);
        all_candidates[p[i].candidate] = 1;
    }
    assert_true(in_order < n / 10);
    for (int k = 1; k <= 5; k++)
        assert_true(all_candidates[k]);
    free(p);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The vote's stream mapped onto poll_answer: N users, N keys, every value in bounds. */
static void test_event_of_another_type(void **state)
{
    struct evtype t = testtypes_poll_answer();
    size_t n, keys = 0;
    struct pair *p = drain(500, 3, 9, 4, &n);
    char **tokens = calloc(n, sizeof(*tokens)), err[256];

    (void)state;
    assert_int_equal(loadgen_fits(&t, 500, err, sizeof(err)), 0);
    for (size_t i = 0; i < n; i++) {
        struct event ev;
        assert_int_equal(loadgen_event(&t, 9, p[i].user, p[i].candidate, 4, &ev, NULL), 0);
        assert_int_equal(ev.v[1], p[i].user);      /* the identity: the user */
        assert_int_equal(ev.v[0], p[i].candidate); /* the other key field: the candidate */
        assert_true(ev.v[2] >= 1 && ev.v[2] <= 4); /* one of K values, in bounds */
        tokens[i] = strdup(ev.token);
    }
    qsort(tokens, n, sizeof(*tokens), cmp_str);
    for (size_t i = 0; i < n; i++)
        keys += i == 0 || strcmp(tokens[i], tokens[i - 1]) != 0;
    assert_int_equal(keys, 500);
    for (size_t i = 0; i < n; i++)
        free(tokens[i]);
    free(tokens);
    free(p);
}

/* A user field too small for N users is refused; a string field spells the number. */
static void test_event_fields_of_every_kind(void **state)
{
    static char yes[] = "yes", no[] = "no";
    static char *yes_no[] = {yes, no};
    struct evtype t = {
        .name = "rsvp",
        .token_prefix = "rsvp",
        .nfields = 4,
        .fields = {{.name = "code", .kind = EVF_STRING, .max_length = 2, .text_off = 0},
                   {.name = "seat", .kind = EVF_INT, .min = 10, .max = 19},
                   {.name = "answer", .kind = EVF_ENUM_STRING, .nenum = 2, .enum_str = yes_no},
                   {.name = "user_id", .kind = EVF_ID, .min = 1, .max = INT64_MAX}},
        .nkey = 2,
        .key = {0, 3},
        .identity = -1,
        .ballot_field = -1,
        .text_size = 3,
    };
    char text[EVTYPE_TEXT_MAX], err[256];
    struct event ev;

    (void)state;
    t.fields[0].chars['a' >> 3] |= 1 << ('a' & 7);
    t.fields[0].chars['b' >> 3] |= 1 << ('b' & 7);
    /* code (key[0], no identity) takes the user, k-1 in base 2 of "ab": 2^2 values. */
    assert_int_equal(loadgen_fits(&t, 4, err, sizeof(err)), 0);
    assert_int_equal(loadgen_fits(&t, 5, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "code"));
    assert_int_equal(loadgen_event(&t, 1, 1, 3, 4, &ev, text), 0);
    assert_string_equal(event_str(&ev, 0), "a");
    assert_int_equal(loadgen_event(&t, 1, 4, 3, 4, &ev, text), 0);
    assert_string_equal(event_str(&ev, 0), "bb");
    assert_true(ev.v[1] >= 10 && ev.v[1] <= 19);
    assert_non_null(event_str(&ev, 2));
    assert_string_equal(ev.token, "rsvp:bb:3");
    assert_int_equal(loadgen_event(&t, 1, 3, 3, 4, &ev, text), 0);
    assert_string_equal(event_str(&ev, 0), "ab");
    assert_int_equal(loadgen_event(&t, 1, 5, 3, 4, &ev, text), -1);
}

static void test_bad_parameters(void **state)
{
    char err[128];

    (void)state;
    assert_null(loadgen_new(0, 1, 1, 5, err, sizeof(err)));
    assert_null(loadgen_new(10, 0, 1, 5, err, sizeof(err)));
    assert_null(loadgen_new(10, 1, 1, 0, err, sizeof(err)));
    assert_null(loadgen_new(UINT32_MAX, 2, 1, 5, err, sizeof(err)));
    assert_true(strlen(err) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_and_candidates),
        cmocka_unit_test(test_known_sequence),
        cmocka_unit_test(test_candidates_even),
        cmocka_unit_test(test_same_seed_same_sequence),
        cmocka_unit_test(test_shuffled),
        cmocka_unit_test(test_bad_parameters),
        cmocka_unit_test(test_event_of_another_type),
        cmocka_unit_test(test_event_fields_of_every_kind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
