/*
 * group.c - the consumer group: the Kafka consumer, rebalances, pause and
 * resume, lag, the wait for the topic, the join and idle clocks, commits.
 *
 * Apart from the round (pipeline.c) because this is plumbing the round
 * leans on, not a step of the delivery guarantee: the round polls through
 * group_consume, stores offsets through group_store_offsets, and learns of
 * a revoke through the hook it registered (group.h). The offsets table
 * (offsets.h) is the round's; the group starts and forgets partitions in it
 * as they come and go, and hands its storable offsets to librdkafka, whose
 * auto-commit sends them (a revoke and the close commit at once).
 *
 * Pausing: every assigned partition while the round says so (hold_all:
 * PostgreSQL down, too many messages held), and one partition alone while
 * hold_limit of its messages wait behind its oldest unsettled one. Polling
 * goes on meanwhile, so the group keeps us. tadak_consumer_paused_partitions
 * shows how many are paused.
 */
#include "group.h"
#include "kafka.h"
#include "log.h"
#include "shutdown.h"
#include "topics.h"
#include "util.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define LAG_EVERY_MS        1000
#define TOPIC_LOG_EVERY_MS  30000
#define TOPIC_CHECK_MS      500
#define HELD_BACKOFF_MIN_MS 250
#define HELD_BACKOFF_MAX_MS 1000
#define COMMIT_WAIT_MS      5000 /* longest wait for a commit's answer */
/*
 * librdkafka's prefetch: up to PREFETCH_BATCHES batches of messages, at most
 * PREFETCH_KB in its queue and PARTITION_FETCH_KB per partition a fetch; a
 * queue over that is topped up again after FETCH_QUEUE_BACKOFF_MS. Measured
 * with librdkafka 2.14.2 on 1M-event backlogs (bench/, 1 consumer): 4
 * batches and a 10 ms back-off did 440k duplicate events/s (RSS 29 MiB);
 * 10 batches and 1 ms, 665k (32 MiB), unique votes 117k (38 MiB); a 512 KiB
 * fetch, 535k but 46 MiB. Under librdkafka 2.0.2 a full queue backed its
 * partition off for a fixed second, so only a deep (60-85 MiB) queue kept up.
 */
#define PREFETCH_BATCHES       10
#define PREFETCH_KB            1024
#define PARTITION_FETCH_KB     256
#define FETCH_QUEUE_BACKOFF_MS 1

struct group {
    const struct consumer_opts *o;
    struct offsets *offsets; /* the round's, borrowed */
    struct metrics *metrics;
    struct group_hooks hooks;
    size_t hold_limit;
    rd_kafka_t *rk;
    rd_kafka_queue_t *cq; /* the consumer queue, popped a batch at a time */

    /* The assignment, and the pause state we asked librdkafka for. */
    int32_t *parts;
    int nparts, parts_cap;
    int8_t *pstate; /* by partition: -1 unknown (new), 0 fetching, 1 paused */
    int32_t npstate;

    int joined;   /* got an assignment at least once */
    int assigned; /* holds an assignment (maybe empty): idle time counts */
    int64_t started_at, active_at, unassigned_since, next_lag_at;
    int fatal;                   /* a fatal Kafka error was logged: do not commit */
    int unreachable;             /* a commit timed out: do not wait on the close */
    struct log_every outage_log; /* "Kafka error" for brokers down, held back */
    int instance_held;           /* ... UNRELEASED_INSTANCE_ID before any assignment */
    int64_t held_backoff_ms;     /* between tries to take our --instance-id */

    struct metric *paused;
};

/* ------------------------------------------------------------ assignment */

static int8_t *part_state(struct group *g, int32_t part)
{
    if (part >= g->npstate) {
        g->pstate = xrealloc(g->pstate, (size_t)(part + 1) * sizeof(*g->pstate));
        memset(g->pstate + g->npstate, -1, (size_t)(part + 1 - g->npstate));
        g->npstate = part + 1;
    }
    return &g->pstate[part];
}

