/*
 * test_auth.c - Bearer tokens: HS256, RS256 and ES256 tokens made here
 * with libjwt (keys from OpenSSL) are accepted; every way a token can be
 * wrong (missing, malformed, badly signed, expired, not yet valid, wrong
 * iss or aud, another alg, alg none, an HS256 token signed with the public
 * key, a bad user claim) is refused with its reason; a token that passed is
 * remembered but still expires.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "auth.h"

#define NOW     1800000000
#define SECRET  "0123456789abcdef0123456789abcdef-test"
#define ISSUER  "https://id.example"
#define AUD     "tadak"
#define SUB_BIG "9223372036854775807"

struct keypair {
    char priv[4096], pub[4096];
    char path[64]; /* the public key as a file, for --jwt-key */
};

static struct keypair rsa, ec, ec384;

static void bio_text(BIO *b, char *out, size_t size)
{
    int n = BIO_read(b, out, (int)size - 1);
    out[n > 0 ? n : 0] = '\0';
}

static void make_keys(struct keypair *k, EVP_PKEY *p, const char *name)
{
    BIO *priv = BIO_new(BIO_s_mem()), *pub = BIO_new(BIO_s_mem());
    FILE *f;

    assert_non_null(p);
    assert_int_equal(PEM_write_bio_PrivateKey(priv, p, NULL, NULL, 0, NULL, NULL), 1);
    assert_int_equal(PEM_write_bio_PUBKEY(pub, p), 1);
    bio_text(priv, k->priv, sizeof(k->priv));
    bio_text(pub, k->pub, sizeof(k->pub));
    snprintf(k->path, sizeof(k->path), "/tmp/tadak-test-auth-%d-%s.pem", (int)getpid(), name);
    f = fopen(k->path, "w");
    assert_non_null(f);
    fputs(k->pub, f);
    fclose(f);
    BIO_free(priv);
    BIO_free(pub);
    EVP_PKEY_free(p);
}

