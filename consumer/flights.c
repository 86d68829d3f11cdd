/*
 * flights.c - the batch INSERTs in flight (see flights.h).
 *
 * Apart from the round because it is storage, not a decision: the fill and
 * the flights trade their row arrays when the fill goes out (no copy), so
 * all of them are sized together, and each flight keeps its connection.
 */
#include "flights.h"
#include "util.h"

#include <stdlib.h>

struct flights {
    struct batch fill, flight[FLIGHTS_MAX];
    int n;         /* flights in use: --inserts-in-flight; flight[1]'s store is ours */
    uint64_t sent; /* send numbers */
    size_t cap;
};

struct flights *flights_new(int n, struct store *store, const char *database_url,
                            int64_t statement_timeout_ms)
{
    struct flights *f = xcalloc(1, sizeof(*f));

    f->n = n < 1 || n > FLIGHTS_MAX ? 1 : n;
    f->flight[0].store = store;
    if (f->n == 2) {
        f->flight[1].store = store_new(database_url, statement_timeout_ms);
        store_same_database(f->flight[1].store, store); /* a failover must not change it */
    }
    return f;
}

void flights_free(struct flights *f)
{
    if (!f)
        return;
    for (struct batch *b = &f->fill; b <= &f->flight[FLIGHTS_MAX - 1]; b++) {
        free(b->rows);
        free(b->its);
    }
    if (f->n == 2)
        store_free(f->flight[1].store);
    free(f);
}

void flights_reserve(struct flights *f, size_t cap)
{
    if (cap <= f->cap)
        return;
    f->cap = cap;
    for (struct batch *b = &f->fill; b <= &f->flight[FLIGHTS_MAX - 1]; b++) {
        b->rows = xrealloc(b->rows, cap * sizeof(*b->rows));
        b->its = xrealloc(b->its, cap * sizeof(*b->its));
    }
}

struct batch *flights_fill(struct flights *f)
{
    return &f->fill;
}

int flights_count(const struct flights *f)
{
    return f->n;
}

struct batch *flights_at(struct flights *f, int i)
{
    return &f->flight[i];
}

struct batch *flights_oldest(struct flights *f)
{
    struct batch *old = NULL;

    for (int i = 0; i < f->n; i++)
        if (f->flight[i].n && (!old || f->flight[i].sent < old->sent))
            old = &f->flight[i];
    return old;
}

struct batch *flights_idle(struct flights *f)
{
    for (int i = 0; i < f->n; i++)
        if (f->flight[i].n == 0)
            return &f->flight[i];
    return NULL;
}

void flights_launch(struct flights *f, struct batch *b)
{
    struct store_row *rows = b->rows;
    struct item **its = b->its;

    /* The rows change places; each flight keeps its connection. */
    b->rows = f->fill.rows, b->its = f->fill.its;
    b->n = f->fill.n;
    b->sent = ++f->sent;
    f->fill.rows = rows, f->fill.its = its;
    f->fill.n = 0;
}
