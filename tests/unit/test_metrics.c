/*
 * test_metrics.c - the registry renders the Prometheus text format to the
 * byte: HELP and TYPE once per name, labels, cumulative buckets with an
 * inclusive upper bound, _sum and _count; the shared latency buckets; and
 * metrics_serve refuses an address that is not IPv4 HOST:PORT.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics.h"

static void test_render_exact(void **state)
{
    static const double bounds[] = {0.1, 1};
    struct metrics *m = metrics_new();
    struct metric *c, *g, *h;
    char *text;

    (void)state;
    c = metrics_counter(m, "t_events_total", "", "Events seen");
    metric_add(c, 5);
    metric_add(metrics_counter(m, "t_events_total", "", "ignored: the handle exists"), 2);
    g = metrics_gauge(m, "t_lag", "partition=\"3\"", "Lag");
    metric_set(g, 7);
    metric_set(g, 4);
    metric_set(metrics_gauge(m, "t_lag", "partition=\"4\"", "Lag"), -1);
    h = metrics_histogram(m, "t_seconds", "op=\"x\"", "Latency", bounds, 2);
    metric_observe(h, 0.05);
    metric_observe(h, 0.1); /* on a bound: counted in that bucket (le is <=) */
    metric_observe(h, 0.5);
    metric_observe(h, 3);
    text = metrics_render(m);
    assert_string_equal(text, "# HELP t_events_total Events seen\n"
                              "# TYPE t_events_total counter\n"
                              "t_events_total 7\n"
                              "# HELP t_lag Lag\n"
                              "# TYPE t_lag gauge\n"
                              "t_lag{partition=\"3\"} 4\n"
                              "t_lag{partition=\"4\"} -1\n"
                              "# HELP t_seconds Latency\n"
                              "# TYPE t_seconds histogram\n"
                              "t_seconds_bucket{op=\"x\",le=\"0.1\"} 2\n"
                              "t_seconds_bucket{op=\"x\",le=\"1\"} 3\n"
                              "t_seconds_bucket{op=\"x\",le=\"+Inf\"} 4\n"
                              "t_seconds_sum{op=\"x\"} 3.650000\n"
                              "t_seconds_count{op=\"x\"} 4\n");
    assert_int_equal(metric_value(c), 7);
    free(text);
    metrics_free(m);
}

/* The buckets the consumer's batch and the producer's acknowledgement latency share. */
static void test_latency_buckets(void **state)
{
    struct metrics *m = metrics_new();
    struct metric *h = metrics_latency_histogram(m, "t_latency_seconds", "", "Latency");
    char *text;

    (void)state;
    metric_observe(h, 0.003);
    metric_observe(h, 60);
    text = metrics_render(m);
    assert_string_equal(text, "# HELP t_latency_seconds Latency\n"
                              "# TYPE t_latency_seconds histogram\n"
                              "t_latency_seconds_bucket{le=\"0.001\"} 0\n"
                              "t_latency_seconds_bucket{le=\"0.0025\"} 0\n"
                              "t_latency_seconds_bucket{le=\"0.005\"} 1\n"
                              "t_latency_seconds_bucket{le=\"0.01\"} 1\n"
                              "t_latency_seconds_bucket{le=\"0.025\"} 1\n"
                              "t_latency_seconds_bucket{le=\"0.05\"} 1\n"
                              "t_latency_seconds_bucket{le=\"0.1\"} 1\n"
                              "t_latency_seconds_bucket{le=\"0.25\"} 1\n"
                              "t_latency_seconds_bucket{le=\"0.5\"} 1\n"
                              "t_latency_seconds_bucket{le=\"1\"} 1\n"
                              "t_latency_seconds_bucket{le=\"2.5\"} 1\n"
                              "t_latency_seconds_bucket{le=\"5\"} 1\n"
                              "t_latency_seconds_bucket{le=\"+Inf\"} 2\n"
                              "t_latency_seconds_sum 60.003000\n"
                              "t_latency_seconds_count 2\n");
    free(text);
    metrics_free(m);
}

static void test_serve_refuses_bad_addresses(void **state)
{
    static const char *const bad[] = {
        "9100",         "127.0.0.1",     "127.0.0.1:",      "127.0.0.1:65536",
        "127.0.0.1:-1", "127.0.0.1:91x", "example.com:9100"}; /* ":9100" is every interface */
    struct metrics *m = metrics_new();
    char err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (metrics_serve(m, bad[i], err, sizeof(err)) != -1 || err[0] == '\0')
            fail_msg("\"%s\" was taken as a metrics address", bad[i]);
    }
    metrics_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_exact),
        cmocka_unit_test(test_latency_buckets),
        cmocka_unit_test(test_serve_refuses_bad_addresses),
    };
    return cmocka_run_group_tests_name("metrics", tests, NULL, NULL);
}
