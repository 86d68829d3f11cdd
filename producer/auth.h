/*
 * auth.h - verified identity: the voter is the user a signed JWT names.
 *
 * Optional; on with a key: --jwt-key FILE (a PEM public key: RSA gives
 * RS256, EC P-256 gives ES256) or --jwt-secret-env NAME (an HS256 secret of
 * at least 32 bytes, read from that environment variable, never from argv).
 * libjwt decodes a token, OpenSSL checks its signature (auth.c says why
 * not libjwt's own check); nothing here is hand-written crypto.
 *
 * A token is accepted when all of these hold, else auth_verify() says
 * which failed (the 401's detail; the token's content is never echoed):
 *   - the header is "Authorization: Bearer <compact JWS>"
 *   - the header's alg is the configured one ("none", and HS256 signed
 *     with a public key as its secret, are refused), and the signature
 *     verifies with the key
 *   - "exp" is present and not past, "nbf" (if present) not in the future,
 *     both with --jwt-leeway-s of clock skew
 *   - "iss" equals --jwt-issuer and "aud" is or contains --jwt-audience,
 *     each when configured
 *   - the user claim (--jwt-user-claim, default "sub") is an integer or a
 *     decimal string in 1..2^63-1: the voter's user_id
 *
 *   struct auth *a = auth_new(&opts, err, sizeof err);   NULL + err; see auth_configured()
 *   rc = auth_verify(a, authorization_header_or_null, now_s, &user_id, why, sizeof why);
 *        AUTH_OK, AUTH_MISSING (no Bearer token), AUTH_INVALID (why says what)
 *   auth_alg(a)      "HS256", "RS256" or "ES256"
 *   auth_cache_hits(a)   tokens answered from the verified-token table
 *   auth_free(a);
 *
 * A token that passed is remembered (4,096 of them, by SHA-256): the same
 * token again skips decoding and the signature, never exp and nbf.
 *
 * Thread-safe: the verified-token table has locks of its own; the rest is
 * read-only after auth_new().
 */
#ifndef TADAK_AUTH_H
#define TADAK_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_TOKEN_MAX 8192 /* a longer Authorization header is refused unread */

struct auth;

struct auth_opts {
    const char *key_file;   /* PEM public key, or NULL */
    const char *secret_env; /* name of the environment variable holding the HS256 secret */
    const char *issuer;     /* required "iss", or NULL */
    const char *audience;   /* required "aud" (or one of its items), or NULL */
    const char *user_claim; /* the claim holding the user id; required */
    int64_t leeway_s;       /* clock skew allowed on exp and nbf */
};

enum auth_result { AUTH_OK, AUTH_MISSING, AUTH_INVALID };

int auth_configured(const struct auth_opts *o);
struct auth *auth_new(const struct auth_opts *o, char *errstr, size_t errsize);
enum auth_result auth_verify(struct auth *a, const char *authorization, int64_t now_s,
                             int64_t *user_id, char *why, size_t whysize);
uint64_t auth_cache_hits(const struct auth *a);
const char *auth_alg(const struct auth *a);
void auth_free(struct auth *a);

#endif
