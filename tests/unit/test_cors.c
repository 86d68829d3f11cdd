/*
 * test_cors.c - which origins are allowed: configured origins (any case),
 * "*" only when configured, the page's own origin (http and Origin's host
 * is Host; with --public-origin only that origin), everything else refused;
 * and every malformed --cors-origin or --public-origin is an error.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "cors.h"

static int parse(struct cors *c, const char **items, size_t n, char *err, size_t errsize)
{
    struct config_list l = {n, (char **)items, 0};
    return cors_parse(c, &l, 600, err, errsize);
}

static void test_verdicts(void **state)
{
    const char *origins[] = {"https://app.example", "http://127.0.0.1:5173"};
    struct {
        const char *origin, *host;
        enum cors_verdict want;
    } cases[] = {
        {NULL, "api.example", CORS_NONE},
        {"https://app.example", "api.example", CORS_ALLOWED},
        {"HTTPS://APP.EXAMPLE", "api.example", CORS_ALLOWED},
        {"http://127.0.0.1:5173", "127.0.0.1:8000", CORS_ALLOWED},
        {"http://127.0.0.1:5174", "127.0.0.1:8000", CORS_REFUSED},
        {"http://app.example", "api.example", CORS_REFUSED}, /* another scheme */
        {"https://app.example.evil", "api.example", CORS_REFUSED},
        {"null", "api.example", CORS_REFUSED},
        {"http://127.0.0.1:8000", "127.0.0.1:8000", CORS_NONE}, /* the page's own */
        {"HTTP://127.0.0.1:8000", "127.0.0.1:8000", CORS_NONE},
        {"http://127.0.0.1:8000", NULL, CORS_REFUSED},
        /* the scheme counts: we serve http, an https page is not ours */
        {"https://127.0.0.1:8000", "127.0.0.1:8000", CORS_REFUSED},
        {"ws://127.0.0.1:8000", "127.0.0.1:8000", CORS_REFUSED},
    };
    struct cors c;
    char err[256];

    (void)state;
    assert_int_equal(parse(&c, origins, 2, err, sizeof(err)), 0);
    assert_true(cors_enabled(&c));
    assert_string_equal(c.max_age, "600");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (cors_check(&c, cases[i].origin, cases[i].host) != cases[i].want)
            fail_msg("case %zu: %s from %s", i, cases[i].origin ? cases[i].origin : "(none)",
                     cases[i].host ? cases[i].host : "(no host)");
    /* The allowed origin is echoed, never "*". */
    assert_string_equal(cors_allow_origin(&c, "HTTPS://APP.EXAMPLE"), "HTTPS://APP.EXAMPLE");
    cors_free(&c);
}

static void test_off_and_star(void **state)
{
    const char *star[] = {"*"};
    struct cors c;
    char err[256];

    (void)state;
    assert_int_equal(parse(&c, NULL, 0, err, sizeof(err)), 0);
    assert_false(cors_enabled(&c));
    assert_int_equal(cors_check(&c, "https://evil.example", "api.example"), CORS_NONE);
    cors_free(&c);
    assert_int_equal(parse(&c, star, 1, err, sizeof(err)), 0);
    assert_int_equal(cors_check(&c, "https://any.example", "api.example"), CORS_ALLOWED);
    assert_string_equal(cors_allow_origin(&c, "https://any.example"), "*");
    cors_free(&c);
}

/* --public-origin: then only it is the page's own origin, whatever Host says. */
static void test_public_origin(void **state)
{
    const char *origins[] = {"https://app.example"};
    struct {
        const char *origin, *host;
        enum cors_verdict want;
    } cases[] = {
        {"https://votes.example", "votes.example", CORS_NONE},
        {"https://VOTES.example", "10.0.1.10:8000", CORS_NONE},  /* behind a proxy: any Host */
        {"http://votes.example", "votes.example", CORS_REFUSED}, /* another scheme */
        {"https://votes.example:8443", "votes.example:8443", CORS_REFUSED},
        {"https://evil.example", "evil.example", CORS_REFUSED}, /* DNS rebinding: Host follows */
        {"http://127.0.0.1:8000", "127.0.0.1:8000", CORS_REFUSED},
        {"https://app.example", "votes.example", CORS_ALLOWED},
    };
    const char *bad[] = {"votes.example", "https://votes.example/", "ftp://votes.example", "*"};
    struct cors c;
    char err[256];

    (void)state;
    assert_int_equal(parse(&c, origins, 1, err, sizeof(err)), 0);
    assert_int_equal(cors_public_origin(&c, "https://votes.example", err, sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (cors_check(&c, cases[i].origin, cases[i].host) != cases[i].want)
            fail_msg("case %zu: %s from %s", i, cases[i].origin, cases[i].host);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (cors_public_origin(&c, bad[i], err, sizeof(err)) != -1)
            fail_msg("\"%s\" was accepted", bad[i]);
        assert_non_null(strstr(err, "public-origin"));
    }
    /* NULL or "": the rule without it (Host and scheme). */
    assert_int_equal(cors_public_origin(&c, NULL, err, sizeof(err)), 0);
    assert_int_equal(cors_check(&c, "http://votes.example", "votes.example"), CORS_NONE);
    cors_free(&c);
}

static void test_bad_origins(void **state)
{
    const char *bad[] = {"app.example",
                         "https://",
                         "https://app.example/",
                         "https://app.example/path",
                         "ftp://app.example",
                         "https://app.example:0",
                         "https://app.example:99999",
                         "https://a b",
                         "https://[]",
                         "**"};
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct cors c;
        char err[256] = "";
        const char *one[] = {bad[i]};
        if (parse(&c, one, 1, err, sizeof(err)) != -1)
            fail_msg("\"%s\" was accepted", bad[i]);
        assert_non_null(strstr(err, "is not an origin"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_off_and_star),
        cmocka_unit_test(test_bad_origins),
        cmocka_unit_test(test_public_origin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
