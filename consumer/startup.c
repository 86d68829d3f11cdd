/*
 * startup.c - wait for PostgreSQL at start. See startup.h.
 *
 * Each try is store_prepare (the schema applied when the type's table is
 * missing, verified from the catalogs when it exists: no DDL, no lock on
 * it) and store_identity. Backoff doubles from STARTUP_BACKOFF_MIN_MS to
 * STARTUP_BACKOFF_MAX_MS; the wait between tries watches for a signal
 * (shutdown_nap_until), so SIGTERM during a long outage still stops us at once.
 */
#include "startup.h"
#include "log.h"
#include "shutdown.h"
#include "util.h"

#include <inttypes.h>

#define STARTUP_BACKOFF_MIN_MS 250
#define STARTUP_BACKOFF_MAX_MS 5000
#define STARTUP_LOG_EVERY_MS   30000

/* One try: 0 ready, -1 failed (store_last_failure says whether to try again). */
static int startup_try(struct store *store, char *dbid, size_t dbidsize, char *why, size_t whysize)
{
    if (store_prepare(store, why, whysize) != 0)
        return -1;
    return store_identity(store, dbid, dbidsize, why, whysize);
}

enum startup_result startup_wait(const struct consumer_opts *o, struct store *store, char *dbid,
                                 size_t dbidsize)
{
    int64_t started = util_now_ms(), logged_at = 0, backoff = 0, now;
    char why[1024];

    while (startup_try(store, dbid, dbidsize, why, sizeof(why)) != 0) {
        now = util_now_ms();
        if (store_last_failure(store) == STORE_FAIL_PERMANENT) {
            log_error("cannot start: PostgreSQL refuses what tadak needs", "error=\"%s\"", why);
            return STARTUP_FAILED;
        }
        if (o->idle_exit_s && now - started >= o->join_timeout_s * 1000) {
            log_error("PostgreSQL not ready, giving up", "waited_s=%" PRId64 " error=\"%s\"",
                      (now - started) / 1000, why);
            return STARTUP_TIMED_OUT;
        }
        if (!logged_at || now - logged_at >= STARTUP_LOG_EVERY_MS) {
            log_warn("waiting for PostgreSQL",
                     "error=\"%s\" set_by=\"--database-url or DATABASE_URL\"", why);
            logged_at = now;
        }
        backoff = backoff ? backoff * 2 : STARTUP_BACKOFF_MIN_MS;
        if (backoff > STARTUP_BACKOFF_MAX_MS)
            backoff = STARTUP_BACKOFF_MAX_MS;
        if (shutdown_nap_until(now + backoff))
            return STARTUP_STOPPED;
    }
    if (logged_at)
        log_info("PostgreSQL ready", "waited_s=%" PRId64, (util_now_ms() - started) / 1000);
    return STARTUP_READY;
}

int startup_migrate(struct store *store, const struct evtypes *set, int new_identity)
{
    char why[1024], id[256];

    if (store_migrate(store, set, why, sizeof(why)) != 0) {
        log_error("cannot apply the schema", "error=\"%s\"", why);
        return -1;
    }
    for (size_t i = 0; i < evtypes_count(set); i++)
        log_info("schema applied", "table=%s type=%s", evtypes_at(set, i)->table,
                 evtypes_at(set, i)->name);
    if (!new_identity)
        return 0;
    if (store_new_identity(store, id, sizeof(id), why, sizeof(why)) != 0) {
        log_error("cannot give the database a new identity", "error=\"%s\"", why);
        return -1;
    }
    /* Consumers of this database now need a key prefix this identity may claim. */
    log_warn("database has a new identity: its consumers need a --key-prefix of their own",
             "identity=%s", id);
    return 0;
}
