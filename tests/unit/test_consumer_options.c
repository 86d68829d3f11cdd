/*
 * test_consumer_options.c - tadak-consumer's option table (consumer/options.c):
 * the rows it shares with tadak-producer (common/sharedopts.h) keep the
 * consumer's defaults, environment variables and flags, and gain the
 * producer's short forms -b and -t. --type picks one of the event types
 * (the vote, or --types FILE's) or is a usage error naming the known ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

/* By path: the producer's options.h has the same name and comes first on the include path. */
#include "../../consumer/options.h"

#define ARGV(...) ((char *[]){__VA_ARGS__})

static const char *const env_names[] = {
    "KAFKA_BOOTSTRAP_SERVERS", "TADAK_TOPIC",     "REDIS_URL",   "DATABASE_URL", "TADAK_KEY_PREFIX",
    "TADAK_LOG_LEVEL",         "TADAK_DLQ_TOPIC", "TADAK_TYPES", "TADAK_TYPE"};

static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++)
        unsetenv(env_names[i]);
    return 0;
}

static void test_shared_rows_keep_the_consumer_defaults(void **state)
{
    struct consumer_opts o;
    char err[256];

    (void)state;
    assert_int_equal(options_load(&o, 1, ARGV((char[]){"tadak-consumer"}), err, sizeof(err)), 0);
    assert_string_equal(o.brokers, "127.0.0.1:9092");
    assert_string_equal(o.topic, "votes");
    assert_string_equal(o.dlq_topic, "votes.dlq");
    assert_string_equal(o.redis_url, "redis://127.0.0.1:6379/0");
    assert_string_equal(o.database_url, "postgresql://localhost/tadak");
    assert_string_equal(o.key_prefix, "");
    assert_int_equal(o.log_level, LOG_INFO);
    assert_int_equal(o.extra.n, 0);
    options_free(&o);
}

static void test_shared_rows_from_the_environment(void **state)
{
    struct consumer_opts o;
    char err[256];

    (void)state;
    setenv("KAFKA_BOOTSTRAP_SERVERS", "k:1", 1);
    setenv("TADAK_TOPIC", "t1", 1);
    setenv("REDIS_URL", "redis://r:1/2", 1);
    setenv("DATABASE_URL", "postgresql://p/db", 1);
    setenv("TADAK_KEY_PREFIX", "pre:", 1);
    setenv("TADAK_LOG_LEVEL", "warn", 1);
    assert_int_equal(options_load(&o, 1, ARGV((char[]){"tadak-consumer"}), err, sizeof(err)), 0);
    assert_string_equal(o.brokers, "k:1");
    assert_string_equal(o.topic, "t1");
    assert_string_equal(o.dlq_topic, "t1.dlq");
    assert_string_equal(o.redis_url, "redis://r:1/2");
    assert_string_equal(o.database_url, "postgresql://p/db");
    assert_string_equal(o.key_prefix, "pre:");
    assert_int_equal(o.log_level, LOG_WARN);
    options_free(&o);
}

static void test_shared_rows_from_flags(void **state)
{
    struct consumer_opts o;
    char err[256];

    (void)state;
    assert_int_equal(
        options_load(&o, 12,
                     ARGV((char[]){"tadak-consumer"}, (char[]){"-b"}, (char[]){"k:2"},
                          (char[]){"-t"}, (char[]){"t2"}, (char[]){"-Xfetch.wait.max.ms=5"},
                          (char[]){"--redis-url=redis://r:3/0"}, (char[]){"--database-url"},
                          (char[]){"postgresql://q/db"}, (char[]){"--key-prefix=k:"},
                          (char[]){"--log-level"}, (char[]){"error"}),
                     err, sizeof(err)),
        0);
    assert_string_equal(o.brokers, "k:2");
    assert_string_equal(o.topic, "t2");
    assert_int_equal(o.extra.n, 1);
    assert_string_equal(o.extra.keys[0], "fetch.wait.max.ms");
    assert_string_equal(o.extra.vals[0], "5");
    assert_string_equal(o.redis_url, "redis://r:3/0");
    assert_string_equal(o.database_url, "postgresql://q/db");
    assert_string_equal(o.key_prefix, "k:");
    assert_int_equal(o.log_level, LOG_ERROR);
    options_free(&o);

    /* The long forms, as scripts have always written them. */
    assert_int_equal(options_load(&o, 5,
                                  ARGV((char[]){"tadak-consumer"}, (char[]){"--brokers"},
                                       (char[]){"k:3"}, (char[]){"--topic=t3"}, (char[]){"topics"}),
                                  err, sizeof(err)),
                     0);
    assert_string_equal(o.brokers, "k:3");
    assert_string_equal(o.topic, "t3");
    assert_int_equal(o.topics_only, 1);
    options_free(&o);
}

/* Without --types the vote is the one type: its topic, table and the defaults as ever. */
static void test_vote_is_the_default_type(void **state)
{
    struct consumer_opts o;
    char err[256];

    (void)state;
    assert_int_equal(options_load(&o, 1, ARGV((char[]){"tadak-consumer"}), err, sizeof(err)), 0);
    assert_ptr_equal(o.type, evtype_vote());
    assert_null(o.types_path);
    assert_int_equal(evtypes_count(o.set), 1);
    options_free(&o);
    assert_int_equal(
        options_load(&o, 3, ARGV((char[]){"tadak-consumer"}, (char[]){"--type"}, (char[]){"vote"}),
                     err, sizeof(err)),
        0);
    assert_ptr_equal(o.type, evtype_vote());
    assert_string_equal(o.topic, "votes");
    assert_string_equal(o.dlq_topic, "votes.dlq");
    options_free(&o);
}

