/*
 * idem.c - Idempotency-Key values and decisions. See idem.h.
 */
#include "idem.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME  1099511628211ULL

void idem_hash_hex(const char *body, size_t len, char hex[IDEM_HASH_HEX])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;

    /* SHA-256 cannot fail on memory input; if libcrypto ever says otherwise, stop. */
    if (EVP_Digest(body ? body : "", len, md, &n, EVP_sha256(), NULL) != 1 || n != 32)
        abort();
    for (unsigned int i = 0; i < n; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[2 * n] = '\0';
}

void idem_legacy_hex(const char *body, size_t len, char hex[IDEM_LEGACY_HEX])
{
    uint64_t h = FNV_OFFSET;

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)body[i];
        h *= FNV_PRIME;
    }
    snprintf(hex, IDEM_LEGACY_HEX, "%016" PRIx64, h);
}

static int fits(int n, size_t size)
{
    return (n < 0 || (size_t)n >= size) ? -1 : n;
}

int idem_inflight_value(const char *hex, const char *event_id, char *buf, size_t size)
{
    return fits(snprintf(buf, size, "inflight %s %s", hex, event_id), size);
}

int idem_done_value(const char *hex, const char *body, char *buf, size_t size)
{
    return fits(snprintf(buf, size, "done %s %s", hex, body), size);
}

/*
 * "<word> <hash> " at the start of old: the rest follows. *same says whether
 * <hash> is this body's: SHA-256 for 64 digits, the legacy FNV for 16.
 */
static const char *match(const char *old, const char *word, const char *hex, const char *legacy,
                         int *same)
{
    size_t w = strlen(word), h;

    *same = 0;
    if (strncmp(old, word, w) != 0 || old[w] != ' ')
        return NULL;
    old += w + 1;
    h = strcspn(old, " ");
    if (old[h] != ' ')
        return NULL;
    if (h == strlen(hex))
        *same = memcmp(old, hex, h) == 0;
    else if (legacy && h == strlen(legacy))
        *same = memcmp(old, legacy, h) == 0;
    return old + h + 1;
}

enum idem_verdict idem_decide(const char *old, const char *hex, const char *legacy_hex,
                              const char **body, size_t *len)
{
    const char *rest;
    int same;

    *body = NULL;
    *len = 0;
    if ((rest = match(old, "done", hex, legacy_hex, &same)) != NULL) {
        if (!same || *rest == '\0')
            return IDEM_MISMATCH;
        *body = rest;
        *len = strlen(rest);
        return IDEM_REPLAY;
    }
    if ((rest = match(old, "inflight", hex, legacy_hex, &same)) != NULL)
        return same ? IDEM_IN_PROGRESS : IDEM_MISMATCH;
    return IDEM_MISMATCH;
}