/* Our partition list gains or loses one. */
static void parts_change(struct group *g, int32_t part, int add)
{
    int k = 0;

    while (k < g->nparts && g->parts[k] != part)
        k++;
    if (add && k == g->nparts) {
        if (g->nparts == g->parts_cap) {
            g->parts_cap = g->parts_cap ? g->parts_cap * 2 : 16;
            g->parts = xrealloc(g->parts, (size_t)g->parts_cap * sizeof(*g->parts));
        }
        g->parts[g->nparts++] = part;
    } else if (!add && k < g->nparts) {
        g->parts[k] = g->parts[--g->nparts];
    }
}

/*
 * The assignment grows or shrinks by parts. A partition that comes (back)
 * starts afresh in the offsets table; one that goes is forgotten there, and
 * messages of it polled from now on are dropped untracked (offsets.h).
 */
static void assignment_change(struct group *g, const rd_kafka_topic_partition_list_t *parts,
                              int add)
{
    for (int i = 0; i < parts->cnt; i++) {
        int32_t part = parts->elems[i].partition;
        *part_state(g, part) = -1; /* librdkafka keeps our old pause flag: decide again */
        if (add)
            offsets_assign(g->offsets, part);
        else
            offsets_revoke(g->offsets, part);
        parts_change(g, part, add);
    }
}

/*
 * Pause every assigned partition while the round holds all (PostgreSQL
 * down, too many messages waiting on locks held elsewhere), and one
 * partition alone while hold_limit of its messages wait behind its oldest
 * unsettled one; resume when that no longer holds. We keep polling
 * meanwhile, so the group does not evict us. Partitions in state -1 (just
 * assigned) always get an explicit pause or resume: librdkafka keeps an
 * application's pause across a revoke and a new assignment, so "not paused
 * by us" must be said.
 */
void group_update_paused(struct group *g)
{
    int all = g->hooks.hold_all(g->hooks.arg), npaused = 0;
    rd_kafka_topic_partition_list_t *lists[2] = {NULL, NULL}; /* resume, pause */

    for (int i = 0; i < g->nparts; i++) {
        int32_t part = g->parts[i];
        int8_t *st = part_state(g, part);
        int want = all || offsets_pending(g->offsets, part) >= g->hold_limit;
        npaused += want;
        if (*st == want)
            continue;
        if (want && !all)
            log_info("partition paused behind an unsettled message",
                     "partition=%" PRId32 " waiting=%zu", part, offsets_pending(g->offsets, part));
        *st = (int8_t)want;
        if (!lists[want])
            lists[want] = rd_kafka_topic_partition_list_new(g->nparts);
        rd_kafka_topic_partition_list_add(lists[want], g->o->topic, part);
    }
    if (lists[0]) {
        rd_kafka_resume_partitions(g->rk, lists[0]);
        rd_kafka_topic_partition_list_destroy(lists[0]);
    }
    if (lists[1]) {
        rd_kafka_pause_partitions(g->rk, lists[1]);
        rd_kafka_topic_partition_list_destroy(lists[1]);
    }
    metric_set(g->paused, npaused);
}

/* 1 when we asked librdkafka to pause one of our partitions. */
static int any_paused(struct group *g)
{
    for (int i = 0; i < g->nparts; i++)
        if (*part_state(g, g->parts[i]) == 1)
            return 1;
    return 0;
}

/* ------------------------------------------------------------ offsets */

/* Kafka offset storing: each partition's offset moves past what is settled. */
void group_store_offsets(struct group *g)
{
    rd_kafka_topic_partition_list_t *l = NULL;
    rd_kafka_resp_err_t err;
    int64_t next;

    for (int32_t part = 0; part < offsets_partition_count(g->offsets); part++) {
        if (!offsets_take(g->offsets, part, &next))
            continue;
        if (!l)
            l = rd_kafka_topic_partition_list_new(8);
        rd_kafka_topic_partition_list_add(l, g->o->topic, part)->offset = next;
    }
    if (!l)
        return;
    err = rd_kafka_offsets_store(g->rk, l);
    if (err)
        log_warn("offsets not stored", "error=%s", rd_kafka_err2name(err));
    rd_kafka_topic_partition_list_destroy(l);
}

/*
 * Nothing to commit sent nothing, so it says nothing of the coordinator:
 * ask it for our committed offsets instead, by the same deadline. A
 * timeout marks the group unreachable.
 */
