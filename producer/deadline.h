/*
 * deadline.h - a list of things due at a time, earliest first: the one
 * structure behind the HTTP server's timer, for a connection that owes a
 * request (guard.h) and for a suspended request (http.c) alike.
 *
 * Nodes are embedded in their owners, who find themselves again from the
 * node (offsetof). Entries of one list usually share one timeout, so a new
 * one is due no earlier than the tail and is appended at once; one due
 * earlier walks back from the tail to its place, so the list stays sorted
 * whatever order the callers' clocks were read in. There is no lock: the
 * owner's lock guards its lists.
 *
 *   deadline_add(&list, &node, at_ms)     list node, due at at_ms (moved if listed)
 *   deadline_remove(&list, &node)         off the list (not listed: nothing)
 *   node = deadline_due(&list, now_ms)    the head, taken off, if due by now_ms; else NULL
 *   deadline_next(&list)                  the head's time, INT64_MAX when empty
 */
#ifndef TADAK_DEADLINE_H
#define TADAK_DEADLINE_H

#include <stdint.h>

struct deadline {
    int64_t at_ms;
    int listed;
    struct deadline *prev, *next;
};

struct deadline_list {
    struct deadline *head, *tail;
};

void deadline_add(struct deadline_list *l, struct deadline *d, int64_t at_ms);
void deadline_remove(struct deadline_list *l, struct deadline *d);
struct deadline *deadline_due(struct deadline_list *l, int64_t now_ms);
int64_t deadline_next(const struct deadline_list *l);

#endif