/* An unknown --type (flag or TADAK_TYPE) stops at once, naming the types there are. */
static void test_unknown_type_names_the_known(void **state)
{
    struct consumer_opts o;
    char err[256];

    (void)state;
    assert_int_equal(
        options_load(&o, 3,
                     ARGV((char[]){"tadak-consumer"}, (char[]){"--type"}, (char[]){"poll_answer"}),
                     err, sizeof(err)),
        -1);
    assert_non_null(strstr(err, "poll_answer"));
    assert_non_null(strstr(err, "known: vote"));
    assert_non_null(strstr(err, "--types"));
    options_free(&o);
    setenv("TADAK_TYPE", "like", 1);
    assert_int_equal(options_load(&o, 1, ARGV((char[]){"tadak-consumer"}), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "--type like: no such type"));
    options_free(&o);
}

/* A types file that cannot be read is a usage error with the loader's message. */
static void test_bad_types_file_is_refused(void **state)
{
    struct consumer_opts o;
    char err[256];

    (void)state;
    setenv("TADAK_TYPES", "/nonexistent/types.json", 1);
    assert_int_equal(options_load(&o, 1, ARGV((char[]){"tadak-consumer"}), err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent/types.json"));
    assert_null(o.type);
    options_free(&o);
}

/* A types file of one type with a topic of its own, written for the test; its path. */
static const char *write_types(void)
{
    static char path[] = "/tmp/tadak-test-types-XXXXXX";
    static const char doc[] =
        "{\"types\": {\"poll_answer\": {\"fields\": {\"poll_id\": \"id\", \"user_id\": \"id\"},"
        " \"key\": [\"poll_id\", \"user_id\"], \"topic\": \"answers\"}}}";
    int fd = mkstemp(path);
    FILE *f;

    assert_true(fd >= 0);
    assert_non_null(f = fdopen(fd, "w"));
    assert_int_equal(fwrite(doc, 1, sizeof(doc) - 1, f), sizeof(doc) - 1);
    fclose(f);
    return path;
}

/*
 * --type picks a type of the file: the topic is the type's unless --topic
 * or TADAK_TOPIC names one, even the vote's "votes" (not taken for "unset").
 */
static void test_topic_defaults_to_the_types(void **state)
{
    const char *path = write_types();
    char *argv[] = {(char[]){"tadak-consumer"}, (char[]){"--types"},     (char *)path,
                    (char[]){"--type"},         (char[]){"poll_answer"}, (char[]){"--topic"},
                    (char[]){"votes"}};
    struct consumer_opts o;
    char err[256];

    (void)state;
    assert_int_equal(options_load(&o, 5, argv, err, sizeof(err)), 0);
    assert_string_equal(o.type->name, "poll_answer");
    assert_string_equal(o.type->table, "poll_answers");
    assert_string_equal(o.topic, "answers");
    assert_string_equal(o.dlq_topic, "answers.dlq");
    assert_string_equal(o.group, "tadak-poll_answer"); /* a group per type */
    assert_int_equal(evtypes_count(o.set), 2);
    options_free(&o);
    assert_int_equal(options_load(&o, 7, argv, err, sizeof(err)), 0);
    assert_string_equal(o.topic, "votes");
    assert_string_equal(o.dlq_topic, "votes.dlq");
    options_free(&o);
    setenv("TADAK_TOPIC", "mine", 1);
    setenv("TADAK_TYPES", path, 1);
    setenv("TADAK_TYPE", "poll_answer", 1);
    assert_int_equal(options_load(&o, 1, argv, err, sizeof(err)), 0);
    assert_string_equal(o.type->name, "poll_answer");
    assert_string_equal(o.topic, "mine");
    options_free(&o);
    setenv("TADAK_GROUP", "tadak", 1); /* given, even as the default's text: kept */
    assert_int_equal(options_load(&o, 1, argv, err, sizeof(err)), 0);
    assert_string_equal(o.group, "tadak");
    options_free(&o);
    unsetenv("TADAK_GROUP");
    /* The file's types are named when --type is none of them. */
    setenv("TADAK_TYPE", "like", 1);
    assert_int_equal(options_load(&o, 1, argv, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "known: vote, poll_answer"));
    options_free(&o);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_shared_rows_keep_the_consumer_defaults, clear_env,
                                        clear_env),
        cmocka_unit_test_setup_teardown(test_shared_rows_from_the_environment, clear_env,
                                        clear_env),
        cmocka_unit_test_setup_teardown(test_shared_rows_from_flags, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_vote_is_the_default_type, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_unknown_type_names_the_known, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_bad_types_file_is_refused, clear_env, clear_env),
        cmocka_unit_test_setup_teardown(test_topic_defaults_to_the_types, clear_env, clear_env),
    };
    return cmocka_run_group_tests_name("consumer_options", tests, NULL, NULL);
}