static rd_kafka_resp_err_t coordinator_probe(struct group *g, int64_t deadline)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_resp_err_t err = rd_kafka_assignment(g->rk, &parts);
    int64_t left = deadline - util_now_ms();

    if (!err && parts->cnt > 0)
        err = rd_kafka_committed(g->rk, parts, left > 0 ? (int)left : 1);
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    if (err == RD_KAFKA_RESP_ERR__TIMED_OUT)
        g->unreachable = 1;
    return err;
}

/*
 * Commit the stored offsets and wait for the coordinator's answer, at most
 * COMMIT_WAIT_MS: librdkafka's own synchronous commit waits without a bound,
 * and with the brokers gone that held a SIGTERM for 45-90 s. Offsets left
 * uncommitted cost duplicates (the next owner reads those messages again and
 * Redis or PostgreSQL stops them), never a vote. 0 when committed (or there
 * was nothing to commit), -1 when not; -1 after a timeout also marks the
 * group unreachable, so the close does not wait for it again. probe: with
 * nothing to commit, ask the coordinator anyway; the close only, since inside
 * a rebalance callback that read waits for the rebalance, which waits for us.
 */
static int commit_sync(struct group *g, int probe)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(g->rk);
    rd_kafka_resp_err_t err = rd_kafka_commit_queue(g->rk, NULL, q, NULL, NULL);
    int64_t deadline = util_now_ms() + COMMIT_WAIT_MS;

    while (!err) { /* until the commit's answer: rd_kafka_event_error says how it went */
        int64_t left = deadline - util_now_ms();
        rd_kafka_event_t *ev = left > 0 ? rd_kafka_queue_poll(q, (int)left) : NULL;

        if (!ev) {
            err = RD_KAFKA_RESP_ERR__TIMED_OUT;
            g->unreachable = 1;
            break;
        }
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_OFFSET_COMMIT) {
            err = rd_kafka_event_error(ev);
            rd_kafka_event_destroy(ev);
            break;
        }
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_queue_destroy(q);
    if (err == RD_KAFKA_RESP_ERR__NO_OFFSET)
        err = probe ? coordinator_probe(g, deadline) : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (!err)
        return 0;
    log_warn("offset commit failed",
             "error=%s waited_ms=%" PRId64
             " hint=\"the next owner reads the uncommitted messages again; Redis or PostgreSQL "
             "stops them as duplicates\"",
             rd_kafka_err2name(err), util_now_ms() - (deadline - COMMIT_WAIT_MS));
    return -1;
}

/* ------------------------------------------------------------ rebalance */

/* "0,3,5": the partitions of a rebalance, for its log line (cut at size). */
static void part_list(const rd_kafka_topic_partition_list_t *parts, char *list, size_t size)
{
    size_t used = 0;

    list[0] = '\0';
    for (int i = 0; i < parts->cnt && used < size; i++) {
        int w = snprintf(list + used, size - used, "%s%" PRId32, i ? "," : "",
                         parts->elems[i].partition);
        used += w > 0 ? (size_t)w : 0;
    }
}

static rd_kafka_error_t *on_assign(struct group *g, rd_kafka_topic_partition_list_t *parts,
                                   int cooperative)
{
    rd_kafka_error_t *error = NULL;
    char list[256];

    part_list(parts, list, sizeof(list));
    log_info("partitions assigned", "count=%d partitions=\"%s\"", parts->cnt, list);
    if (cooperative)
        error = rd_kafka_incremental_assign(g->rk, parts);
    else
        rd_kafka_assign(g->rk, parts);
    assignment_change(g, parts, 1);
    group_update_paused(g);
    g->joined = 1;
    g->assigned = 1;
    g->active_at = util_now_ms();
    return error;
}

