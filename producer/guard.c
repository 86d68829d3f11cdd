/*
 * guard.c - whole-request deadlines for HTTP connections. See guard.h.
 */
#include "guard.h"
#include "util.h"

#include <pthread.h>
#include <stdlib.h>
#include <sys/socket.h>

struct guard_conn {
    int fd;
    int64_t deadline_ms;
    int listed; /* on the deadline list */
    int reaped; /* shut down for being late: never armed again */
    struct guard_conn *prev, *next;
};

struct guard {
    pthread_mutex_t lock;
    int64_t timeout_ms;
    struct guard_conn *head, *tail; /* owing a request, earliest deadline first */
    int64_t count;                  /* open connections, listed or not */
};

static void unlink_locked(struct guard *g, struct guard_conn *c)
{
    if (!c->listed)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        g->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        g->tail = c->prev;
    c->prev = c->next = NULL;
    c->listed = 0;
}

/* Callers pass a now taken before the lock: never let the list go out of order. */
static void append_locked(struct guard *g, struct guard_conn *c, int64_t now_ms)
{
    unlink_locked(g, c);
    if (c->reaped)
        return;
    c->deadline_ms = now_ms + g->timeout_ms;
    if (g->tail && c->deadline_ms < g->tail->deadline_ms)
        c->deadline_ms = g->tail->deadline_ms;
    c->prev = g->tail;
    if (g->tail)
        g->tail->next = c;
    else
        g->head = c;
    g->tail = c;
    c->listed = 1;
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
    append_locked(g, c, now_ms);
    g->count++;
    pthread_mutex_unlock(&g->lock);
    return c;
}

void guard_busy(struct guard *g, struct guard_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->lock);
    unlink_locked(g, c);
    pthread_mutex_unlock(&g->lock);
}

void guard_idle(struct guard *g, struct guard_conn *c, int64_t now_ms)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->lock);
    append_locked(g, c, now_ms);
    pthread_mutex_unlock(&g->lock);
}

void guard_close(struct guard *g, struct guard_conn *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&g->lock);
    unlink_locked(g, c);
    g->count--;
    pthread_mutex_unlock(&g->lock);
    free(c);
}

int guard_reap(struct guard *g, int64_t now_ms, int64_t *next_ms)
{
    int n = 0;

    pthread_mutex_lock(&g->lock);
    while (g->head && g->head->deadline_ms <= now_ms) {
        struct guard_conn *c = g->head;
        unlink_locked(g, c);
        c->reaped = 1;
        shutdown(c->fd, SHUT_RDWR); /* still open: guard_close() comes before close() */
        n++;
    }
    *next_ms = g->head ? g->head->deadline_ms : INT64_MAX;
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
