/*
 * test_cli_options.c - tadak-producer's option tables (producer/options.c):
 * the shared rows mean the same in every command, each command keeps its
 * own defaults, and what the table cannot check is checked.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "options.h"

#define ARGV(...) ((char *[]){__VA_ARGS__})

static const char *const env_names[] = {
    "KAFKA_BOOTSTRAP_SERVERS",   "TADAK_TOPIC",      "TADAK_LOG_LEVEL", "TADAK_ACK_LOG",
    "TADAK_DELIVERY_TIMEOUT_MS", "TADAK_CANDIDATES", "TADAK_TYPES",     "TADAK_TYPE"};

static int setup(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++)
        unsetenv(env_names[i]);
    return 0;
}

static int load(struct producer_opts *o, enum producer_cmd cmd, int argc, char **argv, char *err)
{
    return producer_opts_load(o, cmd, argc, argv, err, 256);
}

static void test_shared_rows_in_every_command(void **state)
{
    /* The shared flags, then what each command needs to load. */
    static const struct {
        enum producer_cmd cmd;
        const char *own[4];
    } cmds[] = {
        {PRODUCER_SERVE, {NULL}},
        {PRODUCER_SEND, {"-u", "1", "-c", "2"}},
        {PRODUCER_REPLAY, {"-"}},
        {PRODUCER_LOAD, {"-N", "3"}},
    };
    static const char *const shared[] = {"cmd", "-b",       "k:1",       "-t",
                                         "t1",  "-Xacks=1", "--ack-log", "a.jsonl"};
    struct producer_opts o;
    char err[256];

    (void)state;
    setenv("TADAK_LOG_LEVEL", "warn", 1);
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        const char *argv[16];
        int argc = 0;

        for (size_t k = 0; k < sizeof(shared) / sizeof(shared[0]); k++)
            argv[argc++] = shared[k];
        for (size_t k = 0; k < 4 && cmds[i].own[k]; k++)
            argv[argc++] = cmds[i].own[k];
        assert_int_equal(load(&o, cmds[i].cmd, argc, (char **)argv, err), 0);
        assert_string_equal(o.brokers, "k:1");
        assert_string_equal(o.topic, "t1");
        assert_int_equal(o.extra.n, 1);
        assert_string_equal(o.extra.keys[0], "acks");
        assert_string_equal(o.ack_log, "a.jsonl");
        assert_int_equal(o.log_level, LOG_WARN);
        producer_opts_free(&o);
    }
    unsetenv("TADAK_LOG_LEVEL");
}

static void test_each_command_keeps_its_defaults(void **state)
{
    struct producer_opts o;
    char err[256];

    (void)state;
    assert_int_equal(load(&o, PRODUCER_SERVE, 1, ARGV((char[]){"serve"}), err), 0);
    assert_int_equal(o.delivery_timeout_ms, 5000);
    assert_string_equal(o.listen, "127.0.0.1:8000");
    assert_string_equal(o.brokers, "127.0.0.1:9092");
    assert_int_equal(o.ballot.n, 0); /* no --candidates: any id */
    /* The shared Redis and PostgreSQL rows have no default in serve: unset, no reads. */
    assert_null(o.redis_url);
    assert_null(o.database_url);
    assert_string_equal(o.key_prefix, "");
    producer_opts_free(&o);

    assert_int_equal(
        load(&o, PRODUCER_LOAD, 3, ARGV((char[]){"load"}, (char[]){"-N"}, (char[]){"7"}), err), 0);
    assert_int_equal(o.delivery_timeout_ms, 30000);
    assert_int_equal(o.users, 7);
    assert_int_equal(o.candidate_count, 4); /* the page's and the demo's ballot, 1-4 */
    assert_int_equal(o.dup, 1);
    producer_opts_free(&o);

    /* serve's --candidates is a ballot, load's a count. */
    assert_int_equal(load(&o, PRODUCER_SERVE, 3,
                          ARGV((char[]){"serve"}, (char[]){"--candidates"}, (char[]){"7,1-4"}),
                          err),
                     0);
    assert_int_equal(o.ballot.n, 2);
    assert_int_equal(o.ballot.r[0].lo, 1);
    assert_int_equal(o.ballot.r[1].hi, 7);
    producer_opts_free(&o);

    /* A serve-only option is unknown to the CLI. */
    assert_int_equal(load(&o, PRODUCER_SEND, 3,
                          ARGV((char[]){"send"}, (char[]){"--listen"}, (char[]){"h:1"}), err),
                     -1);
    assert_string_equal(err, "unknown option --listen (try --help)");
    producer_opts_free(&o);
}

