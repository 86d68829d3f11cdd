/*
 * ready.c - the readiness prober. See ready.h.
 */
#include "ready.h"
#include "log.h"
#include "publisher.h"
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define READY_EVERY_MS   1000
#define READY_TIMEOUT_MS 1000

struct ready {
    struct publisher *pub;
    atomic_int ok; /* the last answer */
    pthread_mutex_t lock;
    pthread_cond_t stopping; /* CLOCK_MONOTONIC: the sleep between probes, cut short */
    int running;
    pthread_t thread;
};

static void *prober_main(void *arg)
{
    struct ready *rd = arg;
    struct timespec ts;
    int running = 1;

    while (running) {
        int ok = publisher_probe(rd->pub, READY_TIMEOUT_MS);
        if (atomic_exchange(&rd->ok, ok) != ok)
            log_info(ok ? "kafka ready" : "kafka not ready", "ready=%d", ok);
        pthread_mutex_lock(&rd->lock);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += READY_EVERY_MS / 1000;
        if (rd->running)
            pthread_cond_timedwait(&rd->stopping, &rd->lock, &ts);
        running = rd->running;
        pthread_mutex_unlock(&rd->lock);
    }
    return NULL;
}

struct ready *ready_start(struct publisher *pub, char *errstr, size_t errsize)
{
    struct ready *rd = xcalloc(1, sizeof(*rd));
    pthread_condattr_t ca;

    rd->pub = pub;
    rd->running = 1;
    pthread_mutex_init(&rd->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&rd->stopping, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&rd->thread, NULL, prober_main, rd) != 0) {
        snprintf(errstr, errsize, "cannot start the readiness thread");
        pthread_cond_destroy(&rd->stopping);
        pthread_mutex_destroy(&rd->lock);
        free(rd);
        return NULL;
    }
    return rd;
}

int ready_get(const struct ready *rd)
{
    return rd ? atomic_load(&rd->ok) : 0;
}

void ready_stop(struct ready *rd)
{
    if (!rd)
        return;
    pthread_mutex_lock(&rd->lock);
    rd->running = 0;
    pthread_cond_broadcast(&rd->stopping);
    pthread_mutex_unlock(&rd->lock);
    pthread_join(rd->thread, NULL);
    pthread_cond_destroy(&rd->stopping);
    pthread_mutex_destroy(&rd->lock);
    free(rd);
}
