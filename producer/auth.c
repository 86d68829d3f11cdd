/*
 * auth.c - Bearer tokens: libjwt splits and decodes them, OpenSSL checks
 * the signature, json-c reads the claims. See auth.h.
 *
 * Why not libjwt's own check: libjwt 1.10 parses the PEM key again for
 * every token, and OpenSSL 3's decoders make that ~0.5 ms (measured: 2,000
 * RS256 tokens took 487 us each, 95 % of it in PEM decoding and its locks).
 * So the key is parsed once here, and each signature is one EVP_DigestVerify
 * (RS256, ES256: the JOSE R||S turned into DER first) or one HMAC compared
 * in constant time (HS256). The token is decoded without a key, and its
 * header's alg must be the configured one before anything else is read.
 *
 * A frontend sends every vote of a session with the same token, so a token
 * that passed is remembered (its SHA-256, user, exp and nbf) in a small
 * table: the same bytes again skip the decoding and the signature, never
 * the exp and nbf checks. Only tokens that passed are kept; a failing one
 * is checked in full every time. The table is set-associative (the digest
 * picks a set of AUTH_SEEN_WAYS, kept most recently used first, the least
 * recently used making way): direct-mapped, two live tokens sharing a slot
 * evicted each other on every request, about 1 in 5 of 1,000 sessions.
 */
#include "auth.h"
#include "util.h"

#include <errno.h>
#include <json-c/json.h>
#include <jwt.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define AUTH_KEY_MAX    65536 /* a PEM public key is a few hundred bytes */
#define AUTH_SECRET_MIN 32    /* RFC 7518 3.2: an HS256 key of at least 256 bits */
#define AUTH_SIG_MAX    1024  /* an RSA-8192 signature; ES256's is 64 bytes */
#define AUTH_SEEN_SLOTS 4096  /* tokens remembered once verified (a power of two) */
#define AUTH_SEEN_WAYS  8     /* slots of a set */
#define AUTH_SEEN_LOCKS 16

/* A token that passed: what the checks that depend on the time need. */
struct auth_seen {
    unsigned char digest[SHA256_DIGEST_LENGTH]; /* of the compact token */
    int64_t user, exp, nbf;                     /* nbf: INT64_MIN when absent */
    int used;
};

struct auth {
    unsigned char *secret; /* HS256 */
    int secretlen;
    EVP_PKEY *pkey; /* RS256, ES256: parsed once */
    jwt_alg_t alg;
    char *issuer, *audience, *user_claim;
    int64_t leeway_s;
    EVP_MD *sha256;         /* fetched once */
    struct auth_seen *seen; /* AUTH_SEEN_SLOTS */
    pthread_mutex_t locks[AUTH_SEEN_LOCKS];
    _Atomic uint64_t hits;
};

int auth_configured(const struct auth_opts *o)
{
    return (o->key_file && *o->key_file) || (o->secret_env && *o->secret_env);
}

/* The PEM file's public key, and the alg its type implies: 0, or -1 with errstr. */
static int load_key(struct auth *a, const char *path, char *errstr, size_t errsize)
{
    FILE *f = fopen(path, "rb");
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;
    char *pem;
    size_t n = 0;
    int rc = -1;

    if (!f) {
        snprintf(errstr, errsize, "--jwt-key %s: %s", path, strerror(errno));
        return -1;
    }
    pem = xmalloc(AUTH_KEY_MAX + 1);
    n = fread(pem, 1, AUTH_KEY_MAX + 1, f);
    fclose(f);
    if (n == 0 || n > AUTH_KEY_MAX) {
        snprintf(errstr, errsize, "--jwt-key %s: empty, or larger than %d bytes", path,
                 AUTH_KEY_MAX);
        free(pem);
        return -1;
    }
    bio = BIO_new_mem_buf(pem, (int)n);
    pkey = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    if (!pkey) {
        snprintf(errstr, errsize, "--jwt-key %s: not a PEM public key (BEGIN PUBLIC KEY)", path);
        goto out;
    }
    if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA) {
        a->alg = JWT_ALG_RS256;
        rc = 0;
    } else if (EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC) {
        char group[64] = "";
        size_t glen = 0;
        if (EVP_PKEY_get_group_name(pkey, group, sizeof(group), &glen) == 1 &&
            (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)) {
            a->alg = JWT_ALG_ES256;
            rc = 0;
        } else {
            snprintf(errstr, errsize, "--jwt-key %s: an EC key must be on P-256 (ES256), not %s",
                     path, group[0] ? group : "this curve");
        }
    } else {
        snprintf(errstr, errsize, "--jwt-key %s: an RSA (RS256) or EC P-256 (ES256) key is needed",
                 path);
    }
