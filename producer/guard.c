/*
 * guard.c - whole-request deadlines for HTTP connections. See guard.h.
 */
#include "guard.h"
#include "deadline.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>

struct guard_conn {
    struct deadline due; /* first member: the list's node is the connection */
    int fd;
    int reaped; /* shut down for being late: never armed again */
};

struct guard {
    pthread_mutex_t lock;
    int64_t timeout_ms;
    struct deadline_list owing; /* connections owing a request, earliest deadline first */
    int64_t count;              /* open connections, listed or not */
};

static void arm_locked(struct guard *g, struct guard_conn *c, int64_t now_ms)
{
    if (c->reaped)
        return;
    deadline_add(&g->owing, &c->due, now_ms + g->timeout_ms);
}

struct guard *guard_new(int64_t timeout_ms)
{
    struct guard *g = xcalloc(1, sizeof(*g));

    pthread_mutex_init(&g->lock, NULL);
    g->timeout_ms = timeout_ms;
    return g;
}

void guard_free(struct guard *g)
{
    if (!g)
        return;
    pthread_mutex_destroy(&g->lock);
    free(g);
}

struct guard_conn *guard_open(struct guard *g, int fd, int64_t now_ms)
{
    struct guard_conn *c = xcalloc(1, sizeof(*c));

    c->fd = fd;
    pthread_mutex_lock(&g->lock);
    arm_locked(g, c, now_ms);
    g->count++;
    pthread_mutex_unlock(&g->lock);
    return c;
}

void guard_busy(struct guard *g, struct guard_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->lock);
    deadline_remove(&g->owing, &c->due);
    pthread_mutex_unlock(&g->lock);
}

void guard_idle(struct guard *g, struct guard_conn *c, int64_t now_ms)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->lock);
    arm_locked(g, c, now_ms);
    pthread_mutex_unlock(&g->lock);
}

void guard_close(struct guard *g, struct guard_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->lock);
    deadline_remove(&g->owing, &c->due);
    g->count--;
    pthread_mutex_unlock(&g->lock);
    free(c);
}

int guard_reap(struct guard *g, int64_t now_ms, int64_t *next_ms)
{
    struct deadline *d;
    int n = 0;

    pthread_mutex_lock(&g->lock);
    while ((d = deadline_due(&g->owing, now_ms))) {
        struct guard_conn *c = (struct guard_conn *)d; /* due is the first member */
        c->reaped = 1;
        shutdown(c->fd, SHUT_RDWR); /* still open: guard_close() comes before close() */
        n++;
    }
    *next_ms = deadline_next(&g->owing);
    pthread_mutex_unlock(&g->lock);
    return n;
}

int64_t guard_count(struct guard *g)
{
    int64_t n;

    pthread_mutex_lock(&g->lock);
    n = g->count;
    pthread_mutex_unlock(&g->lock);
    return n;
}
