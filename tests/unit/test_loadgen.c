/*
 * test_loadgen.c - the load stream is a pure function of its parameters:
 * every user appears exactly D times with one candidate, the order is
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
        assert_int_equal(p[i].candidate, loadgen_candidate(7, (uint64_t)p[i].user, 5));
    }
    for (int u = 1; u <= 200; u++)
        assert_int_equal(seen[u], 3);
    free(p);
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
        cmocka_unit_test(test_same_seed_same_sequence),
        cmocka_unit_test(test_shuffled),
        cmocka_unit_test(test_bad_parameters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