out:
    if (rc == 0)
        a->pkey = pkey;
    else
        EVP_PKEY_free(pkey);
    BIO_free(bio);
    free(pem);
    return rc;
}

struct auth *auth_new(const struct auth_opts *o, char *errstr, size_t errsize)
{
    struct auth *a = xcalloc(1, sizeof(*a));
    int has_key = o->key_file && *o->key_file, has_secret = o->secret_env && *o->secret_env;

    if (has_key == has_secret) {
        snprintf(errstr, errsize, "give one of --jwt-key and --jwt-secret-env");
        goto fail;
    }
    if (!o->user_claim || !*o->user_claim) { /* its default is the options table's */
        snprintf(errstr, errsize, "--jwt-user-claim must name a claim");
        goto fail;
    }
    if (has_key && load_key(a, o->key_file, errstr, errsize) != 0)
        goto fail;
    if (has_secret) {
        const char *secret = getenv(o->secret_env);
        size_t n = secret ? strlen(secret) : 0;
        if (n < AUTH_SECRET_MIN) {
            snprintf(errstr, errsize,
                     "--jwt-secret-env %s: the variable must hold an HS256 secret of at least %d "
                     "bytes (%s); try: openssl rand -hex 32",
                     o->secret_env, AUTH_SECRET_MIN, secret ? "it is shorter" : "it is unset");
            goto fail;
        }
        a->secret = (unsigned char *)xstrdup(secret);
        a->secretlen = (int)n;
        a->alg = JWT_ALG_HS256;
    }
    a->issuer = o->issuer && *o->issuer ? xstrdup(o->issuer) : NULL;
    a->audience = o->audience && *o->audience ? xstrdup(o->audience) : NULL;
    a->user_claim = xstrdup(o->user_claim);
    a->leeway_s = o->leeway_s;
    if (!(a->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL))) {
        snprintf(errstr, errsize, "OpenSSL has no SHA-256");
        goto fail;
    }
    a->seen = xcalloc(AUTH_SEEN_SLOTS, sizeof(*a->seen));
    for (size_t i = 0; i < AUTH_SEEN_LOCKS; i++)
        pthread_mutex_init(&a->locks[i], NULL);
    return a;
fail:
    auth_free(a);
    return NULL;
}

const char *auth_alg(const struct auth *a)
{
    return jwt_alg_str(a->alg);
}

void auth_free(struct auth *a)
{
    if (!a)
        return;
    if (a->secret)
        memset(a->secret, 0, (size_t)a->secretlen);
    free(a->secret);
    EVP_PKEY_free(a->pkey);
    free(a->issuer);
    free(a->audience);
    free(a->user_claim);
    EVP_MD_free(a->sha256);
    if (a->seen)
        for (size_t i = 0; i < AUTH_SEEN_LOCKS; i++)
            pthread_mutex_destroy(&a->locks[i]);
    free(a->seen);
    free(a);
}

uint64_t auth_cache_hits(const struct auth *a)
{
    return atomic_load(&a->hits);
}

/* ---- verification ---------------------------------------------------------- */

/* "Bearer <token>": the token, or NULL. Only the compact form's alphabet passes. */
static const char *bearer_token(const char *h)
{
    size_t dots = 0, n;

    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    n = strlen(h); /* libmicrohttpd trims the value's trailing blanks */
    if (n == 0 || n > AUTH_TOKEN_MAX)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = h[i];
        if (c == '.')
            dots++;
        else if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_'))
            return NULL;
    }
    return dots == 2 ? h : NULL;
}

