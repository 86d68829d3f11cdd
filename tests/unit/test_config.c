/*
 * test_config.c - one table gives defaults, env, flags, ranges and --help.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "config.h"
#include "log.h"

struct cfg {
    const char *topic;
    int64_t batch;
    int from_beginning;
    struct config_kv extra;
};

static const struct config_opt opts[] = {
    {.name = "topic",
     .env = "TEST_TOPIC",
     .type = CONFIG_STR,
     .def = "votes",
     .offset = offsetof(struct cfg, topic),
     .help = "Topic"},
    {.name = "batch-size",
     .env = "TEST_BATCH",
     .type = CONFIG_INT,
     .def = "500",
     .min = 1,
     .max = 100000,
     .offset = offsetof(struct cfg, batch),
     .help = "Batch"},
    {.name = "from-beginning",
     .type = CONFIG_BOOL,
     .def = "0",
     .offset = offsetof(struct cfg, from_beginning),
     .help = "Start at the beginning"},
    {.name = "set",
     .short_name = 'X',
     .type = CONFIG_KV,
     .offset = offsetof(struct cfg, extra),
     .help = "librdkafka setting"},
    CONFIG_END,
};

static int load(struct cfg *c, int argc, char **argv, char *err, size_t n)
{
    char *pos[16];
    int npos;
    return config_load(opts, c, argc, argv, pos, &npos, err, n);
}

static void test_defaults_env_flags(void **state)
{
    struct cfg c;
    char err[256];
    char *argv[] = {(char[]){"--batch-size=20"}, (char[]){"-X"}, (char[]){"acks=all"},
                    (char[]){"-Xlinger.ms=5"}, (char[]){"--from-beginning"}};

    (void)state;
    unsetenv("TEST_TOPIC");
    unsetenv("TEST_BATCH");
    assert_int_equal(load(&c, 0, NULL, err, sizeof(err)), 0);
    assert_string_equal(c.topic, "votes");
    assert_int_equal(c.batch, 500);
    assert_int_equal(c.from_beginning, 0);
    config_free(opts, &c);

    setenv("TEST_TOPIC", "from-env", 1);
    setenv("TEST_BATCH", "7", 1);
    assert_int_equal(load(&c, 5, argv, err, sizeof(err)), 0);
    assert_string_equal(c.topic, "from-env");
    assert_int_equal(c.batch, 20); /* the flag beats the environment */
    assert_int_equal(c.from_beginning, 1);
    assert_int_equal(c.extra.n, 2);
    assert_string_equal(c.extra.keys[1], "linger.ms");
    assert_string_equal(c.extra.vals[1], "5");
    config_free(opts, &c);
    unsetenv("TEST_TOPIC");
    unsetenv("TEST_BATCH");
}

/* A mistyped long option names the one meant; a far-off one only says unknown. */
static void test_mistyped_option_suggests_the_meant_one(void **state)
{
    static const struct {
        const char *typed, *want;
    } rows[] = {
        {"--batch-sise", "unknown option --batch-sise (did you mean --batch-size? try --help)"},
        {"--topci=x", "unknown option --topci=x (did you mean --topic? try --help)"},
        {"--from-begining", "unknown option --from-begining (did you mean --from-beginning? try "
                            "--help)"},
        {"--batch", "unknown option --batch (did you mean --batch-size? try --help)"},
        {"--tpc", "unknown option --tpc (try --help)"},
        {"--listen", "unknown option --listen (try --help)"},
    };
    struct cfg c;
    char err[256];

    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char *argv[] = {(char *)rows[i].typed, (char[]){"v"}};
        assert_int_equal(load(&c, 2, argv, err, sizeof(err)), -1);
        assert_string_equal(err, rows[i].want);
        config_free(opts, &c);
    }
}