static rd_kafka_error_t *on_revoke(struct group *g, rd_kafka_topic_partition_list_t *parts,
                                   int cooperative)
{
    rd_kafka_error_t *error = NULL;
    int lost = rd_kafka_assignment_lost(g->rk);
    char list[256];

    part_list(parts, list, sizeof(list));
    log_info("partitions revoked", "count=%d partitions=\"%s\" lost=%d", parts->cnt, list, lost);
    /* Hand over what is settled; the rest will be read again by the next owner. */
    g->hooks.revoke(g->hooks.arg, parts, 1);
    group_store_offsets(g);
    if (!lost)
        commit_sync(g, 0);
    assignment_change(g, parts, 0);
    if (cooperative) {
        error = rd_kafka_incremental_unassign(g->rk, parts);
    } else {
        rd_kafka_assign(g->rk, NULL);
        g->assigned = 0; /* an eager rebalance: a new assignment follows */
        g->unassigned_since = util_now_ms();
    }
    return error;
}

/* The rebalance itself failed: the whole assignment is gone, nothing handed over. */
static void on_rebalance_error(struct group *g, rd_kafka_resp_err_t err)
{
    rd_kafka_topic_partition_list_t *all = rd_kafka_topic_partition_list_new(g->nparts);

    log_error("rebalance failed", "error=%s", rd_kafka_err2name(err));
    rd_kafka_assign(g->rk, NULL);
    for (int i = 0; i < g->nparts; i++)
        rd_kafka_topic_partition_list_add(all, g->o->topic, g->parts[i]);
    g->hooks.revoke(g->hooks.arg, all, 0);
    assignment_change(g, all, 0);
    rd_kafka_topic_partition_list_destroy(all);
    g->assigned = 0;
    g->unassigned_since = util_now_ms();
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct group *g = opaque;
    const char *protocol = rd_kafka_rebalance_protocol(rk); /* NULL: none (yet) */
    int cooperative = protocol && strcmp(protocol, "COOPERATIVE") == 0;
    rd_kafka_error_t *error = NULL;

    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
        error = on_assign(g, parts, cooperative);
    else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
        error = on_revoke(g, parts, cooperative);
    else
        on_rebalance_error(g, err);
    if (error) {
        log_error("rebalance failed", "error=\"%s\"", rd_kafka_error_string(error));
        rd_kafka_error_destroy(error);
    }
}

/* ------------------------------------------------------------ errors */

/*
 * Kafka's fatal error: the handle is done. 1 when it must be logged as one;
 * 0 for UNRELEASED_INSTANCE_ID before we ever held an assignment: our
 * --instance-id still belongs to a member that vanished without leaving (a
 * crashed consumer restarted at once), which the KIP-848 protocol keeps
 * until its session ends; the round then tries again (group_rejoin).
 */
static int kafka_fatal(struct group *g, char *why, size_t whysize)
{
    rd_kafka_resp_err_t code = rd_kafka_fatal_error(g->rk, why, whysize);

    g->fatal = 1;
    if (code == RD_KAFKA_RESP_ERR_UNRELEASED_INSTANCE_ID && !g->joined) {
        g->instance_held = 1;
        return 0;
    }
    return 1;
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct group *g = opaque;
    char why[512];
    int64_t held;

    (void)rk;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        if (kafka_fatal(g, why, sizeof(why)))
            log_error("fatal Kafka error", "detail=\"%s\"", why);
    } else if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION) {
        log_error("Kafka authentication failed", "detail=\"%s\"", reason);
        g->fatal = 1;
    } else if (!kafka_err_is_outage(err)) {
        log_warn("Kafka error", "error=%s detail=\"%s\"",
                 rd_kafka_err2name((rd_kafka_resp_err_t)err), reason);
    } else if (log_every_due(&g->outage_log, util_now_ms(), KAFKA_OUTAGE_LOG_EVERY_MS, &held)) {
        log_warn("Kafka error", "error=%s detail=\"%s\" repeated=%" PRId64,
                 rd_kafka_err2name((rd_kafka_resp_err_t)err), reason, held);
    }
}

