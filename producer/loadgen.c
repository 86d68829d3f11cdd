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

/* ---- other event types ------------------------------------------------------ */

/* The field that takes the user number: the identity when the key holds it, else key[0]. */
static int user_field(const struct evtype *t)
{
    for (size_t i = 0; i < t->nkey; i++)
        if (t->key[i] == t->identity)
            return t->identity;
    return t->key[0];
}

static int is_key(const struct evtype *t, int f)
{
    for (size_t i = 0; i < t->nkey; i++)
        if (t->key[i] == f)
            return 1;
    return 0;
}

/* A string field's allowed characters, ascending, into out[128]: how many. */
static size_t string_digits(const struct evfield *fd, char *out)
{
    size_t n = 0;

    for (int c = 0; c < 128; c++)
        if (fd->chars[c >> 3] >> (c & 7) & 1)
            out[n++] = (char)c;
    return n;
}

/* How many distinct values field fd holds (saturated at UINT64_MAX). */
static uint64_t capacity(const struct evfield *fd)
{
    char digits[128];
    uint64_t cap = 1, b;

    switch (fd->kind) {
    case EVF_ID:
    case EVF_INT:
        return (uint64_t)fd->max - (uint64_t)fd->min + 1; /* 0: the whole range */
    case EVF_ENUM_INT:
    case EVF_ENUM_STRING:
        return fd->nenum;
    case EVF_STRING:
        b = string_digits(fd, digits);
        for (size_t i = 0; i < fd->max_length && cap <= UINT64_MAX / (b ? b : 1); i++)
            cap *= b;
        return cap;
    }
    return 0;
}

int loadgen_fits(const struct evtype *t, uint64_t users, char *errstr, size_t errsize)
{
    const struct evfield *fd = &t->fields[user_field(t)];
    uint64_t cap = capacity(fd);

    if (cap != 0 && cap < users) {
        snprintf(errstr, errsize,
                 "--users %llu: %s's field %s, which takes the user number, holds only %llu "
                 "values",
                 (unsigned long long)users, t->name, fd->name, (unsigned long long)cap);
        return -1;
    }
    return 0;
}

/* Field i of ev gets its k-th value (k >= 1). 0, or -1: a string too short for k. */
static int put_value(struct event *ev, size_t i, uint64_t k)
{
    const struct evfield *fd = &ev->type->fields[i];
    uint64_t cap = capacity(fd), n = k - 1;
    char digits[128], *s;
    size_t b, len = 0;

    if (fd->kind == EVF_ENUM_INT)
        ev->v[i] = fd->enum_int[n % cap];
    else if (fd->kind == EVF_ENUM_STRING)
        ev->v[i] = (int64_t)(n % cap);
    else if (fd->kind != EVF_STRING)
        ev->v[i] = (int64_t)((uint64_t)fd->min + (cap ? n % cap : n));
    if (fd->kind != EVF_STRING)
        return 0;
    b = string_digits(fd, digits);
    s = ev->text + fd->text_off;
    do {
        if (len == fd->max_length)
            return -1;
        s[len++] = digits[n % b];
        n /= b;
    } while (n);
    s[len] = '\0';
    ev->v[i] = (int64_t)len;
    return 0;
}

int loadgen_event(const struct evtype *t, uint64_t seed, int64_t user, int64_t candidate,
                  uint64_t candidates, struct event *ev, char *text)
{
    int uf = user_field(t);

    event_init(ev, t, text);
    for (size_t i = 0; i < t->nfields; i++) {
        uint64_t k;
        if ((int)i == uf || (int)i == t->identity)
            k = (uint64_t)user;
        else if (is_key(t, (int)i))
            k = (uint64_t)candidate;
        else
            k = (uint64_t)loadgen_candidate(seed + 1 + i, (uint64_t)user, candidates);
        if (put_value(ev, i, k) != 0)
            return -1;
    }
    return event_make_token(ev);
}