static void test_errors_are_explained(void **state)
{
    struct cfg c;
    char err[256];
    char *bad_int[] = {(char[]){"--batch-size"}, (char[]){"12x"}};
    char *range[] = {(char[]){"--batch-size"}, (char[]){"0"}};
    char *unknown[] = {(char[]){"--nope"}};
    char *missing[] = {(char[]){"--topic"}};
    char *bad_kv[] = {(char[]){"-X"}, (char[]){"novalue"}};
    char *help[] = {(char[]){"--help"}};

    (void)state;
    assert_int_equal(load(&c, 2, bad_int, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not an integer"));
    assert_int_equal(load(&c, 2, range, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "out of range"));
    assert_int_equal(load(&c, 1, unknown, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unknown option --nope"));
    assert_int_equal(load(&c, 1, missing, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "needs a value"));
    assert_int_equal(load(&c, 2, bad_kv, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "key=value"));
    config_free(opts, &c);
    assert_int_equal(load(&c, 1, help, err, sizeof(err)), 1);
    config_free(opts, &c);
}

static void test_usage_lists_every_option(void **state)
{
    char buf[4096] = {0};
    FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");

    (void)state;
    config_usage(f, opts, "usage: test");
    fclose(f);
    for (const struct config_opt *o = opts; o->name; o++)
        assert_non_null(strstr(buf, o->name));
    assert_non_null(strstr(buf, "[env TEST_BATCH]"));
    assert_non_null(strstr(buf, "(default 500)"));
}

struct lvl_cfg {
    enum log_level level;
};

static const struct config_opt lvl_opts[] = {
    {.name = "log-level",
     .env = "TEST_LOG_LEVEL",
     .type = CONFIG_LOG_LEVEL,
     .def = "info",
     .offset = offsetof(struct lvl_cfg, level),
     .help = "error, warn, info or debug"},
    CONFIG_END,
};

static int load_level(struct lvl_cfg *c, int argc, char **argv, char *err, size_t n)
{
    char *pos[4];
    int npos;

    memset(c, 0xff, sizeof(*c)); /* the default must be set, not left over */
    return config_load(lvl_opts, c, argc, argv, pos, &npos, err, n);
}

static void test_log_level_type(void **state)
{
    struct lvl_cfg c;
    char err[256] = "";
    char *debug[] = {(char[]){"--log-level"}, (char[]){"DEBUG"}};
    char *bad[] = {(char[]){"--log-level=loud"}};
    char buf[1024] = {0};
    FILE *f;

    (void)state;
    unsetenv("TEST_LOG_LEVEL");
    assert_int_equal(load_level(&c, 0, NULL, err, sizeof(err)), 0);
    assert_int_equal(c.level, LOG_INFO);
    setenv("TEST_LOG_LEVEL", "warn", 1);
    assert_int_equal(load_level(&c, 0, NULL, err, sizeof(err)), 0);
    assert_int_equal(c.level, LOG_WARN);
    assert_int_equal(load_level(&c, 2, debug, err, sizeof(err)), 0);
    assert_int_equal(c.level, LOG_DEBUG); /* the flag beats the environment, any case */
    setenv("TEST_LOG_LEVEL", "error", 1);
    assert_int_equal(load_level(&c, 0, NULL, err, sizeof(err)), 0);
    assert_int_equal(c.level, LOG_ERROR);
    assert_int_equal(load_level(&c, 1, bad, err, sizeof(err)), -1);
    assert_string_equal(
        err, "option log-level: unknown log level \"loud\" (error, warn, info or debug)");
    setenv("TEST_LOG_LEVEL", "chatty", 1);
    assert_int_equal(load_level(&c, 0, NULL, err, sizeof(err)), -1);
    assert_string_equal(
        err, "TEST_LOG_LEVEL log-level: unknown log level \"chatty\" (error, warn, info or debug)");
    unsetenv("TEST_LOG_LEVEL");

    f = fmemopen(buf, sizeof(buf) - 1, "w");
    config_usage(f, lvl_opts, "usage: test");
    fclose(f);
    assert_non_null(strstr(buf, "    --log-level TEXT "));
    assert_non_null(strstr(buf, "[env TEST_LOG_LEVEL] (default info)"));
}

/* A repeatable flag: the environment's comma-separated items, replaced by the flags. */
static void test_list_type(void **state)
{
    static const struct config_opt lopts[] = {{.name = "origin",
                                               .env = "TEST_ORIGINS",
                                               .type = CONFIG_LIST,
                                               .offset = 0,
                                               .help = "Origins"},
                                              CONFIG_END};
    struct config_list l;
    char err[256], *pos[4];
    int npos;
    char *two[] = {(char[]){"--origin"}, (char[]){"https://a.example"},
                   (char[]){"--origin=https://b.example, x"}};
    char *empty[] = {(char[]){"--origin="}};

    (void)state;
    setenv("TEST_ORIGINS", " https://env.example ,https://env2.example", 1);
    assert_int_equal(config_load(lopts, &l, 0, NULL, pos, &npos, err, sizeof(err)), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0], "https://env.example");
    assert_string_equal(l.items[1], "https://env2.example");
    config_free(lopts, &l);
    assert_int_equal(l.n, 0);

    /* Flags replace the environment; a flag's value is one item, commas and all. */
    assert_int_equal(config_load(lopts, &l, 3, two, pos, &npos, err, sizeof(err)), 0);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.items[0], "https://a.example");
    assert_string_equal(l.items[1], "https://b.example, x");
    config_free(lopts, &l);

    setenv("TEST_ORIGINS", "https://a.example,,https://b.example", 1);
    assert_int_equal(config_load(lopts, &l, 0, NULL, pos, &npos, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "TEST_ORIGINS origin: an empty item"));
    config_free(lopts, &l);
    unsetenv("TEST_ORIGINS");
    assert_int_equal(config_load(lopts, &l, 1, empty, pos, &npos, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "empty item"));
    config_free(lopts, &l);
}

static void test_hostport(void **state)
{
    char host[64];
    int port;

    (void)state;
    assert_int_equal(config_split_hostport("127.0.0.1:8000", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8000);
    assert_int_equal(config_split_hostport("nohost", host, sizeof(host), &port), -1);
    assert_int_equal(config_split_hostport("h:99999", host, sizeof(host), &port), -1);
    {
        struct sockaddr_in sa;
        char err[128];
        assert_int_equal(config_parse_listen("localhost:8000", "listen", &sa, err, sizeof(err)), 0);
        assert_int_equal(ntohl(sa.sin_addr.s_addr), 0x7f000001);
        assert_int_equal(ntohs(sa.sin_port), 8000);
        assert_int_equal(config_parse_listen(":9100", "metrics", &sa, err, sizeof(err)), 0);
        assert_int_equal(sa.sin_addr.s_addr, htonl(INADDR_ANY));
        assert_int_equal(config_parse_listen("db.internal:1", "metrics", &sa, err, sizeof(err)),
                         -1);
        assert_string_equal(err, "metrics host \"db.internal\" is not an IPv4 address");
        assert_int_equal(config_parse_listen("8000", "listen", &sa, err, sizeof(err)), -1);
        assert_string_equal(err, "listen address \"8000\" is not HOST:PORT");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_env_flags),
        cmocka_unit_test(test_errors_are_explained),
        cmocka_unit_test(test_mistyped_option_suggests_the_meant_one),
        cmocka_unit_test(test_usage_lists_every_option),
        cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_list_type),
        cmocka_unit_test(test_log_level_type),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
