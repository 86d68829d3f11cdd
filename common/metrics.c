/*
 * metrics.c - a small Prometheus registry. See metrics.h.
 *
 * Metrics live in a grow-only array of pointers so handles stay valid for
 * the registry's lifetime; values are atomics so updates need no lock.
 */
#include "metrics.h"
#include "config.h"
#include "strbuf.h"
#include "util.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRIC_MAX_BOUNDS 24

enum metric_kind { KIND_COUNTER, KIND_GAUGE, KIND_HISTOGRAM };

struct metric {
    enum metric_kind kind;
    char *name, *labels, *help;
    _Atomic int64_t value;
    size_t nbounds;
    double bounds[METRIC_MAX_BOUNDS];
    _Atomic int64_t buckets[METRIC_MAX_BOUNDS + 1]; /* last one is +Inf */
    _Atomic int64_t sum_micros;
};

struct metrics {
    pthread_mutex_t lock;
    struct metric **items;
    size_t n, cap;
    struct MHD_Daemon *httpd;
};

struct metrics *metrics_new(void)
{
    struct metrics *m = xcalloc(1, sizeof(*m));
    pthread_mutex_init(&m->lock, NULL);
    return m;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    if (m->httpd)
        MHD_stop_daemon(m->httpd);
    for (size_t i = 0; i < m->n; i++) {
        free(m->items[i]->name);
        free(m->items[i]->labels);
        free(m->items[i]->help);
        free(m->items[i]);
    }
    free(m->items);
    pthread_mutex_destroy(&m->lock);
    free(m);
}

static struct metric *get_or_add(struct metrics *m, enum metric_kind kind, const char *name,
                                 const char *labels, const char *help, const double *bounds,
                                 size_t nbounds)
{
    struct metric *x = NULL;

    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->items[i]->name, name) == 0 && strcmp(m->items[i]->labels, labels) == 0) {
            x = m->items[i];
            goto out;
        }
    }
    x = xcalloc(1, sizeof(*x));
    x->kind = kind;
    x->name = xstrdup(name);
    x->labels = xstrdup(labels ? labels : "");
    x->help = xstrdup(help ? help : "");
    x->nbounds = nbounds < METRIC_MAX_BOUNDS ? nbounds : METRIC_MAX_BOUNDS;
    if (x->nbounds)
        memcpy(x->bounds, bounds, x->nbounds * sizeof(double));
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 32;
        m->items = xrealloc(m->items, m->cap * sizeof(*m->items));
    }
    m->items[m->n++] = x;
out:
    pthread_mutex_unlock(&m->lock);
    return x;
}

struct metric *metrics_counter(struct metrics *m, const char *name, const char *labels,
                               const char *help)
{
    return get_or_add(m, KIND_COUNTER, name, labels, help, NULL, 0);
}

struct metric *metrics_gauge(struct metrics *m, const char *name, const char *labels,
                             const char *help)
{
    return get_or_add(m, KIND_GAUGE, name, labels, help, NULL, 0);
}

struct metric *metrics_histogram(struct metrics *m, const char *name, const char *labels,
                                 const char *help, const double *bounds, size_t nbounds)
{
    return get_or_add(m, KIND_HISTOGRAM, name, labels, help, bounds, nbounds);
}

struct metric *metrics_latency_histogram(struct metrics *m, const char *name, const char *labels,
                                         const char *help)
{
    static const double bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                    0.1,   0.25,   0.5,   1,    2.5,   5};

    return metrics_histogram(m, name, labels, help, bounds, UTIL_ARRAY_LEN(bounds));
}

void metric_add(struct metric *c, int64_t n)
{
    atomic_fetch_add_explicit(&c->value, n, memory_order_relaxed);
}

void metric_set(struct metric *g, int64_t v)
{
    atomic_store_explicit(&g->value, v, memory_order_relaxed);
}

int64_t metric_value(const struct metric *c)
{
    return atomic_load_explicit(&c->value, memory_order_relaxed);
}

