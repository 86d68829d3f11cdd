/*
 * flights.h - the batch INSERTs in flight: the rows of this round's INSERT
 * being filled, and up to FLIGHTS_MAX INSERTs sent and not yet read, each on
 * a PostgreSQL connection of its own (libpq's asynchronous API), so
 * PostgreSQL inserts while the round polls, parses and gates the next batch.
 *
 * Bookkeeping only: which flight is free, which was sent longest ago (its
 * result is read first), rows changing hands when the fill goes out. What a
 * result means (settle, bisect, retry) is the round's (pipeline.c).
 *
 *   f = flights_new(n, store, url, timeout_ms)   n flights (1 or 2): the first on
 *                                   store (borrowed), a second on a connection of its own
 *   flights_reserve(f, cap)         room for cap rows in the fill and in each flight
 *   b = flights_fill(f)             the rows of this round's INSERT (b->store unset)
 *   flights_count(f), flights_at(f, i)   every flight, busy (n > 0) or not
 *   b = flights_oldest(f)           the busy flight sent longest ago, or NULL
 *   b = flights_idle(f)             a flight with no INSERT in it, or NULL
 *   flights_launch(f, b)            the fill was sent on b->store: b now holds its
 *                                   rows, the fill is empty again
 *   flights_free(f)
 */
#ifndef TADAK_FLIGHTS_H
#define TADAK_FLIGHTS_H

#include "store.h"

#include <stddef.h>
#include <stdint.h>

#define FLIGHTS_MAX 2

struct item; /* the round's (pipeline.c); only pointed at here */

/* Rows for one INSERT and the items they came from. */
struct batch {
    struct store_row *rows;
    struct item **its;
    size_t n;
    struct store *store; /* a flight's own connection */
    uint64_t sent;       /* a flight's send number: the oldest is read first */
};

struct flights;

struct flights *flights_new(int n, struct store *store, const char *database_url,
                            int64_t statement_timeout_ms);
void flights_free(struct flights *f);
void flights_reserve(struct flights *f, size_t cap);
struct batch *flights_fill(struct flights *f);
int flights_count(const struct flights *f);
struct batch *flights_at(struct flights *f, int i);
struct batch *flights_oldest(struct flights *f);
struct batch *flights_idle(struct flights *f);
void flights_launch(struct flights *f, struct batch *b);

#endif
