/*
 * test_store.c - the schema compiled into the consumer is sql/schema.sql,
 * byte for byte (the SQL file is what people read and review).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store.h"

/* tests/run starts unit tests in tests/unit; make may start them at the root. */
static FILE *open_schema(void)
{
    static const char *const paths[] = {"../../sql/schema.sql", "sql/schema.sql"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        FILE *f = fopen(paths[i], "rb");
        if (f)
            return f;
    }
    return NULL;
}

static void test_embedded_schema_matches_file(void **state)
{
    static char file[64 * 1024];
    FILE *f = open_schema();
    size_t n;

    (void)state;
    assert_non_null(f);
    n = fread(file, 1, sizeof(file) - 1, f);
    fclose(f);
    file[n] = '\0';
    assert_true(n > 0);
    assert_string_equal(store_schema(), file);
}

static void test_schema_is_idempotent_and_unique(void **state)
{
    const char *s = store_schema();

    (void)state;
    assert_non_null(strstr(s, "CREATE TABLE IF NOT EXISTS votes"));
    assert_non_null(strstr(s, "token           text        NOT NULL UNIQUE"));
    assert_null(strstr(s, "CREATE TABLE votes"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_embedded_schema_matches_file),
        cmocka_unit_test(test_schema_is_idempotent_and_unique),
    };
    return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
