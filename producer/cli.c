/*
 * cli.c - send, replay and load: publish votes (or events of --type) from
 * the command line. See cli.h for the interface.
 *
 * The three subcommands share one shape: load their options (options.h),
 * open a publisher (delivery reports served on this thread), publish,
 * flush, and account for every message: acked + failed == sent once the
 * flush is done, because librdkafka's own message timeout fails what the
 * broker never acknowledged.
 */
#include "cli.h"
#include "api.h"
#include "event.h"
#include "loadgen.h"
#include "kafka.h"
#include "log.h"
#include "options.h"
#include "publisher.h"
#include "strbuf.h"
#include "util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * What became of the messages a subcommand published: the numbers of its
 * summary line. Delivery reports arrive on this thread (publisher_poll,
 * publisher_send waiting for room, publisher_free's flush).
 */
struct cli_counts {
    struct publish_completion completion; /* first member: the report finds us through it */
    int64_t sent, acked, failed, bad_lines;
    int64_t produce_failed, report_failed;
};

static void count_report(struct publish_completion *cb, const struct publish_report *r)
{
    struct cli_counts *c = (struct cli_counts *)cb;

    if (r->err == 0)
        c->acked++;
    else
        c->report_failed++;
}

/* Load cmd's options: 0 to go on, otherwise *rc holds the exit status. */
static int cli_setup(enum producer_cmd cmd, struct producer_opts *o, int argc, char **argv, int *rc)
{
    char err[512];
    int r = producer_opts_load(o, cmd, argc, argv, err, sizeof(err));

    if (r == 0)
        return 0;
    if (r < 0)
        fprintf(stderr, "tadak-producer %s: %s\n", argv[0], err);
    *rc = r > 0 ? 0 : 2;
    return -1;
}

#define CLI_REACH_MS 5000 /* how long a command waits for Kafka's first answer */

/*
 * A publisher, once Kafka answered within CLI_REACH_MS and has the topic:
 * without that, one line naming the address, where it came from and (for the
 * built-in default) the local stack's environment, or the missing topic and
 * the ones that exist, and *rc = 1, instead of every send failing after the
 * message timeout (30 s) with only librdkafka's connection lines.
 */
static struct publisher *cli_publisher(const struct producer_opts *cfg, int bulk, const char *cmd,
                                       int *rc)
{
    struct publisher_opts o = {.brokers = cfg->brokers,
                               .topic = cfg->topic,
                               .topic_type = cfg->type,
                               .types = cfg->types,
                               .extra = &cfg->extra,
                               .delivery_timeout_ms = cfg->delivery_timeout_ms,
                               .ack_log = cfg->ack_log,
                               .poller = 0, /* reports are served on this thread */
                               .bulk = bulk};
    char err[512], existing[512];
    struct publisher *p = publisher_new(&o, NULL, err, sizeof(err));
    const char *topic;
    int reach_ms;

    if (!p) {
        log_error("cannot start publisher", "error=\"%s\"", err);
        return NULL;
    }
    /* A shorter --delivery-timeout-ms is the user's bound for the whole send: it holds here. */
    reach_ms =
        cfg->delivery_timeout_ms < CLI_REACH_MS ? (int)cfg->delivery_timeout_ms : CLI_REACH_MS;
    if (!publisher_reach(p, reach_ms)) {
        fprintf(stderr, "tadak-producer %s: cannot reach Kafka at %s within %.1f s (%s)\n", cmd,
                cfg->brokers, reach_ms / 1000.0, kafka_reach_hint(cfg->brokers));
        publisher_free(p);
        *rc = 1;
        return NULL;
    }
    topic = publisher_topic_of(p, cfg->type);
    if (publisher_topic_named(p, topic, reach_ms, existing, sizeof(existing)) == 0) {
        fprintf(stderr,
                "tadak-producer %s: topic %s does not exist at %s (existing: %s); create it with "
                "tadak-consumer topics --topic %s, or use --topic\n",
                cmd, topic, cfg->brokers, existing[0] ? existing : "none", topic);
        publisher_free(p);
        *rc = 1;
        return NULL;
    }
    return p;
}

static int cli_publish(struct publisher *p, struct cli_counts *c, const struct event *v)
{
    char err[256];

    if (publisher_send(p, v, &c->completion, PUBLISH_WAIT, err, sizeof(err)) != 0) {
        log_error("publish failed", "token=%s error=\"%s\"", v->token, err);
        c->produce_failed++;
        return -1;
    }
    c->sent++;
    return 0;
}

/* Wait for every report, print the summary, free; returns the exit status. */
static int cli_finish(struct publisher *p, struct cli_counts *c, int with_bad_lines)
{
    int64_t unresolved;

    publisher_free(p); /* flushes; what stays undelivered is purged and reported failed */
    unresolved = c->sent - c->acked - c->report_failed;
    if (unresolved > 0) {
        log_error("messages without a delivery report", "count=%" PRId64, unresolved);
        c->report_failed += unresolved;
    }
    c->failed = c->produce_failed + c->report_failed;
    if (with_bad_lines)
        printf("{\"sent\":%" PRId64 ",\"acked\":%" PRId64 ",\"failed\":%" PRId64
               ",\"bad_lines\":%" PRId64 "}\n",
               c->sent, c->acked, c->failed, c->bad_lines);
    else
        printf("{\"sent\":%" PRId64 ",\"acked\":%" PRId64 ",\"failed\":%" PRId64 "}\n", c->sent,
               c->acked, c->failed);
    fflush(stdout);
    return (c->failed > 0 || c->bad_lines > 0) ? 1 : 0;
}

/* One --field NAME=VALUE as a JSON member: 0, or -1 naming the problem. */
static int field_member(const struct evtype *t, const char *name, const char *value,
                        struct strbuf *json, char *errstr, size_t errsize)
{
    char esc[EVTYPE_STRING_MAX * 6 + 1];
    int f = evtype_field(t, name);
    int64_t n;

    if (f < 0) {
        snprintf(errstr, errsize, "--field %s: not a field of %s", name, t->name);
        return -1;
    }
    if (t->fields[f].kind == EVF_STRING || t->fields[f].kind == EVF_ENUM_STRING) {
        if (api_json_escape(value, esc, sizeof(esc)) < 0) {
            snprintf(errstr, errsize, "--field %s: the value is too long", name);
            return -1;
        }
        strbuf_printf(json, "%s\"%s\":\"%s\"", json->len > 1 ? "," : "", name, esc);
        return 0;
    }
    if (util_parse_i64(value, &n) != 0) {
        snprintf(errstr, errsize, "--field %s=%s: \"%s\" must be an integer", name, value, name);
        return -1;
    }
    strbuf_printf(json, "%s\"%s\":%" PRId64, json->len > 1 ? "," : "", name, n);
    return 0;
}

/*
 * send's event: --user and --candidate's vote, or the --field values as a
 * JSON object parsed as POST /events/{type} parses a body. 0 / -1 (errstr).
 */
static int send_event(const struct producer_opts *cfg, struct event *v, char *text, char *errstr,
                      size_t errsize)
{
    struct strbuf json;
    enum event_err err;
    char detail[256];
    int rc = -1;

    if (cfg->fields.n == 0) {
        event_vote(v, cfg->user, cfg->candidate);
        return 0;
    }
    strbuf_init(&json, 128);
    strbuf_putc(&json, '{');
    for (size_t i = 0; i < cfg->fields.n; i++)
        if (field_member(cfg->type, cfg->fields.keys[i], cfg->fields.vals[i], &json, errstr,
                         errsize) != 0)
            goto out;
    strbuf_putc(&json, '}');
    event_init(v, cfg->type, text);
    if (event_parse(v, json.s, json.len, 0, &err, detail, sizeof(detail)) != 0) {
        snprintf(errstr, errsize, "--field: %s: %s", event_err_name(err), detail);
        goto out;
    }
    rc = 0;
out:
    free(json.s);
    return rc;
}

int cli_send(int argc, char **argv)
{
    struct producer_opts cfg;
    struct cli_counts c = {.completion = {.fn = count_report}};
    struct publisher *p;
    struct event v;
    char text[EVTYPE_TEXT_MAX], err[512];
    int rc = 2;

    if (cli_setup(PRODUCER_SEND, &cfg, argc, argv, &rc) != 0)
        goto out;
    if (send_event(&cfg, &v, text, err, sizeof(err)) != 0) {
        fprintf(stderr, "tadak-producer send: %s\n", err);
        goto out;
    }
    if (!(p = cli_publisher(&cfg, 0, "send", &rc)))
        goto out;
    for (int64_t i = 0; i < cfg.repeat; i++) {
        v.ts_ms = util_wall_ms();
        event_new_id(v.event_id);
        cli_publish(p, &c, &v);
        publisher_poll(p, 0);
    }
    rc = cli_finish(p, &c, 0);
out:
    producer_opts_free(&cfg);
    return rc;
}

/*
 * The next line of in, without its '\n', into buf[0, cap): 1 a line, 0 end
 * of input, -1 a read error. A longer line is read on and dropped, never
 * held: *too_long says so and *len is what was kept.
 */
static int read_line(FILE *in, char *buf, size_t cap, size_t *len, int *too_long)
{
    int c = EOF, got = 0;

    *len = 0;
    *too_long = 0;
    flockfile(in);
    while ((c = getc_unlocked(in)) != EOF) {
        got = 1;
        if (c == '\n')
            break;
        if (*len < cap)
            buf[(*len)++] = (char)c;
        else
            *too_long = 1;
    }
    funlockfile(in);
    if (c == EOF && ferror(in))
        return -1;
    return got;
}

static int is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return 0;
    return 1;
}

