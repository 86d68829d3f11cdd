/*
 * test_jsoncheck.c - the strict validator agrees with JSONTestSuite: every
 * y_* file is JSON, every n_* file is not (i_* may go either way but must
 * not crash).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "corpus.h"
#include "jsoncheck.h"
#include "util.h"

struct verdicts {
    int yes, no;
};

static void check_verdict(const struct corpus_file *f, void *arg)
{
    struct verdicts *v = arg;
    char why[128];
    int rc = jsoncheck(f->buf, f->len, 64, why, sizeof(why));

    if (f->name[0] == 'y' && rc != 0)
        fail_msg("%s is JSON but was rejected: %s", f->name, why);
    if (f->name[0] == 'n' && rc == 0)
        fail_msg("%s is not JSON but was accepted", f->name);
    v->yes += f->name[0] == 'y';
    v->no += f->name[0] == 'n';
}

static void test_corpus_verdicts(void **state)
{
    struct verdicts v = {0, 0};

    (void)state;
    corpus_each(check_verdict, &v);
    assert_true(v.yes >= 90 && v.no >= 180);
}

static void test_lenient_inputs_rejected(void **state)
{
    static const char *const bad[] = {
        "{'a':1}",        "[-01]",      "[2.]",
        "[NaN]",          "[\"a\tb\"]", "[1,]",
        "{\"a\":1,}",     "[\"\\x\"]",  "[\"\xed\xa0\x80\"]",
        "[\"\xc0\xaf\"]", "",           " ",
        "[1] [2]",
    };
    char why[128];

    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bad); i++)
        if (jsoncheck(bad[i], strlen(bad[i]), 16, why, sizeof(why)) == 0)
            fail_msg("accepted: %s", bad[i]);
    assert_int_equal(jsoncheck("[[[1]]]", 7, 2, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "deep"));
    assert_int_equal(jsoncheck("[[[1]]]", 7, 3, why, sizeof(why)), 0);
}

static void test_strict_report(void **state)
{
    static const struct {
        const char *json;
        long dup_at, nul_at; /* -1: none */
    } rows[] = {
        {"{\"a\":1,\"b\":2}", -1, -1},
        {"{\"a\":{\"a\":1}}", -1, -1},
        {"[{\"a\":1},{\"a\":1}]", -1, -1},
        {"{\"ab\":1,\"a\":1,\"b\":1}", -1, -1},
        {"{\"a\":1,\"a\":2}", 7, -1},
        {"{\"a\":1, \"b\":{\"c\":1,\"c\":1}}", 19, -1},
        {"{\"a\\u0062\":1,\"ab\":2}", 13, -1},
        {"{\"\\/\":1,\"/\":2}", 8, -1},
        {"{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}", 18, -1},
        {"{\"\\ud83d\":1,\"\\ud83d\\ude00\":2}", -1, -1},
        {"[\"\\u0000\"]", -1, 1},
        {"{\"a\":\"x\",\"k\\u0000\":1}", -1, 9},
        {"[\"\\\\u0000\"]", -1, -1}, /* an escaped backslash, then "u0000" */
        {"{\"a\":\"\\u0000\",\"a\":1}", 14, 5},
        {"{\"\":0,\"\":1}", 6, -1}, /* only empty keys: nothing in the arena (fuzz) */
    };
    struct jsoncheck_strict st;
    char why[128];

    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(rows); i++) {
        const char *j = rows[i].json;
        if (jsoncheck_ex(j, strlen(j), 16, &st, why, sizeof(why)) != 0)
            fail_msg("row %zu %s rejected: %s", i, j, why);
        if (rows[i].dup_at < 0 ? st.dup_key_at != JSONCHECK_NONE
                               : st.dup_key_at != (size_t)rows[i].dup_at)
            fail_msg("row %zu %s: dup_key_at %zu", i, j, st.dup_key_at);
        if (rows[i].nul_at < 0 ? st.nul_at != JSONCHECK_NONE : st.nul_at != (size_t)rows[i].nul_at)
            fail_msg("row %zu %s: nul_at %zu", i, j, st.nul_at);
        /* Without a report the same documents are plain valid JSON. */
        assert_int_equal(jsoncheck(j, strlen(j), 16, why, sizeof(why)), 0);
    }
    /* A grammar error is still an error with a report asked for. */
    assert_int_equal(jsoncheck_ex("{\"a\":1,\"a\":}", 13, 16, &st, why, sizeof(why)), -1);
}

/* Many keys in one object: checked in n log n, not n^2 (a 1 MiB body must stay cheap). */
static void test_strict_many_keys(void **state)
{
    enum { N = 60000 };
    char *buf = xmalloc((size_t)N * 12 + 16);
    struct jsoncheck_strict st;
    size_t n = 0;
    char why[128];

    (void)state;
    buf[n++] = '{';
    for (int i = 0; i < N; i++)
        n += (size_t)snprintf(buf + n, 16, "%s\"k%d\":0", i ? "," : "", i);
    buf[n++] = '}';
    assert_int_equal(jsoncheck_ex(buf, n, 16, &st, why, sizeof(why)), 0);
    assert_true(st.dup_key_at == JSONCHECK_NONE);
    memcpy(buf + n - 1, ",\"k7\":1}", 8);
    assert_int_equal(jsoncheck_ex(buf, n + 7, 16, &st, why, sizeof(why)), 0);
    assert_int_equal(st.dup_key_at, n);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_verdicts),
        cmocka_unit_test(test_lenient_inputs_rejected),
        cmocka_unit_test(test_strict_report),
        cmocka_unit_test(test_strict_many_keys),
    };
    return cmocka_run_group_tests_name("jsoncheck", tests, NULL, NULL);
}
