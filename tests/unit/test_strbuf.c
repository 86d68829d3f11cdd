/*
 * test_strbuf.c - the growing buffer holds exactly what was printed into
 * it, NUL-terminated, however small it started and however large a single
 * print is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "strbuf.h"

static void test_starts_empty(void **state)
{
    struct strbuf b;

    (void)state;
    strbuf_init(&b, 0); /* 0 is "pick a size", not a zero-byte buffer */
    assert_non_null(b.s);
    assert_string_equal(b.s, "");
    assert_int_equal(b.len, 0);
    assert_true(b.cap > 0);
    strbuf_printf(&b, "%s", "");
    assert_string_equal(b.s, "");
    assert_int_equal(b.len, 0);
    free(b.s);
}

/* Many small prints from a one-byte start, checked against one flat buffer. */
static void test_appends_grow(void **state)
{
    static char want[64 * 1024];
    size_t wn = 0;
    struct strbuf b;

    (void)state;
    strbuf_init(&b, 1);
    for (int i = 0; i < 3000; i++) {
        strbuf_printf(&b, "%d:%s,", i, i % 7 ? "x" : "");
        wn += (size_t)snprintf(want + wn, sizeof(want) - wn, "%d:%s,", i, i % 7 ? "x" : "");
        assert_int_equal(b.len, wn);
        assert_true(b.len < b.cap);
    }
    assert_int_equal(strlen(b.s), b.len);
    assert_memory_equal(b.s, want, wn + 1);
    free(b.s);
}

/* One print many times the capacity, and text with bytes printf must not touch. */
static void test_one_large_print(void **state)
{
    enum { N = 100000 };
    char *big = malloc(N + 1);
    struct strbuf b;

    (void)state;
    memset(big, 'a', N);
    big[N] = '\0';
    big[N / 2] = '%';
    strbuf_init(&b, 8);
    strbuf_printf(&b, "<%s>", "\xf0\x9f\x98\x80");
    strbuf_printf(&b, "%s", big);
    strbuf_printf(&b, "%c", '!');
    assert_int_equal(b.len, 6 + N + 1);
    assert_memory_equal(b.s, "<\xf0\x9f\x98\x80>", 6);
    assert_memory_equal(b.s + 6, big, N);
    assert_string_equal(b.s + 6 + N, "!");
    free(big);
    free(b.s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_starts_empty),
        cmocka_unit_test(test_appends_grow),
        cmocka_unit_test(test_one_large_print),
    };
    return cmocka_run_group_tests_name("strbuf", tests, NULL, NULL);
}