static int setup(void **state)
{
    (void)state;
    make_keys(&rsa, EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048), "rsa");
    make_keys(&ec, EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), "ec");
    make_keys(&ec384, EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384"), "ec384");
    setenv("TEST_JWT_SECRET", SECRET, 1);
    setenv("TEST_JWT_SHORT", "too-short", 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(rsa.path);
    unlink(ec.path);
    unlink(ec384.path);
    return 0;
}

/* A token: alg and key, then claims as JSON (libjwt adds nothing else). */
static char *token(jwt_alg_t alg, const char *key, const char *claims)
{
    jwt_t *j = NULL;
    char *out;

    assert_int_equal(jwt_new(&j), 0);
    assert_int_equal(jwt_add_grants_json(j, claims), 0);
    assert_int_equal(jwt_set_alg(j, alg, (const unsigned char *)key, key ? (int)strlen(key) : 0),
                     0);
    out = jwt_encode_str(j);
    assert_non_null(out);
    jwt_free(j);
    return out;
}

static struct auth *make(const char *key_file, const char *secret_env)
{
    struct auth_opts o = {.key_file = key_file,
                          .secret_env = secret_env,
                          .issuer = ISSUER,
                          .audience = AUD,
                          .user_claim = "sub",
                          .leeway_s = 30};
    char err[256];
    struct auth *a = auth_new(&o, err, sizeof(err));

    if (!a)
        fail_msg("auth_new: %s", err);
    return a;
}

/* Verify "Bearer <tok>": the result, *user and why. */
static enum auth_result verify(struct auth *a, const char *tok, int64_t *user, char *why,
                               size_t whysize)
{
    char header[8300];

    snprintf(header, sizeof(header), "Bearer %s", tok);
    return auth_verify(a, header, NOW, user, why, whysize);
}

#define GOOD "\"iss\":\"" ISSUER "\",\"aud\":\"" AUD "\",\"exp\":1800000600"

static void test_valid_tokens_of_each_alg(void **state)
{
    struct {
        const char *key_file, *secret_env;
        jwt_alg_t alg;
        const char *sign_with, *claims;
        int64_t user;
    } cases[] = {
        {NULL, "TEST_JWT_SECRET", JWT_ALG_HS256, SECRET, "{\"sub\":\"42\"," GOOD "}", 42},
        {rsa.path, NULL, JWT_ALG_RS256, rsa.priv, "{\"sub\":7," GOOD "}", 7},
        {ec.path, NULL, JWT_ALG_ES256, ec.priv, "{\"sub\":\"" SUB_BIG "\"," GOOD "}", INT64_MAX},
        /* aud as an array; exp within the leeway; nbf within it too */
        {NULL, "TEST_JWT_SECRET", JWT_ALG_HS256, SECRET,
         "{\"sub\":\"5\",\"iss\":\"" ISSUER "\",\"aud\":[\"x\",\"" AUD
         "\"],\"exp\":1799999990,\"nbf\":1800000020}",
         5},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct auth *a = make(cases[i].key_file, cases[i].secret_env);
        char *tok = token(cases[i].alg, cases[i].sign_with, cases[i].claims);
        char why[160] = "";
        int64_t user = 0;

        assert_string_equal(auth_alg(a), jwt_alg_str(cases[i].alg));
        if (verify(a, tok, &user, why, sizeof(why)) != AUTH_OK)
            fail_msg("case %zu refused: %s", i, why);
        assert_int_equal(user, cases[i].user);
        free(tok);
        auth_free(a);
    }
}

static void test_every_rejection_says_why(void **state)
{
    const char *other = "another-secret-of-at-least-32-bytes!!";
    struct {
        const char *key_file, *secret_env; /* the server's configuration */
        jwt_alg_t alg;
        const char *sign_with, *claims, *why;
    } cases[] = {
        {NULL, "TEST_JWT_SECRET", JWT_ALG_NONE, NULL, "{\"sub\":\"1\"," GOOD "}",
         "alg must be HS256"},
        {NULL, "TEST_JWT_SECRET", JWT_ALG_HS256, other, "{\"sub\":\"1\"," GOOD "}", "signature"},
        {NULL, "TEST_JWT_SECRET", JWT_ALG_HS256, SECRET,
         "{\"sub\":\"1\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUD "\",\"exp\":1799999900}",
         "expired"},
        {NULL, "TEST_JWT_SECRET", JWT_ALG_HS256, SECRET,
         "{\"sub\":\"1\",\"iss\":\"" ISSUER "\",\"aud\":\"" AUD "\"}", "no \"exp\""},
        {NULL, "TEST_JWT_SECRET", JWT_ALG_HS256, SECRET,
         "{\"sub\":\"1\",\"nbf\":1800000100," GOOD "}", "not valid yet"},
        {NULL, "TEST_JWT_SECRET", JWT_ALG_HS256, SECRET,
         "{\"sub\":\"1\",\"iss\":\"https://evil.example\",\"aud\":\"" AUD "\",\"exp\":1800000600}",
         "issuer"},
        {NULL, "TEST_JWT_SECRET", JWT_ALG_HS256, SECRET,
         "{\"sub\":\"1\",\"iss\":\"" ISSUER "\",\"aud\":[\"other\"],\"exp\":1800000600}",
         "audience"},
        {NULL, "TEST_JWT_SECRET", JWT_ALG_HS256, SECRET, "{\"sub\":\"0\"," GOOD "}", "user id"},
        {NULL, "TEST_JWT_SECRET", JWT_ALG_HS256, SECRET, "{\"sub\":\"-3\"," GOOD "}", "user id"},
        {NULL, "TEST_JWT_SECRET", JWT_ALG_HS256, SECRET, "{\"sub\":\"alice\"," GOOD "}", "user id"},
        {NULL, "TEST_JWT_SECRET", JWT_ALG_HS256, SECRET,
         "{\"sub\":\"9223372036854775808\"," GOOD "}", "user id"},
        {NULL, "TEST_JWT_SECRET", JWT_ALG_HS256, SECRET, "{\"sub\":1.5," GOOD "}", "user id"},
        {NULL, "TEST_JWT_SECRET", JWT_ALG_HS256, SECRET, "{" GOOD "}", "user id"},
        /* an RS256 server: an ES256 token, an HS256 token whose secret is the public key */
        {rsa.path, NULL, JWT_ALG_ES256, ec.priv, "{\"sub\":\"1\"," GOOD "}", "alg must be RS256"},
        {rsa.path, NULL, JWT_ALG_HS256, rsa.pub, "{\"sub\":\"1\"," GOOD "}", "alg must be RS256"},
        {rsa.path, NULL, JWT_ALG_NONE, NULL, "{\"sub\":\"1\"," GOOD "}", "alg must be RS256"},
        /* an HS256 server: an RS256 token */
        {NULL, "TEST_JWT_SECRET", JWT_ALG_RS256, rsa.priv, "{\"sub\":\"1\"," GOOD "}",
         "alg must be HS256"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct auth *a = make(cases[i].key_file, cases[i].secret_env);
        char *tok = token(cases[i].alg, cases[i].sign_with, cases[i].claims);
        char why[160] = "";
        int64_t user = 99;

        if (verify(a, tok, &user, why, sizeof(why)) != AUTH_INVALID)
            fail_msg("case %zu accepted", i);
        if (!strstr(why, cases[i].why))
            fail_msg("case %zu: \"%s\" does not say \"%s\"", i, why, cases[i].why);
        assert_int_equal(user, 0);
        free(tok);
        auth_free(a);
    }
}

/* Every alg: a signature changed in one place, cut short, or made by another key fails. */
static void test_tampered_signatures(void **state)
{
    struct keypair other;
    struct {
        const char *key_file, *secret_env;
        jwt_alg_t alg;
        const char *sign_with;
    } cases[] = {
        {NULL, "TEST_JWT_SECRET", JWT_ALG_HS256, SECRET},
        {rsa.path, NULL, JWT_ALG_RS256, rsa.priv},
        {ec.path, NULL, JWT_ALG_ES256, ec.priv},
    };

    (void)state;
    make_keys(&other, EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048), "other");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct auth *a = make(cases[i].key_file, cases[i].secret_env);
        char *tok = token(cases[i].alg, cases[i].sign_with, "{\"sub\":\"3\"," GOOD "}");
        size_t n = strlen(tok);
        char why[160];
        int64_t user;

        assert_int_equal(verify(a, tok, &user, why, sizeof(why)), AUTH_OK);
        tok[n - 5] = tok[n - 5] == 'A' ? 'B' : 'A';
        assert_int_equal(verify(a, tok, &user, why, sizeof(why)), AUTH_INVALID);
        assert_non_null(strstr(why, "signature"));
        tok[n - 5] = '\0';
        assert_int_equal(verify(a, tok, &user, why, sizeof(why)), AUTH_INVALID);
        free(tok);
        auth_free(a);
    }
    {
        struct auth *a = make(rsa.path, NULL);
        char *tok = token(JWT_ALG_RS256, other.priv, "{\"sub\":\"3\"," GOOD "}");
        char why[160];
        int64_t user;
        assert_int_equal(verify(a, tok, &user, why, sizeof(why)), AUTH_INVALID);
        assert_non_null(strstr(why, "signature"));
        free(tok);
        auth_free(a);
    }
    unlink(other.path);
}

