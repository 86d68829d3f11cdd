/*
 * offsets.c - per-partition settle bookkeeping. See offsets.h.
 *
 * Each partition is a ring of {offset, settled} in delivery order. Settling
 * finds its entry by binary search (offsets only grow within a ring), then
 * pops settled entries off the head; the last popped offset + 1 is what
 * may be stored.
 */
#include "offsets.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

struct entry {
    int64_t offset;
    int settled;
};

struct part {
    struct entry *ring;
    size_t cap, head, len; /* cap is a power of two */
    int64_t last;          /* last offset tracked, -1 for none */
    int64_t next;          /* the offset to store, -1 for none yet */
    int dirty;             /* next moved since offsets_take() */
    int owned;             /* assigned to us: its messages may be tracked */
};

struct offsets {
    struct part *parts;
    int32_t nparts;
};

struct offsets *offsets_new(void)
{
    return xcalloc(1, sizeof(struct offsets));
}

void offsets_free(struct offsets *o)
{
    if (!o)
        return;
    for (int32_t i = 0; i < o->nparts; i++)
        free(o->parts[i].ring);
    free(o->parts);
    free(o);
}

static void part_reset(struct part *p)
{
    p->head = p->len = 0;
    p->last = -1;
    p->next = -1;
    p->dirty = 0;
}

static struct part *get_part(struct offsets *o, int32_t partition, int create)
{
    if (partition < 0)
        return NULL;
    if (partition >= o->nparts) {
        if (!create)
            return NULL;
        o->parts = xrealloc(o->parts, (size_t)(partition + 1) * sizeof(*o->parts));
        for (int32_t i = o->nparts; i <= partition; i++) {
            memset(&o->parts[i], 0, sizeof(o->parts[i]));
            part_reset(&o->parts[i]);
        }
        o->nparts = partition + 1;
    }
    return &o->parts[partition];
}

static struct entry *at(struct part *p, size_t i)
{
    return &p->ring[(p->head + i) & (p->cap - 1)];
}

int offsets_track(struct offsets *o, int32_t partition, int64_t offset)
{
    struct part *p = get_part(o, partition, 1);

    if (!p || !p->owned || offset < 0 || offset <= p->last)
        return -1;
    if (p->len == p->cap) {
        size_t ncap = p->cap ? p->cap * 2 : 64;
        struct entry *ring = xmalloc(ncap * sizeof(*ring));
        for (size_t i = 0; i < p->len; i++)
            ring[i] = *at(p, i);
        free(p->ring);
        p->ring = ring;
        p->cap = ncap;
        p->head = 0;
    }
    p->ring[(p->head + p->len) & (p->cap - 1)] = (struct entry){offset, 0};
    p->len++;
    p->last = offset;
    return 0;
}

void offsets_settle(struct offsets *o, int32_t partition, int64_t offset)
{
    struct part *p = get_part(o, partition, 0);
    size_t lo = 0, hi;

    if (!p)
        return;
    hi = p->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        struct entry *e = at(p, mid);
        if (e->offset == offset) {
            e->settled = 1;
            break;
        }
        if (e->offset < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    while (p->len && at(p, 0)->settled) {
        p->next = at(p, 0)->offset + 1;
        p->dirty = 1;
        p->head = (p->head + 1) & (p->cap - 1);
        p->len--;
    }
}

int offsets_take(struct offsets *o, int32_t partition, int64_t *next)
{
    struct part *p = get_part(o, partition, 0);

    if (!p || !p->dirty)
        return 0;
    p->dirty = 0;
    *next = p->next;
    return 1;
}

void offsets_assign(struct offsets *o, int32_t partition)
{
    struct part *p = get_part(o, partition, 1);
    if (!p)
        return;
    part_reset(p);
    p->owned = 1;
}

void offsets_revoke(struct offsets *o, int32_t partition)
{
    struct part *p = get_part(o, partition, 0);
    if (!p)
        return;
    part_reset(p);
    p->owned = 0;
}

size_t offsets_pending(const struct offsets *o, int32_t partition)
{
    if (partition < 0 || partition >= o->nparts)
        return 0;
    return o->parts[partition].len;
}

int32_t offsets_partition_count(const struct offsets *o)
{
    return o->nparts;
}
