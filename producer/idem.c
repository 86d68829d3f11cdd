/*
 * idem.c - Idempotency-Key values and decisions. See idem.h.
 */
#include "idem.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME  1099511628211ULL

uint64_t idem_hash(const char *body, size_t len)
{
    uint64_t h = FNV_OFFSET;

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)body[i];
        h *= FNV_PRIME;
    }
    return h;
}

void idem_hash_hex(const char *body, size_t len, char hex[IDEM_HASH_HEX])
{
    snprintf(hex, IDEM_HASH_HEX, "%016" PRIx64, idem_hash(body ? body : "", len));
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

/* "<word> <hex> " at the start of old, with our hash: the rest follows. */
static const char *match(const char *old, const char *word, const char *hex, int *same)
{
    size_t w = strlen(word), h = strlen(hex);

    *same = 0;
    if (strncmp(old, word, w) != 0 || old[w] != ' ')
        return NULL;
    old += w + 1;
    if (strlen(old) < h + 1 || old[h] != ' ')
        return NULL;
    *same = memcmp(old, hex, h) == 0;
    return old + h + 1;
}

enum idem_verdict idem_decide(const char *old, const char *hex, const char **body, size_t *len)
{
    const char *rest;
    int same;

    *body = NULL;
    *len = 0;
    if ((rest = match(old, "done", hex, &same)) != NULL) {
        if (!same || *rest == '\0')
            return IDEM_MISMATCH;
        *body = rest;
        *len = strlen(rest);
        return IDEM_REPLAY;
    }
    if ((rest = match(old, "inflight", hex, &same)) != NULL)
        return same ? IDEM_IN_PROGRESS : IDEM_MISMATCH;
    return IDEM_MISMATCH;
}
