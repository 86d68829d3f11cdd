/*
 * deadline.c - lists of deadlines, earliest first. See deadline.h.
 */
#include "deadline.h"

#include <stddef.h>

void deadline_remove(struct deadline_list *l, struct deadline *d)
{
    if (!d->listed)
        return;
    if (d->prev)
        d->prev->next = d->next;
    else
        l->head = d->next;
    if (d->next)
        d->next->prev = d->prev;
    else
        l->tail = d->prev;
    d->prev = d->next = NULL;
    d->listed = 0;
}

void deadline_add(struct deadline_list *l, struct deadline *d, int64_t at_ms)
{
    struct deadline *after;

    deadline_remove(l, d);
    after = l->tail;
    while (after && after->at_ms > at_ms) /* rare: the callers' clocks crossed */
        after = after->prev;
    d->at_ms = at_ms;
    d->prev = after;
    d->next = after ? after->next : l->head;
    if (d->next)
        d->next->prev = d;
    else
        l->tail = d;
    if (after)
        after->next = d;
    else
        l->head = d;
    d->listed = 1;
}

struct deadline *deadline_due(struct deadline_list *l, int64_t now_ms)
{
    struct deadline *d = l->head;

    if (!d || d->at_ms > now_ms)
        return NULL;
    deadline_remove(l, d);
    return d;
}

int64_t deadline_next(const struct deadline_list *l)
{
    return l->head ? l->head->at_ms : INT64_MAX;
}