/* A token that passed is remembered: checked again for exp and nbf, never trusted blindly. */
static void test_verified_tokens_are_remembered(void **state)
{
    struct auth *a = make(rsa.path, NULL);
    char *tok = token(JWT_ALG_RS256, rsa.priv, "{\"sub\":\"6\"," GOOD "}");
    char *later = token(JWT_ALG_RS256, rsa.priv, "{\"sub\":\"7\",\"nbf\":1800000100," GOOD "}");
    char header[8300], why[160];
    int64_t user = 0;

    (void)state;
    snprintf(header, sizeof(header), "Bearer %s", tok);
    assert_int_equal(auth_verify(a, header, NOW, &user, why, sizeof(why)), AUTH_OK);
    assert_int_equal(auth_cache_hits(a), 0);
    assert_int_equal(auth_verify(a, header, NOW + 1, &user, why, sizeof(why)), AUTH_OK);
    assert_int_equal(user, 6);
    assert_int_equal(auth_cache_hits(a), 1);
    /* Remembered, and still expires. */
    assert_int_equal(auth_verify(a, header, 1800000600 + 30, &user, why, sizeof(why)),
                     AUTH_INVALID);
    assert_non_null(strstr(why, "expired"));
    assert_int_equal(user, 0);
    assert_int_equal(auth_cache_hits(a), 2);
    /* One byte changed is another token: checked in full, and refused. */
    header[strlen(header) - 3] = header[strlen(header) - 3] == 'A' ? 'B' : 'A';
    assert_int_equal(auth_verify(a, header, NOW, &user, why, sizeof(why)), AUTH_INVALID);
    assert_int_equal(auth_cache_hits(a), 2);
    /* A refusal is not remembered: once valid, the same token passes in full. */
    snprintf(header, sizeof(header), "Bearer %s", later);
    assert_int_equal(auth_verify(a, header, NOW, &user, why, sizeof(why)), AUTH_INVALID);
    assert_non_null(strstr(why, "not valid yet"));
    assert_int_equal(auth_verify(a, header, 1800000100, &user, why, sizeof(why)), AUTH_OK);
    assert_int_equal(user, 7);
    assert_int_equal(auth_cache_hits(a), 2);
    free(tok);
    free(later);
    auth_free(a);
}