static enum auth_result invalid(char *why, size_t whysize, const char *text)
{
    util_strlcpy(why, text, whysize);
    return AUTH_INVALID;
}

/* A NumericDate claim: 1 present (in *out), 0 absent, -1 not a number. */
static int numeric_date(json_object *claims, const char *name, int64_t *out)
{
    json_object *v;

    if (!json_object_object_get_ex(claims, name, &v) || !v)
        return 0;
    if (json_object_is_type(v, json_type_int)) {
        *out = json_object_get_int64(v);
        return 1;
    }
    if (json_object_is_type(v, json_type_double)) {
        double d = json_object_get_double(v);
        if (d > -9.2e18 && d < 9.2e18) {
            *out = (int64_t)d;
            return 1;
        }
    }
    return -1;
}

static int string_is(json_object *v, const char *want)
{
    return v && json_object_is_type(v, json_type_string) &&
           strcmp(json_object_get_string(v), want) == 0;
}

/* "aud" is one string or an array of them (RFC 7519 4.1.3). */
static int audience_has(json_object *claims, const char *want)
{
    json_object *v;

    if (!json_object_object_get_ex(claims, "aud", &v) || !v)
        return 0;
    if (json_object_is_type(v, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(v); i++)
            if (string_is(json_object_array_get_idx(v, i), want))
                return 1;
        return 0;
    }
    return string_is(v, want);
}

/* The user claim as a user_id: an integer or a decimal string in 1..2^63-1. */
static int user_of(json_object *claims, const char *claim, int64_t *user)
{
    json_object *v;
    const char *text;

    if (!json_object_object_get_ex(claims, claim, &v) || !v)
        return -1;
    if (json_object_is_type(v, json_type_string))
        text = json_object_get_string(v);
    else if (json_object_is_type(v, json_type_int))
        text = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN); /* exact, unclamped */
    else
        return -1;
    for (const char *c = text; *c; c++)
        if (*c < '0' || *c > '9')
            return -1;
    return util_parse_i64(text, user) == 0 && *user >= 1 ? 0 : -1;
}

/* exp and nbf against now, with the leeway: AUTH_OK, or why not. */
static enum auth_result check_times(const struct auth *a, int64_t exp, int64_t nbf, int64_t now_s,
                                    char *why, size_t whysize)
{
    if (now_s - a->leeway_s >= exp)
        return invalid(why, whysize, "the token has expired");
    if (now_s + a->leeway_s < nbf)
        return invalid(why, whysize, "the token is not valid yet (nbf)");
    return AUTH_OK;
}

static enum auth_result check_claims(const struct auth *a, json_object *claims, int64_t now_s,
                                     struct auth_seen *out, char *why, size_t whysize)
{
    json_object *iss;
    char text[160];
    enum auth_result rc;

    switch (numeric_date(claims, "exp", &out->exp)) {
    case 0:
        return invalid(why, whysize, "the token has no \"exp\" (expiry)");
    case -1:
        return invalid(why, whysize, "the token's \"exp\" is not a number");
    default:
        break;
    }
    switch (numeric_date(claims, "nbf", &out->nbf)) {
    case -1:
        return invalid(why, whysize, "the token's \"nbf\" is not a number");
    case 0:
        out->nbf = INT64_MIN;
        break;
    default:
        break;
    }
    if ((rc = check_times(a, out->exp, out->nbf, now_s, why, whysize)) != AUTH_OK)
        return rc;
    if (a->issuer &&
        (!json_object_object_get_ex(claims, "iss", &iss) || !string_is(iss, a->issuer)))
        return invalid(why, whysize, "the token's issuer (iss) is not the configured one");
    if (a->audience && !audience_has(claims, a->audience))
        return invalid(why, whysize, "the token is not for this audience (aud)");
    if (user_of(claims, a->user_claim, &out->user) != 0) {
        snprintf(text, sizeof(text),
                 "the token's \"%s\" claim must be a user id in 1..9223372036854775807",
                 a->user_claim);
        return invalid(why, whysize, text);
    }
    return AUTH_OK;
}

