/*
 * test_jsoncheck.c - the strict validator agrees with JSONTestSuite: every
 * y_* file is JSON, every n_* file is not (i_* may go either way but must
 * not crash).
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jsoncheck.h"
#include "util.h"

static void test_corpus_verdicts(void **state)
{
    const char *dir = getenv("TADAK_CORPUS_DIR");
    struct dirent *de;
    DIR *d;
    int yes = 0, no = 0;

    (void)state;
    if (!dir)
        dir = "../../../shared/corpus/json-test-suite/test_parsing";
    d = opendir(dir);
    if (!d)
        fail_msg("corpus not found at %s (set TADAK_CORPUS_DIR)", dir);
    while ((de = readdir(d)) != NULL) {
        char path[1024], why[128];
        static char buf[1 << 20];
        size_t len;
        FILE *f;
        int rc;

        if (!strstr(de->d_name, ".json"))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        f = fopen(path, "rb");
        assert_non_null(f);
        len = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        rc = jsoncheck(buf, len, 64, why, sizeof(why));
        if (de->d_name[0] == 'y' && rc != 0)
            fail_msg("%s is JSON but was rejected: %s", de->d_name, why);
        if (de->d_name[0] == 'n' && rc == 0)
            fail_msg("%s is not JSON but was accepted", de->d_name);
        yes += de->d_name[0] == 'y';
        no += de->d_name[0] == 'n';
    }
    closedir(d);
    assert_true(yes >= 90 && no >= 180);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus_verdicts),
        cmocka_unit_test(test_lenient_inputs_rejected),
    };
    return cmocka_run_group_tests_name("jsoncheck", tests, NULL, NULL);
}
