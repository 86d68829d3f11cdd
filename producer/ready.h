/*
 * ready.h - the answer GET /readyz gives: is Kafka reachable? A thread of
 * its own asks the publisher once a second and caches the answer, so no
 * HTTP thread ever blocks on Kafka for a probe. Logs each change.
 *
 *   rd = ready_start(pub, err, sizeof err);   NULL if the thread cannot start
 *   ready_get(rd)                             the last answer, 1 / 0 (NULL: 0)
 *   ready_stop(rd);                           joins the thread, frees; before publisher_free()
 */
#ifndef TADAK_READY_H
#define TADAK_READY_H

#include <stddef.h>

struct publisher;
struct ready;

struct ready *ready_start(struct publisher *pub, char *errstr, size_t errsize);
int ready_get(const struct ready *rd);
void ready_stop(struct ready *rd);

#endif
