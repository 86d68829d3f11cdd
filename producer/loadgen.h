/*
 * loadgen.h - the deterministic vote stream behind `tadak-producer load`.
 *
 * N users each vote once for one candidate, and every vote is sent D times
 * (a burst of duplicate clicks); the N x D events are shuffled so the
 * duplicates of one vote are spread over the stream, as they would be under
 * real retries. Everything derives from the seed (splitmix64, no rand()), so
 * the same seed replays the same sequence of tokens, which benchmarks and
 * tests rely on. Memory is one uint32 index per event (20 MB for 5M).
 *
 *   struct loadgen *g = loadgen_new(users, dup, seed, candidates, err, sizeof err);
 *   while (loadgen_next(g, &user, &candidate)) ...;
 *   loadgen_count(g);  loadgen_free(g);
 *   loadgen_candidate(seed, user, candidates)   the candidate a user votes for
 *
 * Another event type (evtype.h) gets the same stream, mapped onto its
 * fields: the user number goes to the user field (the identity field when
 * the key holds it, else the first key field), the candidate to every other
 * key field, and each remaining field (the identity too) gets one of
 * `candidates` values, seeded per user and field. A number k >= 1 becomes
 * a field's k-th value: an id k, an int min + (k-1) mod its span, an enum
 * its ((k-1) mod n)-th value, a string k-1 written in the digits of its
 * allowed characters. So N users make N keys, exactly as for votes, when
 * the user field can hold N values (loadgen_fits says when not).
 *
 *   loadgen_fits(type, users, err, sizeof err)    0 / -1
 *   loadgen_event(type, seed, user, candidate, candidates, &ev, text)   0 / -1
 *       (text: type->text_size bytes, or EVTYPE_TEXT_MAX)
 */
#ifndef TADAK_LOADGEN_H
#define TADAK_LOADGEN_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"

struct loadgen;

struct loadgen *loadgen_new(uint64_t users, uint64_t dup, uint64_t seed, uint64_t candidates,
                            char *errstr, size_t errsize);
int loadgen_next(struct loadgen *g, int64_t *user_id, int64_t *candidate_id);
uint64_t loadgen_count(const struct loadgen *g);
int64_t loadgen_candidate(uint64_t seed, uint64_t user, uint64_t candidates);
void loadgen_free(struct loadgen *g);
int loadgen_fits(const struct evtype *t, uint64_t users, char *errstr, size_t errsize);
int loadgen_event(const struct evtype *t, uint64_t seed, int64_t user, int64_t candidate,
                  uint64_t candidates, struct event *ev, char *text);

#endif
