/*
 * config.h - one table per program describes every setting: its flag, its
 * environment variable, its type, its default and its help text. Defaults,
 * the environment, the command line, range checks and --help all come from
 * that one table, so they cannot drift apart (the idea of Redis' config.c
 * and pgbouncer's CF_ABS tables).
 *
 * Precedence: default < environment < command line. The rows both programs
 * have (Kafka, Redis, PostgreSQL, log level, key prefix) are in sharedopts.h.
 *
 *   static const struct config_opt opts[] = {
 *       {.name = "group", .env = "TADAK_GROUP", .type = CONFIG_STR, .def = "tadak",
 *        .offset = offsetof(struct cfg, group), .help = "Kafka consumer group"},
 *       CONFIG_END};
 *   int rc = config_load(opts, &cfg, argc, argv, pos, &npos, err, sizeof err);
 *   rc: 0 ok, 1 --help was asked for, -1 error (reason in err).
 */
#ifndef TADAK_CONFIG_H
#define TADAK_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum config_type {
    CONFIG_STR,       /* const char *: points into argv/environ/default, not owned */
    CONFIG_INT,       /* int64_t, checked against [min, max] */
    CONFIG_BOOL,      /* int: a bare flag sets 1; env takes 1/0/true/false/yes/no */
    CONFIG_KV,        /* struct config_kv: repeatable "key=value" (e.g. -X) */
    CONFIG_LOG_LEVEL, /* enum log_level: error, warn, info or debug (log_parse_level);
                         config_load() only parses it, the caller calls log_set_level() */
    CONFIG_LIST,      /* struct config_list: a repeatable flag; its environment variable
                         is comma separated, the flags (if any) replace it; no default */
    /* Strings like CONFIG_STR whose --help placeholder says what they hold: */
    CONFIG_URL,  /* URL */
    CONFIG_FILE, /* FILE */
    CONFIG_ADDR, /* HOST:PORT */
    CONFIG_NAME, /* NAME */
};

/* Repeatable key=value settings; owned, released by config_free(). */
struct config_kv {
    size_t n;
    char **keys;
    char **vals;
};

/* A repeatable setting's items, owned, released by config_free(). */
struct config_list {
    size_t n;
    char **items;
    int from_flags; /* config_load()'s: a flag has replaced the environment's items */
};

struct config_opt {
    const char *name; /* long flag without the dashes */
    char short_name;  /* single-letter alias or 0 */
    const char *env;  /* environment variable or NULL */
    enum config_type type;
    const char *def;  /* default as text, NULL for none */
    int64_t min, max; /* CONFIG_INT range */
    size_t offset;    /* where the value lives in the caller's struct */
    const char *help;
};

/* The row that ends a table: no name. */
#define CONFIG_END                                                                                 \
    {                                                                                              \
        .name = NULL                                                                               \
    }

int config_load(const struct config_opt *table, void *dst, int argc, char **argv, char **pos,
                int *npos, char *errstr, size_t errsize);
void config_usage(FILE *out, const struct config_opt *table, const char *synopsis);
void config_free(const struct config_opt *table, void *dst);

/* Split "host:port" (port required); host copied into host[hostsize]. */
int config_split_hostport(const char *s, char *host, size_t hostsize, int *port);

/*
 * A listen address, HOST:PORT, as an IPv4 socket address: "localhost" is
 * 127.0.0.1, an empty host every interface. what names it in the error
 * ("listen", "metrics").
 */
struct sockaddr_in;
int config_parse_listen(const char *hostport, const char *what, struct sockaddr_in *sa,
                        char *errstr, size_t errsize);

#endif
