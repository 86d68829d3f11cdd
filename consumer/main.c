/*
 * main.c - tadak-consumer: reads one event type's messages (votes unless
 * --type says otherwise) from Kafka, dedupes them through Redis and records
 * each exactly once in the type's PostgreSQL table (see pipeline.c for the
 * loop). `tadak-consumer migrate` only applies the schema, every type's
 * table (`new-identity`: and gives the database a new id); `topics` creates
 * the type's topic and its dead-letter topic (provision.c). Start-up waits for
 * PostgreSQL (startup.c). Exit status: 0 done, 1 runtime failure, 2 bad
 * usage, 3 never got partitions or PostgreSQL (not within --join-timeout-s,
 * with --idle-exit); 130 on a second signal.
 */
#include "gate.h"
#include "log.h"
#include "metrics.h"
#include "options.h"
#include "pipeline.h"
#include "provision.h"
#include "shutdown.h"
#include "startup.h"
#include "store.h"

#include <stdio.h>
#include <unistd.h>

/*
 * The Redis gate, or NULL (logged). Redis down at start is an outage like
 * any later one, unless the operator says not (--require-redis).
 */
static struct gate *gate_open(const struct consumer_opts *o, const char *dbid)
{
    char err[512];
    struct gate *gate = gate_new(o->redis_url, o->key_prefix, o->instance_id, dbid, o->lock_ttl_ms,
                                 o->dedupe_window_s * 1000, err, sizeof(err));

    if (!gate) {
        log_error("cannot start", "error=\"%s\"", err);
        return NULL;
    }
    if (o->require_redis && gate_is_down(gate, err, sizeof(err))) {
        log_error("cannot reach Redis, and --require-redis is set",
                  "address=%s set_by=\"--redis-url or REDIS_URL\"", err);
        gate_free(gate);
        return NULL;
    }
    return gate;
}

/* The consumer loop to its end: the exit status, and the summary printed. */
static int run(struct pipeline *p, int *left_running)
{
    int rc = pipeline_run(p);

    pipeline_print_summary(p, stdout);
    *left_running = pipeline_left_running(p);
    return rc == 0 ? 0 : rc == PIPELINE_NOT_JOINED ? 3 : 1;
}

/* Kafka gone at the close: exit without waiting for librdkafka's threads (group.h). */
static int leave(int status, int left_running)
{
    if (left_running) {
        fflush(NULL);
        _exit(status);
    }
    return status;
}

int main(int argc, char **argv)
{
    struct consumer_opts o;
    struct metrics *metrics = NULL;
    struct gate *gate = NULL;
    struct store *store = NULL;
    struct pipeline *p = NULL;
    char err[512], dbid[256];
    int rc = options_load(&o, argc, argv, err, sizeof(err)), status = 1, left_running = 0;

    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "tadak-consumer: %s\n", err);
        options_free(&o);
        return rc > 0 ? 0 : 2;
    }
    /*
     * Signals first: a SIGTERM during start-up (a slow PostgreSQL or Redis)
     * must mean "stop cleanly", not the default action of killing us.
     */
    if (shutdown_install() != 0) {
        log_error("cannot install signal handlers");
        goto out;
    }
    if (o.topics_only) {
        status = provision_topics(&o);
        goto out;
    }
    store = store_new(o.database_url, o.statement_timeout_ms);
    store_use_type(store, o.type);
    if (o.migrate_only) {
        status = startup_migrate(store, o.set, o.new_identity) == 0 ? 0 : 1;
        goto out;
    }
    if ((rc = startup_wait(&o, store, dbid, sizeof(dbid))) != STARTUP_READY) {
        status = rc;
        goto out;
    }
    metrics = metrics_new();
    if (o.metrics && metrics_serve(metrics, o.metrics, err, sizeof(err)) != 0) {
        log_error("cannot serve metrics", "error=\"%s\"", err);
        goto out;
    }
    if (!(gate = gate_open(&o, dbid)))
        goto out;
    if (!(p = pipeline_new(&o, gate, store, metrics, err, sizeof(err)))) {
        log_error("cannot start", "error=\"%s\"", err);
        goto out;
    }
    status = run(p, &left_running);
out:
    pipeline_free(p);
    gate_free(gate);
    store_free(store);
    metrics_free(metrics);
    options_free(&o);
    return leave(status, left_running);
}