/* base64url without padding (RFC 7515 2) into out: its length, or -1. */
static int b64url_decode(const char *s, size_t n, unsigned char *out, size_t outsize)
{
    char buf[AUTH_SIG_MAX * 2];
    size_t m = n, pad = (4 - n % 4) % 4;
    int len;

    if (n == 0 || pad == 3 || m + pad >= sizeof(buf) || (n + pad) / 4 * 3 > outsize)
        return -1;
    for (size_t i = 0; i < n; i++)
        buf[i] = s[i] == '-' ? '+' : s[i] == '_' ? '/' : s[i];
    while (m < n + pad)
        buf[m++] = '=';
    len = EVP_DecodeBlock(out, (const unsigned char *)buf, (int)m); /* counts the padding */
    return len < 0 ? -1 : len - (int)pad;
}

/* ES256's signature is R || S, 32 bytes each; OpenSSL wants DER. Its length, or -1. */
static int es256_der(const unsigned char *raw, int n, unsigned char *der, size_t dersize)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, 32, NULL), *s = BN_bin2bn(raw + 32, 32, NULL);
    unsigned char *p = der;
    int len = -1;

    if (n == 64 && sig && r && s && ECDSA_SIG_set0(sig, r, s) == 1) {
        r = s = NULL; /* the signature owns them now */
        if (i2d_ECDSA_SIG(sig, NULL) <= (int)dersize)
            len = i2d_ECDSA_SIG(sig, &p);
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return len;
}

