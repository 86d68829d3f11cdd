/*
 * pipeline.h - the consumer loop: Kafka -> parse -> Redis gate -> PostgreSQL
 * -> mark done -> store offsets, batch after batch (see pipeline.c).
 *
 *   p = pipeline_new(&opts, gate, store, metrics, err, sizeof err);
 *   rc = pipeline_run(p);     until a signal or --idle-exit (0), a fatal error
 *                             (PIPELINE_FATAL), or no assignment within
 *                             --join-timeout-s under --idle-exit (PIPELINE_NOT_JOINED)
 *   pipeline_print_summary(p, stdout);   the one-line JSON totals
 *   pipeline_left_running(p)  1: Kafka was unreachable at the close, its threads
 *                             still run; the caller exits with _exit (group.h)
 *   pipeline_free(p);
 *
 * The pipeline borrows gate, store and metrics; it owns the Kafka consumer
 * (through group.c) and the dead-letter producer.
 */
#ifndef TADAK_PIPELINE_H
#define TADAK_PIPELINE_H

#include "gate.h"
#include "metrics.h"
#include "options.h"
#include "store.h"

#include <stdio.h>

#define PIPELINE_FATAL      (-1)
#define PIPELINE_NOT_JOINED (-2)

struct pipeline;

struct pipeline *pipeline_new(const struct consumer_opts *o, struct gate *gate, struct store *store,
                              struct metrics *metrics, char *errstr, size_t errsize);
int pipeline_run(struct pipeline *p);
void pipeline_print_summary(const struct pipeline *p, FILE *out);
int pipeline_left_running(const struct pipeline *p);
void pipeline_free(struct pipeline *p);

#endif