/*
 * Publish line `lineno` of a replay, its first len bytes (too_long: the rest
 * was dropped); a line that is no vote is counted bad and skipped, a blank
 * one skipped.
 */
static void replay_line(struct publisher *p, const struct evtype *t, struct cli_counts *c,
                        const char *line, size_t len, int too_long, int64_t lineno)
{
    struct event v;
    enum event_err err;
    char detail[256], text[EVTYPE_TEXT_MAX];

    event_init(&v, t, text);
    if (too_long) {
        log_warn("bad line skipped", "line=%" PRId64 " error=%s detail=\"%s\"", lineno,
                 event_err_name(EVENT_ERR_TOO_LARGE), "the line is longer than 1 MiB");
        c->bad_lines++;
        return;
    }
    if (is_blank(line, len))
        return;
    while (len > 0 && line[len - 1] == '\r')
        len--;
    if (event_parse(&v, line, len, 0, &err, detail, sizeof(detail)) != 0) {
        log_warn("bad line skipped", "line=%" PRId64 " error=%s detail=\"%s\"", lineno,
                 event_err_name(err), detail);
        c->bad_lines++;
        return;
    }
    if (v.event_id[0] == '\0')
        event_new_id(v.event_id);
    if (v.ts_ms == 0)
        v.ts_ms = util_wall_ms();
    cli_publish(p, c, &v);
    publisher_poll(p, 0);
}

