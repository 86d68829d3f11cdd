/*
 * loadgen.c - seeded, shuffled vote stream. See loadgen.h.
 *
 * Event k (0-based, before shuffling) is copy k % D of user k / D + 1, so
 * an index is all the state an event needs. The shuffle is Fisher-Yates
 * driven by splitmix64, with rejection sampling so every position is
 * equally likely (plain modulo would bias small indices).
 */
#include "loadgen.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>

struct loadgen {
    uint32_t *order;
    uint64_t n, next;
    uint64_t dup, seed, candidates;
};

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, bound). */
static uint64_t bounded(uint64_t *state, uint64_t bound)
{
    uint64_t threshold = (0 - bound) % bound, r;

    do
        r = splitmix64(state);
    while (r < threshold);
    return r % bound;
}

int64_t loadgen_candidate(uint64_t seed, uint64_t user, uint64_t candidates)
{
    uint64_t state = seed ^ (user * 0xd1b54a32d192ed03ULL);
    return (int64_t)(1 + splitmix64(&state) % candidates);
}

struct loadgen *loadgen_new(uint64_t users, uint64_t dup, uint64_t seed, uint64_t candidates,
                            char *errstr, size_t errsize)
{
    struct loadgen *g;
    uint64_t state = seed;

    if (users == 0 || dup == 0 || candidates == 0) {
        snprintf(errstr, errsize, "users, dup-factor and candidates must be positive");
        return NULL;
    }
    if (users > UINT32_MAX / dup) {
        snprintf(errstr, errsize, "users x dup-factor must stay below %u", UINT32_MAX);
        return NULL;
    }
    g = xcalloc(1, sizeof(*g));
    g->n = users * dup;
    g->dup = dup;
    g->seed = seed;
    g->candidates = candidates;
    g->order = xmalloc(g->n * sizeof(*g->order));
    for (uint64_t i = 0; i < g->n; i++)
        g->order[i] = (uint32_t)i;
    for (uint64_t i = g->n - 1; i > 0; i--) {
        uint64_t j = bounded(&state, i + 1);
        uint32_t t = g->order[i];
        g->order[i] = g->order[j];
        g->order[j] = t;
    }
    return g;
}

int loadgen_next(struct loadgen *g, int64_t *user_id, int64_t *candidate_id)
{
    uint64_t user;

    if (g->next >= g->n)
        return 0;
    user = g->order[g->next++] / g->dup + 1;
    *user_id = (int64_t)user;
    *candidate_id = loadgen_candidate(g->seed, user, g->candidates);
    return 1;
}

uint64_t loadgen_count(const struct loadgen *g)
{
    return g->n;
}

void loadgen_free(struct loadgen *g)
{
    if (!g)
        return;
    free(g->order);
    free(g);
}