void metric_observe(struct metric *h, double v)
{
    size_t i = 0;

    while (i < h->nbounds && v > h->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_micros, (int64_t)(v * 1e6), memory_order_relaxed);
    atomic_fetch_add_explicit(&h->value, 1, memory_order_relaxed);
}

static void render_labels(struct strbuf *tb, const char *labels, const char *extra)
{
    if (!*labels && !extra)
        return;
    strbuf_printf(tb, "{%s%s%s}", labels, (*labels && extra) ? "," : "", extra ? extra : "");
}

char *metrics_render(struct metrics *m)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    struct strbuf tb;

    strbuf_init(&tb, 4096);
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n; i++) {
        struct metric *x = m->items[i];
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(m->items[j]->name, x->name) == 0;
        if (!seen)
            strbuf_printf(&tb, "# HELP %s %s\n# TYPE %s %s\n", x->name, x->help, x->name,
                          type_names[x->kind]);
        if (x->kind != KIND_HISTOGRAM) {
            strbuf_printf(&tb, "%s", x->name);
            render_labels(&tb, x->labels, NULL);
            strbuf_printf(&tb, " %lld\n", (long long)metric_value(x));
            continue;
        }
        int64_t cum = 0;
        for (size_t b = 0; b <= x->nbounds; b++) {
            char le[48];
            cum += atomic_load_explicit(&x->buckets[b], memory_order_relaxed);
            if (b < x->nbounds)
                snprintf(le, sizeof(le), "le=\"%g\"", x->bounds[b]);
            else
                snprintf(le, sizeof(le), "le=\"+Inf\"");
            strbuf_printf(&tb, "%s_bucket", x->name);
            render_labels(&tb, x->labels, le);
            strbuf_printf(&tb, " %lld\n", (long long)cum);
        }
        strbuf_printf(&tb, "%s_sum", x->name);
        render_labels(&tb, x->labels, NULL);
        strbuf_printf(&tb, " %.6f\n",
                      (double)atomic_load_explicit(&x->sum_micros, memory_order_relaxed) / 1e6);
        strbuf_printf(&tb, "%s_count", x->name);
        render_labels(&tb, x->labels, NULL);
        strbuf_printf(&tb, " %lld\n", (long long)metric_value(x));
    }
    pthread_mutex_unlock(&m->lock);
    return tb.s;
}

static enum MHD_Result serve_metrics(void *cls, struct MHD_Connection *conn, const char *url,
                                     const char *method, const char *version,
                                     const char *upload_data, size_t *upload_data_size,
                                     void **con_cls)
{
    struct metrics *m = cls;
    struct MHD_Response *resp;
    enum MHD_Result ret;
    unsigned int status = MHD_HTTP_OK;
    char *body;

    (void)version, (void)upload_data, (void)upload_data_size, (void)con_cls;
    if (strcmp(url, "/metrics") != 0) {
        body =
            xstrdup("{\"error\":\"not_found\",\"detail\":\"only GET /metrics is served here\"}\n");
        status = MHD_HTTP_NOT_FOUND;
    } else if (strcmp(method, "GET") != 0) {
        body = xstrdup("{\"error\":\"method_not_allowed\",\"detail\":\"use GET\"}\n");
        status = MHD_HTTP_METHOD_NOT_ALLOWED;
    } else {
        body = metrics_render(m);
    }
    resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(resp, "Content-Type",
                            status == MHD_HTTP_OK ? "text/plain; version=0.0.4"
                                                  : "application/json");
    ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

int metrics_serve(struct metrics *m, const char *hostport, char *errstr, size_t errsize)
{
    struct sockaddr_in sa;

    if (config_parse_listen(hostport, "metrics", &sa, errstr, errsize) != 0)
        return -1;
    m->httpd = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
                                ntohs(sa.sin_port), NULL, NULL, serve_metrics, m,
                                MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_END);
    if (!m->httpd) {
        snprintf(errstr, errsize, "cannot listen on %s for metrics", hostport);
        return -1;
    }
    return 0;
}