static void test_what_the_table_cannot_check(void **state)
{
    static const struct {
        enum producer_cmd cmd;
        int argc;
        const char *argv[6];
        const char *err;
    } rows[] = {
        {PRODUCER_SERVE, 2, {"serve", "x"}, "unexpected argument \"x\""},
        {PRODUCER_SEND,
         3,
         {"send", "-u", "1"},
         "--user and --candidate are required, no positional arguments (try --help)"},
        {PRODUCER_REPLAY, 1, {"replay"}, "expected one FILE (or - for stdin)"},
        {PRODUCER_REPLAY, 3, {"replay", "a", "b"}, "expected one FILE (or - for stdin)"},
        {PRODUCER_LOAD,
         4,
         {"load", "-N", "3", "x"},
         "--users is required, no positional arguments (try --help)"},
        {PRODUCER_SERVE,
         3,
         {"serve", "--candidates", "4-1"},
         "candidate list \"4-1\": not like 1-4,7 (values or ranges of values in "
         "1..9223372036854775807, comma-separated)"},
        {PRODUCER_LOAD,
         5,
         {"load", "-N", "3", "--log-level", "loud"},
         "option log-level: unknown log level \"loud\" (error, warn, info or debug)"},
        {PRODUCER_SEND,
         5,
         {"send", "-u", "1", "--type", "nope"},
         "--type nope: no such event type (the types: vote)"},
        {PRODUCER_LOAD,
         5,
         {"load", "-N", "3", "--type", "poll"},
         "--type poll: no such event type "
         "(the types: vote)"},
        {PRODUCER_SEND,
         3,
         {"send", "-f", "user_id=1"},
         NULL}, /* accepted: send checks the fields against the type */
    };
    struct producer_opts o;
    char err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        err[0] = '\0';
        assert_int_equal(load(&o, rows[i].cmd, rows[i].argc, (char **)rows[i].argv, err),
                         rows[i].err ? -1 : 0);
        if (rows[i].err)
            assert_string_equal(err, rows[i].err);
        producer_opts_free(&o);
    }
}

/* --type: vote by default, the set loaded (the vote only without --types), in every command. */
static void test_types_and_type(void **state)
{
    static const enum producer_cmd cmds[] = {PRODUCER_SERVE, PRODUCER_SEND, PRODUCER_REPLAY,
                                             PRODUCER_LOAD};
    static const char *const own[][5] = {
        {"serve"}, {"send", "-u", "1", "-c", "2"}, {"replay", "-"}, {"load", "-N", "3"}};
    static const int argcs[] = {1, 5, 2, 3};
    struct producer_opts o;
    char err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        assert_int_equal(load(&o, cmds[i], argcs[i], (char **)own[i], err), 0);
        assert_non_null(o.types);
        assert_int_equal(evtypes_count(o.types), 1);
        assert_ptr_equal(o.type, evtype_vote());
        producer_opts_free(&o);
    }
    /* A file that cannot be loaded: the command does not start, the error names it. */
    setenv("TADAK_TYPES", "/nonexistent/types.json", 1);
    assert_int_equal(load(&o, PRODUCER_SERVE, 1, (char **)own[0], err), -1);
    assert_non_null(strstr(err, "/nonexistent/types.json"));
    producer_opts_free(&o);
    unsetenv("TADAK_TYPES");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_shared_rows_in_every_command, setup),
        cmocka_unit_test_setup(test_each_command_keeps_its_defaults, setup),
        cmocka_unit_test_setup(test_what_the_table_cannot_check, setup),
        cmocka_unit_test_setup(test_types_and_type, setup),
    };
    return cmocka_run_group_tests_name("cli_options", tests, NULL, NULL);
}