int cli_replay(int argc, char **argv)
{
    struct producer_opts cfg;
    struct cli_counts c = {.completion = {.fn = count_report}};
    struct publisher *p = NULL;
    FILE *in = NULL;
    char *line = xmalloc(EVENT_MAX_BYTES); /* the longest line a vote can be */
    size_t len;
    int64_t lineno = 0;
    int rc = 2, got, too_long;

    if (cli_setup(PRODUCER_REPLAY, &cfg, argc, argv, &rc) != 0)
        goto out;
    in = strcmp(cfg.pos[0], "-") == 0 ? stdin : fopen(cfg.pos[0], "r");
    if (!in) {
        fprintf(stderr, "tadak-producer replay: cannot open %s: %s\n", cfg.pos[0], strerror(errno));
        goto out;
    }
    if (!(p = cli_publisher(&cfg, 0, "replay", &rc)))
        goto out;
    while ((got = read_line(in, line, EVENT_MAX_BYTES, &len, &too_long)) > 0)
        replay_line(p, cfg.type, &c, line, len, too_long, ++lineno);
    if (got < 0) /* EIO, a directory, ...: say where, and never exit 0 */
        log_error("read error", "file=%s line=%" PRId64 " error=\"%s\"", cfg.pos[0], lineno + 1,
                  strerror(errno));
    rc = cli_finish(p, &c, 1);
    if (got < 0 && rc == 0)
        rc = 1;
out:
    if (in && in != stdin)
        fclose(in);
    free(line);
    producer_opts_free(&cfg);
    return rc;
}

/* Hold the pace of --rate, serving delivery reports while waiting. */
static void load_pace(struct publisher *p, int64_t start_ms, uint64_t i, int64_t rate)
{
    int64_t due = start_ms + (int64_t)((double)i * 1000.0 / (double)rate), now;

    while ((now = util_now_ms()) < due)
        publisher_poll(p, (int)(due - now < 100 ? due - now : 100));
}

int cli_load(int argc, char **argv)
{
    struct producer_opts cfg;
    struct cli_counts c = {.completion = {.fn = count_report}};
    struct publisher *p = NULL;
    struct loadgen *g = NULL;
    char err[256];
    int64_t start;
    uint64_t i = 0;
    int rc = 2;

    if (cli_setup(PRODUCER_LOAD, &cfg, argc, argv, &rc) != 0)
        goto out;
    g = loadgen_new((uint64_t)cfg.users, (uint64_t)cfg.dup, (uint64_t)cfg.seed,
                    (uint64_t)cfg.candidate_count, err, sizeof(err));
    if (!g || loadgen_fits(cfg.type, (uint64_t)cfg.users, err, sizeof(err)) != 0) {
        fprintf(stderr, "tadak-producer load: %s\n", err);
        goto out;
    }
    if (!(p = cli_publisher(&cfg, 1, "load", &rc)))
        goto out;
    start = util_now_ms();
    for (int64_t user, cand; loadgen_next(g, &user, &cand); i++) {
        struct event v;
        char text[EVTYPE_TEXT_MAX];

        if (cfg.rate > 0)
            load_pace(p, start, i, cfg.rate);
        if (cfg.type == evtype_vote())
            event_vote(&v, user, cand);
        else if (loadgen_event(cfg.type, (uint64_t)cfg.seed, user, cand,
                               (uint64_t)cfg.candidate_count, &v, text) != 0) {
            log_error("no event for this user", "user=%" PRId64 " type=%s", user, cfg.type->name);
            c.produce_failed++;
            continue;
        }
        v.ts_ms = util_wall_ms();
        event_new_id(v.event_id);
        cli_publish(p, &c, &v);
        if ((i & 1023) == 0)
            publisher_poll(p, 0);
    }
    log_info("load published", "events=%" PRIu64 " ms=%" PRId64, loadgen_count(g),
             util_now_ms() - start);
    rc = cli_finish(p, &c, 0);
out:
    loadgen_free(g);
    producer_opts_free(&cfg);
    return rc;
}