/* An error delivered as a message: a few mean this consumer cannot work at all. */
static void message_error(struct group *g, const rd_kafka_message_t *m)
{
    char why[512];

    switch (m->err) {
    case RD_KAFKA_RESP_ERR__PARTITION_EOF:
        return;
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
        /* Deleted, or not yet in every broker's metadata: the group waits for it. */
        log_warn("topic not available", "topic=%s error=%s", g->o->topic,
                 rd_kafka_err2name(m->err));
        return;
    case RD_KAFKA_RESP_ERR__FATAL:
        if (!kafka_fatal(g, why, sizeof(why)))
            return;
        /* fall through */
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
    case RD_KAFKA_RESP_ERR__AUTHENTICATION:
        log_error("cannot consume", "topic=%s error=%s detail=\"%s\"", g->o->topic,
                  rd_kafka_err2name(m->err), rd_kafka_message_errstr(m));
        g->fatal = 1;
        return;
    default:
        log_warn("consumer error", "error=%s detail=\"%s\"", rd_kafka_err2name(m->err),
                 rd_kafka_message_errstr(m));
        return;
    }
}

/*
 * Pop up to max messages, waiting at most timeout_ms: the number popped
 * (0 or less: none). Error messages are handled here and destroyed, their
 * slots left NULL; the others are the caller's.
 */
ssize_t group_consume(struct group *g, int timeout_ms, rd_kafka_message_t **msgs, size_t max)
{
    ssize_t k = rd_kafka_consume_batch_queue(g->cq, timeout_ms, msgs, max);

    for (ssize_t j = 0; j < k; j++) {
        if (!msgs[j]->err)
            continue;
        message_error(g, msgs[j]);
        rd_kafka_message_destroy(msgs[j]);
        msgs[j] = NULL;
    }
    return k;
}

int group_fatal(const struct group *g)
{
    return g->fatal;
}

/* ------------------------------------------------------------ the consumer */

/*
 * The group's settings. By default the KIP-848 protocol (group.protocol=
 * consumer): the broker assigns, a rebalance moves only the partitions that
 * change hands (the others never stop), and session and heartbeat are the
 * broker's settings (group.consumer.session.timeout.ms). --group-protocol
 * classic is for brokers before 4.0: the cooperative-sticky assignor, which
 * is incremental too, with our session timeout. Either way the rebalance
 * callback takes the incremental path. Static membership (--instance-id)
 * works with both. A group without offsets starts at --start-at (earliest by
 * default: "latest" would never read votes acknowledged before the group
 * existed).
 */
static int group_conf(rd_kafka_conf_t *conf, const struct consumer_opts *o, char *errstr,
                      size_t errsize)
{
    char session[24], heartbeat[24];

    if (kafka_conf_set(conf, "group.id", o->group, errstr, errsize) != 0 ||
        kafka_conf_set(conf, "group.protocol", o->group_protocol, errstr, errsize) != 0 ||
        (o->instance_id &&
         kafka_conf_set(conf, "group.instance.id", o->instance_id, errstr, errsize) != 0))
        return -1;
    if (strcmp(o->group_protocol, "classic") != 0)
        return 0;
    snprintf(session, sizeof(session), "%" PRId64, o->session_timeout_ms);
    snprintf(heartbeat, sizeof(heartbeat), "%" PRId64, o->session_timeout_ms / 6);
    if (kafka_conf_set(conf, "partition.assignment.strategy", "cooperative-sticky", errstr,
                       errsize) != 0 ||
        kafka_conf_set(conf, "session.timeout.ms", session, errstr, errsize) != 0 ||
        kafka_conf_set(conf, "heartbeat.interval.ms", heartbeat, errstr, errsize) != 0)
        return -1;
    return 0;
}

/*
 * Offsets are stored by hand, only for settled messages; auto-commit sends
 * them. A small prefetch (see PREFETCH_BATCHES): fetching is far faster than
 * PostgreSQL, so a deep queue only costs memory, and with a short
 * fetch.queue.backoff.ms a full queue is topped up again within a
 * millisecond instead of librdkafka's one second (the default, and the only
 * choice before 2.1). -X overrides these.
 */
