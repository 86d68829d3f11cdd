/*
 * startup.h - the consumer's start-up: wait until PostgreSQL lets it in and
 * the type's table (store_use_type) fits, and learn which database it is.
 *
 * A transient failure at start (PostgreSQL unreachable or restarting, a lock
 * or a statement timeout) is waited out with backoff, logged once and then
 * every 30 s, as group_wait_topic waits for a missing topic; with --idle-exit,
 * --join-timeout-s bounds the wait. A permanent one (password refused, no
 * such database, a table that does not fit) ends it at once, logged with
 * the table and the fix.
 *
 *   rc = startup_wait(&o, store, dbid, sizeof dbid);
 *   rc = startup_migrate(store, set, new_identity)   `tadak-consumer migrate` (one
 *                                 try): every type's table; new_identity: then a
 *                                 new id (`new-identity`)
 *
 * Redis is not waited for: a gate without Redis is an outage PostgreSQL
 * covers (gate.h), and the namespace is claimed when Redis answers.
 */
#ifndef TADAK_STARTUP_H
#define TADAK_STARTUP_H

#include "options.h"
#include "store.h"

#include <stddef.h>

/* Each but READY is the exit status it ends the consumer with. */
enum startup_result {
    STARTUP_READY = -1,    /* go on: the table fits, dbid is set */
    STARTUP_STOPPED = 0,   /* a signal asked us to stop meanwhile */
    STARTUP_FAILED = 1,    /* a permanent failure, logged */
    STARTUP_TIMED_OUT = 3, /* --idle-exit and not ready within --join-timeout-s, logged */
};

enum startup_result startup_wait(const struct consumer_opts *o, struct store *store, char *dbid,
                                 size_t dbidsize);
int startup_migrate(struct store *store, const struct evtypes *set, int new_identity);

#endif