/*
 * A frontend's sessions each send their own token, over and over: 1,000 of
 * them (bench's edge rows cycle through as many) all stay remembered. A
 * direct-mapped table lost ~1 in 5 to collisions, and with RS256 each such
 * request paid a full decode and signature check.
 */
static void test_many_tokens_all_remembered(void **state)
{
    enum { N = 1000 };
    struct auth *a = make(NULL, "TEST_JWT_SECRET");
    static char headers[N][300];
    char why[160], claims[96];
    int64_t user = 0;

    (void)state;
    for (int i = 0; i < N; i++) {
        char *tok;
        snprintf(claims, sizeof(claims), "{\"sub\":\"%d\"," GOOD "}", i + 1);
        tok = token(JWT_ALG_HS256, SECRET, claims);
        assert_true(snprintf(headers[i], sizeof(headers[i]), "Bearer %s", tok) <
                    (int)sizeof(headers[i]));
        free(tok);
        assert_int_equal(auth_verify(a, headers[i], NOW, &user, why, sizeof(why)), AUTH_OK);
    }
    assert_int_equal(auth_cache_hits(a), 0);
    for (int round = 0; round < 3; round++)
        for (int i = 0; i < N; i++) {
            assert_int_equal(auth_verify(a, headers[i], NOW, &user, why, sizeof(why)), AUTH_OK);
            assert_int_equal(user, i + 1);
        }
    assert_int_equal(auth_cache_hits(a), 3 * N);
    auth_free(a);
}

static void test_header_shapes(void **state)
{
    struct auth *a = make(NULL, "TEST_JWT_SECRET");
    char *tok = token(JWT_ALG_HS256, SECRET, "{\"sub\":\"8\"," GOOD "}");
    char header[2048], why[160];
    int64_t user;
    const char *bad[] = {"Basic dXNlcjpwYXNz", "Bearer",         "Bearer ",         "Bearer a.b",
                         "Bearer a b.c.d",     "Bearer a.b.c.d", "Bearer !!.??.##", "Bearer a.b.c"};

    (void)state;
    assert_int_equal(auth_verify(a, NULL, NOW, &user, why, sizeof(why)), AUTH_MISSING);
    assert_int_equal(auth_verify(a, "", NOW, &user, why, sizeof(why)), AUTH_MISSING);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (auth_verify(a, bad[i], NOW, &user, why, sizeof(why)) != AUTH_INVALID)
            fail_msg("\"%s\" was not refused", bad[i]);
    snprintf(header, sizeof(header), "bearer   %s", tok); /* scheme in any case, spaces */
    assert_int_equal(auth_verify(a, header, NOW, &user, why, sizeof(why)), AUTH_OK);
    assert_int_equal(user, 8);
    /* the same token a second after its expiry plus the leeway */
    assert_int_equal(auth_verify(a, header, 1800000600 + 30, &user, why, sizeof(why)),
                     AUTH_INVALID);
    free(tok);
    auth_free(a);
}

static void test_configuration_errors(void **state)
{
    struct {
        struct auth_opts o;
        const char *err;
    } cases[] = {
        {{.user_claim = "sub"}, "one of"},
        {{.key_file = rsa.path, .secret_env = "TEST_JWT_SECRET", .user_claim = "sub"}, "one of"},
        {{.secret_env = "TEST_JWT_SHORT", .user_claim = "sub"}, "at least 32 bytes"},
        {{.secret_env = "TEST_JWT_UNSET_VARIABLE", .user_claim = "sub"}, "unset"},
        {{.key_file = "/nonexistent/key.pem", .user_claim = "sub"}, "No such file"},
        {{.key_file = ec384.path, .user_claim = "sub"}, "P-256"},
        {{.key_file = "/etc/hostname", .user_claim = "sub"}, "not a PEM public key"},
        /* The claim's default is the options table's ("sub"), not a second one here. */
        {{.key_file = rsa.path, .user_claim = ""}, "--jwt-user-claim"},
        {{.key_file = rsa.path}, "--jwt-user-claim"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[256] = "";
        struct auth *a = auth_new(&cases[i].o, err, sizeof(err));
        assert_null(a);
        if (!strstr(err, cases[i].err))
            fail_msg("case %zu: \"%s\" does not say \"%s\"", i, err, cases[i].err);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_tokens_of_each_alg),
        cmocka_unit_test(test_every_rejection_says_why),
        cmocka_unit_test(test_tampered_signatures),
        cmocka_unit_test(test_verified_tokens_are_remembered),
        cmocka_unit_test(test_many_tokens_all_remembered),
        cmocka_unit_test(test_header_shapes),
        cmocka_unit_test(test_configuration_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