static int fetch_conf(rd_kafka_conf_t *conf, const struct consumer_opts *o, char *errstr,
                      size_t errsize)
{
    char min_msgs[24], max_kb[24], backoff[24], part_bytes[24];

    snprintf(min_msgs, sizeof(min_msgs), "%" PRId64, PREFETCH_BATCHES * o->batch_size);
    snprintf(max_kb, sizeof(max_kb), "%d", PREFETCH_KB);
    snprintf(backoff, sizeof(backoff), "%d", FETCH_QUEUE_BACKOFF_MS);
    snprintf(part_bytes, sizeof(part_bytes), "%d", PARTITION_FETCH_KB * 1024);
    if (kafka_conf_set(conf, "enable.auto.offset.store", "false", errstr, errsize) != 0 ||
        kafka_conf_set(conf, "enable.auto.commit", "true", errstr, errsize) != 0 ||
        kafka_conf_set(conf, "auto.offset.reset", o->start_at, errstr, errsize) != 0 ||
        kafka_conf_set(conf, "queued.min.messages", min_msgs, errstr, errsize) != 0 ||
        kafka_conf_set(conf, "queued.max.messages.kbytes", max_kb, errstr, errsize) != 0 ||
        kafka_conf_set(conf, "max.partition.fetch.bytes", part_bytes, errstr, errsize) != 0 ||
        kafka_conf_set(conf, "fetch.queue.backoff.ms", backoff, errstr, errsize) != 0 ||
        kafka_conf_set(conf, "fetch.error.backoff.ms", "50", errstr, errsize) != 0)
        return -1;
    return 0;
}

/* A new Kafka consumer, with g as the opaque of its callbacks, and its queue. */
static int consumer_new(struct group *g, char *errstr, size_t errsize)
{
    const struct consumer_opts *o = g->o;
    rd_kafka_conf_t *conf = kafka_conf_new(o->brokers, errstr, errsize);

    if (!conf)
        return -1;
    if (group_conf(conf, o, errstr, errsize) != 0 || fetch_conf(conf, o, errstr, errsize) != 0 ||
        kafka_conf_apply(conf, &o->extra, errstr, errsize) != 0)
        goto fail;
    rd_kafka_conf_set_opaque(conf, g);
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    if (!(g->rk = kafka_new(RD_KAFKA_CONSUMER, &conf, "Kafka consumer", errstr, errsize)))
        goto fail;
    rd_kafka_poll_set_consumer(g->rk);
    g->cq = rd_kafka_queue_get_consumer(g->rk);
    return 0;
fail:
    if (conf)
        rd_kafka_conf_destroy(conf);
    return -1;
}

struct group *group_new(const struct consumer_opts *o, struct offsets *offsets,
                        struct metrics *metrics, size_t hold_limit, const struct group_hooks *hooks,
                        char *errstr, size_t errsize)
{
    struct group *g = xcalloc(1, sizeof(*g));

    g->o = o;
    g->offsets = offsets;
    g->metrics = metrics;
    g->hold_limit = hold_limit;
    g->hooks = *hooks;
    g->paused = metrics_gauge(metrics, "tadak_consumer_paused_partitions", "",
                              "Assigned partitions this consumer paused (PostgreSQL down, "
                              "messages held)");
    if (consumer_new(g, errstr, errsize) != 0) {
        group_free(g);
        return NULL;
    }
    g->started_at = g->active_at = g->unassigned_since = util_now_ms();
    return g;
}

/* ------------------------------------------------------------ topic, join */

/*
 * 1 when the topic exists (with partitions), 0 when not (yet), -1 when we may
 * not see it; *errp: why not (a local error when no broker answered).
 */