/* The signature over token[0, dot) is the base64url after dot: 1 good, 0 not. */
static int signature_ok(const struct auth *a, const char *token, size_t dot)
{
    unsigned char sig[AUTH_SIG_MAX], der[AUTH_SIG_MAX], mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    int n = b64url_decode(token + dot + 1, strlen(token + dot + 1), sig, sizeof(sig)), ok = 0;
    EVP_MD_CTX *ctx;

    if (n <= 0)
        return 0;
    if (a->alg == JWT_ALG_HS256)
        return HMAC(a->sha256, a->secret, a->secretlen, (const unsigned char *)token, dot, mac,
                    &maclen) &&
               maclen == (unsigned int)n && CRYPTO_memcmp(mac, sig, maclen) == 0;
    if (a->alg == JWT_ALG_ES256 && (n = es256_der(sig, n, der, sizeof(der))) < 0)
        return 0;
    if (!(ctx = EVP_MD_CTX_new()))
        return 0;
    ok = EVP_DigestVerifyInit(ctx, NULL, a->sha256, NULL, a->pkey) == 1 &&
         EVP_DigestVerify(ctx, a->alg == JWT_ALG_ES256 ? der : sig, (size_t)n,
                          (const unsigned char *)token, dot) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

/* The set of a digest: its first way (the set's lock is set % AUTH_SEEN_LOCKS). */
static size_t seen_set(const unsigned char *digest)
{
    uint64_t v;

    memcpy(&v, digest, sizeof(v));
    return (size_t)(v & (AUTH_SEEN_SLOTS / AUTH_SEEN_WAYS - 1));
}

/* Under the set's lock: the way holding digest, or AUTH_SEEN_WAYS. */
static size_t seen_find(const struct auth_seen *ways, const unsigned char *digest)
{
    size_t i;

    for (i = 0; i < AUTH_SEEN_WAYS; i++)
        if (ways[i].used && CRYPTO_memcmp(ways[i].digest, digest, SHA256_DIGEST_LENGTH) == 0)
            break;
    return i;
}

/* Under the set's lock: way i's entry becomes e, first in the set (the rest move down). */
static void seen_promote(struct auth_seen *ways, size_t i, const struct auth_seen *e)
{
    if (i >= AUTH_SEEN_WAYS)
        i = AUTH_SEEN_WAYS - 1; /* new: the least recently used makes way */
    memmove(ways + 1, ways, i * sizeof(*ways));
    ways[0] = *e;
    ways[0].used = 1;
}

/* 1 if this token passed before (its entry copied to *out), else 0. */
static int seen_get(struct auth *a, const unsigned char *digest, struct auth_seen *out)
{
    size_t set = seen_set(digest), i;
    struct auth_seen *ways = a->seen + set * AUTH_SEEN_WAYS;
    pthread_mutex_t *lock = &a->locks[set % AUTH_SEEN_LOCKS];
    int found;

    pthread_mutex_lock(lock);
    i = seen_find(ways, digest);
    found = i < AUTH_SEEN_WAYS;
    if (found) {
        *out = ways[i];
        seen_promote(ways, i, out);
    }
    pthread_mutex_unlock(lock);
    return found;
}

static void seen_put(struct auth *a, const struct auth_seen *e)
{
    size_t set = seen_set(e->digest);
    struct auth_seen *ways = a->seen + set * AUTH_SEEN_WAYS;
    pthread_mutex_t *lock = &a->locks[set % AUTH_SEEN_LOCKS];

    pthread_mutex_lock(lock);
    seen_promote(ways, seen_find(ways, e->digest), e);
    pthread_mutex_unlock(lock);
}

/* Everything about a token not seen before; on success *e holds what to remember. */
static enum auth_result verify_full(const struct auth *a, const char *token, int64_t now_s,
                                    struct auth_seen *e, char *why, size_t whysize)
{
    const char *alg;
    jwt_t *jwt = NULL;
    char *grants = NULL;
    json_object *claims = NULL;
    enum auth_result rc;

    /* Decoded without a key (nothing is verified yet), to read its alg first. */
    if (jwt_decode(&jwt, token, NULL, 0) != 0 || !jwt)
        return invalid(why, whysize, "the token is malformed");
    alg = jwt_get_header(jwt, "alg");
    if (!alg || strcmp(alg, jwt_alg_str(a->alg)) != 0) {
        char text[96];
        snprintf(text, sizeof(text), "the token's alg must be %s", jwt_alg_str(a->alg));
        rc = invalid(why, whysize, text);
        goto out;
    }
    if (!signature_ok(a, token, (size_t)(strrchr(token, '.') - token))) {
        rc = invalid(why, whysize, "the token's signature does not verify");
        goto out;
    }
    grants = jwt_get_grants_json(jwt, NULL);
    claims = grants ? json_tokener_parse(grants) : NULL;
    if (!claims || !json_object_is_type(claims, json_type_object)) {
        rc = invalid(why, whysize, "the token's claims are not a JSON object");
        goto out;
    }
    rc = check_claims(a, claims, now_s, e, why, whysize);
out:
    json_object_put(claims);
    free(grants);
    jwt_free(jwt);
    return rc;
}

enum auth_result auth_verify(struct auth *a, const char *authorization, int64_t now_s,
                             int64_t *user_id, char *why, size_t whysize)
{
    struct auth_seen e;
    const char *token;
    enum auth_result rc;

    *user_id = 0;
    if (!authorization || !*authorization) {
        util_strlcpy(why, "an Authorization: Bearer token is required", whysize);
        return AUTH_MISSING;
    }
    if (!(token = bearer_token(authorization)))
        return invalid(why, whysize, "the Authorization header is not \"Bearer <JWT>\"");
    memset(&e, 0, sizeof(e));
    if (EVP_Digest(token, strlen(token), e.digest, NULL, a->sha256, NULL) != 1)
        return invalid(why, whysize, "the token could not be hashed");
    if (seen_get(a, e.digest, &e)) {
        atomic_fetch_add(&a->hits, 1);
        rc = check_times(a, e.exp, e.nbf, now_s, why, whysize);
    } else if ((rc = verify_full(a, token, now_s, &e, why, whysize)) == AUTH_OK) {
        seen_put(a, &e);
    }
    if (rc == AUTH_OK)
        *user_id = e.user;
    return rc;
}
