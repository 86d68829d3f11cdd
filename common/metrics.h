/*
 * metrics.h - counters, gauges and histograms rendered as Prometheus text.
 *
 * A metric is looked up (or created) once by name + label set and then
 * updated lock-free with C11 atomics, so hot paths (a delivery report, a
 * batch) pay one atomic add. Rendering takes the registry lock and writes
 * the text exposition format (version 0.0.4).
 *
 *   struct metrics *m = metrics_new();
 *   struct metric *c = metrics_counter(m, "tadak_votes_inserted_total", "", "Rows inserted");
 *   metric_add(c, 5);
 *   struct metric *h = metrics_histogram(m, "tadak_batch_seconds", "", "Batch latency",
 *                                        bounds, nbounds);
 *   h = metrics_latency_histogram(m, name, labels, help)   seconds, 1 ms to 5 s
 *   metric_observe(h, 0.012);
 *   char *text = metrics_render(m);   caller frees
 *   metrics_serve(m, "127.0.0.1:9100", errstr, sizeof errstr)  GET /metrics over HTTP
 */
#ifndef TADAK_METRICS_H
#define TADAK_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct metrics;
struct metric;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

struct metric *metrics_counter(struct metrics *m, const char *name, const char *labels,
                               const char *help);
struct metric *metrics_gauge(struct metrics *m, const char *name, const char *labels,
                             const char *help);
struct metric *metrics_histogram(struct metrics *m, const char *name, const char *labels,
                                 const char *help, const double *bounds, size_t nbounds);
/*
 * A histogram of a duration in seconds, with the buckets all of tadak's
 * latencies share (1 ms to 5 s), so that dashboards compare like with like.
 */
struct metric *metrics_latency_histogram(struct metrics *m, const char *name, const char *labels,
                                         const char *help);

void metric_add(struct metric *c, int64_t n);
void metric_set(struct metric *g, int64_t v);
int64_t metric_value(const struct metric *c);
void metric_observe(struct metric *h, double v);

char *metrics_render(struct metrics *m);

/* Serve GET /metrics on host:port in a libmicrohttpd thread until metrics_free(). */
int metrics_serve(struct metrics *m, const char *hostport, char *errstr, size_t errsize);

#endif
