/*
 * recorded.c - see recorded.h.
 *
 * A generation is an open-addressing table (linear probing) of slots, each
 * a 32-bit tag of the token's FNV-1a hash and the token's offset + 1 in the
 * generation's byte pool, where the tokens are stored NUL-terminated. A slot
 * is 8 bytes and a token costs its length + 1, so the bench's 100k voters
 * (~19-byte tokens) fit in a few MiB. A tag match is confirmed with strcmp.
 *
 * Rotation happens before every lookup and insert, so an entry is never
 * consulted past window_ms: a generation stops taking tokens half a window
 * after it started, and is dropped a window after it started.
 */
#include "recorded.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

struct slot {
    uint32_t tag;
    uint32_t at; /* offset + 1 in pool; 0: empty */
};

struct gen {
    struct slot *slots;
    char *pool;
    size_t used, count;
    int64_t started;
};

struct recorded {
    struct gen g[2]; /* g[0] current, g[1] previous */
    size_t nslots, max_count, pool_bytes;
    int64_t window_ms;
};

static uint64_t hash(const char *s, size_t *len)
{
    *len = strlen(s);
    return util_fnv1a64(s, *len);
}

static void gen_clear(struct gen *g, size_t nslots, int64_t now)
{
    if (g->count)
        memset(g->slots, 0, nslots * sizeof(*g->slots));
    g->used = g->count = 0;
    g->started = now;
}

static void rotate(struct recorded *dc, int64_t now)
{
    struct gen t = dc->g[1];

    dc->g[1] = dc->g[0];
    dc->g[0] = t;
    gen_clear(&dc->g[0], dc->nslots, now);
}

/* Keep every entry younger than the window. */
static void expire(struct recorded *dc, int64_t now)
{
    if (now - dc->g[0].started >= dc->window_ms / 2)
        rotate(dc, now);
    if (now - dc->g[1].started >= dc->window_ms)
        gen_clear(&dc->g[1], dc->nslots, now);
}

static int gen_has(const struct recorded *dc, const struct gen *g, const char *token, uint64_t h)
{
    size_t mask = dc->nslots - 1, i = (size_t)(h >> 32) & mask;
    uint32_t tag = (uint32_t)h;

    if (!g->count)
        return 0;
    for (;; i = (i + 1) & mask) {
        const struct slot *s = &g->slots[i];
        if (!s->at)
            return 0;
        if (s->tag == tag && strcmp(g->pool + s->at - 1, token) == 0)
            return 1;
    }
}

struct recorded *recorded_new(size_t slots, size_t pool_bytes, int64_t window_ms)
{
    struct recorded *dc = xcalloc(1, sizeof(*dc));

    dc->nslots = 16;
    while (dc->nslots < slots)
        dc->nslots *= 2;
    dc->max_count = dc->nslots / 4 * 3;
    dc->pool_bytes = pool_bytes > UINT32_MAX - 1 ? UINT32_MAX - 1 : pool_bytes;
    dc->window_ms = window_ms > 1 ? window_ms : 2;
    for (int k = 0; k < 2; k++) {
        dc->g[k].slots = xcalloc(dc->nslots, sizeof(*dc->g[k].slots));
        dc->g[k].pool = xmalloc(dc->pool_bytes);
    }
    return dc;
}

int recorded_has(struct recorded *dc, const char *token, int64_t now_ms)
{
    size_t len;
    uint64_t h = hash(token, &len);

    expire(dc, now_ms);
    return gen_has(dc, &dc->g[0], token, h) || gen_has(dc, &dc->g[1], token, h);
}

void recorded_add(struct recorded *dc, const char *token, int64_t now_ms)
{
    size_t len, mask = dc->nslots - 1, i;
    uint64_t h = hash(token, &len);
    struct gen *g;

    expire(dc, now_ms);
    if (len + 1 > dc->pool_bytes || gen_has(dc, &dc->g[0], token, h))
        return;
    if (dc->g[0].count >= dc->max_count || dc->g[0].used + len + 1 > dc->pool_bytes)
        rotate(dc, now_ms);
    g = &dc->g[0];
    for (i = (size_t)(h >> 32) & mask; g->slots[i].at; i = (i + 1) & mask)
        ;
    memcpy(g->pool + g->used, token, len + 1);
    g->slots[i].tag = (uint32_t)h;
    g->slots[i].at = (uint32_t)(g->used + 1);
    g->used += len + 1;
    g->count++;
}

size_t recorded_count(const struct recorded *dc)
{
    return dc->g[0].count + dc->g[1].count;
}

void recorded_free(struct recorded *dc)
{
    if (!dc)
        return;
    for (int k = 0; k < 2; k++) {
        free(dc->g[k].slots);
        free(dc->g[k].pool);
    }
    free(dc);
}