static int topic_exists(struct group *g, rd_kafka_resp_err_t *errp, char *why, size_t whysize)
{
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(g->rk, g->o->topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err;
    int rc = 0;

    if (!rkt) {
        snprintf(why, whysize, "%s", rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    err = rd_kafka_metadata(g->rk, 0, rkt, &md, TOPIC_CHECK_MS * 4);
    if (!err && md->topic_cnt == 1) {
        err = md->topics[0].err;
        rc = !err && md->topics[0].partition_cnt > 0;
    }
    if (err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
        err == RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION)
        rc = -1;
    snprintf(why, whysize, "%s", err ? rd_kafka_err2name(err) : "no partitions");
    *errp = err;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return rc;
}

/* With --idle-exit, a consumer that cannot start consuming gives up after --join-timeout-s. */
static int join_expired(const struct group *g, int64_t since, int64_t now)
{
    return g->o->idle_exit_s && now - since >= g->o->join_timeout_s * 1000;
}

/* Why the topic is not there yet: Kafka unreachable, or the topics it has. */
static void topic_missing_log(struct group *g, rd_kafka_resp_err_t err, const char *why)
{
    char others[512];

    if (topics_unreachable(err)) {
        log_warn("cannot reach Kafka, waiting",
                 "brokers=%s set_by=\"--brokers or KAFKA_BOOTSTRAP_SERVERS\" error=%s",
                 g->o->brokers, why);
        return;
    }
    topics_list(g->rk, TOPIC_CHECK_MS * 4, g->o->topic, others, sizeof(others));
    log_info("waiting for the topic to exist", "topic=%s error=%s existing=\"%s\"", g->o->topic,
             why, others);
}

/*
 * Before subscribing, wait for the topic: a fresh deployment starts its
 * consumers before the first vote creates it; logged once, then every 30 s.
 */
int group_wait_topic(struct group *g)
{
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    int64_t logged_at = 0, now;
    char why[512];
    int rc;

    while ((rc = topic_exists(g, &err, why, sizeof(why))) == 0) {
        now = util_now_ms();
        if (shutdown_requested())
            return 1;
        if (join_expired(g, g->started_at, now)) {
            log_error("topic never appeared, giving up", "topic=%s waited_s=%" PRId64 " error=%s",
                      g->o->topic, (now - g->started_at) / 1000, why);
            return GROUP_NOT_JOINED;
        }
        if (!logged_at || now - logged_at >= TOPIC_LOG_EVERY_MS) {
            topic_missing_log(g, err, why);
            logged_at = now;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(g->rk, TOPIC_CHECK_MS);
        if (m)
            rd_kafka_message_destroy(m); /* nothing is subscribed yet: only errors */
    }
    if (rc < 0) {
        log_error("cannot read the topic", "topic=%s error=%s", g->o->topic, why);
        return GROUP_FATAL;
    }
    if (logged_at)
        log_info("topic exists, consuming", "topic=%s", g->o->topic);
    return 0;
}

int group_subscribe(struct group *g)
{
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_resp_err_t err;

    rd_kafka_topic_partition_list_add(topics, g->o->topic, RD_KAFKA_PARTITION_UA);
    err = rd_kafka_subscribe(g->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err) {
        log_error("cannot subscribe", "topic=%s error=\"%s\"", g->o->topic, rd_kafka_err2str(err));
        return GROUP_FATAL;
    }
    g->unassigned_since = util_now_ms();
    return 0;
}

/*
 * After a fatal Kafka error. Only when our --instance-id is held by a member
 * that never left (see kafka_fatal): a new Kafka handle after a back-off,
 * until --join-timeout-s has passed since the start; past that, it is a live
 * consumer with the same id. Nothing was ever assigned to this one, so
 * nothing is held or owed. 0 to go on, 1 when a signal came during the
 * back-off, GROUP_FATAL to give up (at once for any other fatal error).
 */
int group_rejoin(struct group *g)
{
    int64_t now = util_now_ms();
    char errstr[512];

    if (!g->instance_held)
        return GROUP_FATAL;
    if (now - g->started_at >= g->o->join_timeout_s * 1000) {
        log_error("our --instance-id is held by another member of the group, giving up",
                  "instance=%s group=%s waited_s=%" PRId64
                  " hint=\"another consumer runs with this --instance-id\"",
                  g->o->instance_id, g->o->group, (now - g->started_at) / 1000);
        return GROUP_FATAL;
    }
    if (!g->held_backoff_ms)
        log_warn("our --instance-id is held by a member that has not left (a crashed consumer?): "
                 "retrying until the broker ends its session",
                 "instance=%s group=%s", g->o->instance_id, g->o->group);
    g->held_backoff_ms = g->held_backoff_ms ? g->held_backoff_ms * 2 : HELD_BACKOFF_MIN_MS;
    if (g->held_backoff_ms > HELD_BACKOFF_MAX_MS)
        g->held_backoff_ms = HELD_BACKOFF_MAX_MS;
    if (shutdown_nap_until(now + g->held_backoff_ms))
        return 1;
    rd_kafka_queue_destroy(g->cq);
    g->cq = NULL;
    rd_kafka_destroy_flags(g->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    g->rk = NULL;
    if (consumer_new(g, errstr, sizeof(errstr)) != 0) {
        log_error("cannot start", "error=\"%s\"", errstr);
        return GROUP_FATAL;
    }
    g->fatal = g->instance_held = 0;
    return group_subscribe(g);
}

/* ------------------------------------------------------------ clocks, lag */

void group_update_lag(struct group *g, int64_t now)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    char labels[64];

    if (now < g->next_lag_at)
        return;
    g->next_lag_at = now + LAG_EVERY_MS;
    if (rd_kafka_assignment(g->rk, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    rd_kafka_position(g->rk, parts);
    for (int i = 0; i < parts->cnt; i++) {
        int64_t lo, hi;
        if (parts->elems[i].offset < 0 ||
            rd_kafka_get_watermark_offsets(g->rk, parts->elems[i].topic, parts->elems[i].partition,
                                           &lo, &hi) != 0 ||
            hi < 0)
            continue;
        snprintf(labels, sizeof(labels), "partition=\"%" PRId32 "\"", parts->elems[i].partition);
        metric_set(metrics_gauge(g->metrics, "tadak_consumer_lag", labels,
                                 "Messages between the consumer's position and the high watermark"),
                   hi - parts->elems[i].offset);
    }
    rd_kafka_topic_partition_list_destroy(parts);
}

void group_touch(struct group *g, int64_t now)
{
    g->active_at = now;
}

/*
 * --idle-exit: 0 to go on, 1 to exit 0 (idle long enough with an assignment),
 * GROUP_NOT_JOINED when no assignment came within --join-timeout-s. Idle
 * time counts only while an assignment is held: a consumer waiting for the
 * group (dead members' sessions, a rebalance) is not "done", and saying
 * "nothing to consume" then would tell a replay test the topic was empty.
 */
int group_idle_check(struct group *g, int64_t now, int busy)
{
    if (!g->o->idle_exit_s)
        return 0;
    if (!g->assigned) {
        g->active_at = now;
        if (!join_expired(g, g->unassigned_since, now))
            return 0;
        log_error(g->joined ? "no assignment from the group, giving up"
                            : "never joined the group, giving up",
                  "group=%s topic=%s waited_s=%" PRId64, g->o->group, g->o->topic,
                  (now - g->unassigned_since) / 1000);
        return GROUP_NOT_JOINED;
    }
    /*
     * Busy (PostgreSQL down), or a partition paused (behind a held message,
     * or by the outage), is not "nothing to consume": a rebalance may have
     * dropped every held message, yet the lag is still there.
     */
    if (busy || any_paused(g))
        g->active_at = now;
    if (now - g->active_at < g->o->idle_exit_s * 1000)
        return 0;
    log_info("nothing to consume, exiting", "idle_s=%" PRId64, g->o->idle_exit_s);
    return 1;
}

/* ------------------------------------------------------------ teardown */

/*
 * Leave the group: the settled offsets stored and committed (unless Kafka
 * failed fatally: the handle can commit nothing), the queue destroyed before
 * the close, which serves the consumer queue. When the commit's answer did
 * not come (COMMIT_WAIT_MS), the close is skipped: it would wait as long
 * again for librdkafka's own final commit (group_left_running).
 */
void group_close(struct group *g)
{
    group_store_offsets(g);
    g->unreachable = 0; /* a revoke's commit that timed out earlier says nothing of now */
    if (!g->fatal)
        commit_sync(g, 1);
    rd_kafka_queue_destroy(g->cq);
    g->cq = NULL;
    if (!g->unreachable)
        rd_kafka_consumer_close(g->rk);
}

/*
 * A commit the coordinator did not answer in time: the close skipped
 * rd_kafka_consumer_close, and destroying the handle would join librdkafka's
 * main thread, which waits (45 s and more) for commits queued on a
 * coordinator that is gone. group_free leaves the handle running; the
 * process exits without joining its threads (main).
 */
int group_left_running(const struct group *g)
{
    return g && g->unreachable;
}

void group_free(struct group *g)
{
    if (!g)
        return;
    if (g->cq)
        rd_kafka_queue_destroy(g->cq);
    if (g->rk && !g->unreachable)
        rd_kafka_destroy(g->rk);
    free(g->parts);
    free(g->pstate);
    free(g);
}
