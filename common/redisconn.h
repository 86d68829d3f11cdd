/*
 * redisconn.h - one Redis connection and the policy around it: the URL,
 * TLS, connect and command timeouts, AUTH and SELECT, and when to try again.
 *
 * Every Redis user in tadak (the consumers' gate, the producer's status
 * reads and its Idempotency-Key claims) holds its own redisconn, so an
 * outage looks the same everywhere: the first failure is logged (with what
 * the connection is for), again every REDISCONN_LOG_EVERY_MS while it lasts
 * (with how long), calls fail fast meanwhile, a reconnect
 * is tried at most once per REDISCONN_RETRY_MS, and the first good connect
 * after it logs "redis reachable again". hiredis' blocking API is used, so
 * a handle belongs to one thread at a time (the caller locks if it shares).
 *
 * A user with its own steps after AUTH and SELECT (the gate loads scripts
 * and checks its namespace) passes them as on_connect: they run on every
 * new connection before it is handed out; -1 drops it as an outage (why),
 * 1 drops it quietly (the caller logged its own reason).
 *
 *   rc = redisconn_new(url, "deduping in PostgreSQL only", connect_ms, command_ms,
 *                      err, sizeof err);
 *   redisconn_on_connect(rc, fn, arg);    optional
 *   c = redisconn_get(rc);           a connected context, or NULL while down
 *   redisconn_drop(rc, why);         after an I/O error: close, log once, back off
 *   redisconn_command(rc, errstr, errsize, fmt, ...)   one command: its reply, or
 *                                    NULL (down, I/O error: dropped; error reply)
 *   redisconn_lost_master(rc, reply) READONLY on a Sentinel URL: drop and re-resolve
 *   redisconn_free(rc);
 *
 * The password never appears in a log line or an error text.
 */
#ifndef TADAK_REDISCONN_H
#define TADAK_REDISCONN_H

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stddef.h>

#define REDISCONN_RETRY_MS     1000
#define REDISCONN_LOG_EVERY_MS 30000 /* an outage's line again, while it lasts */

struct redisconn;

/*
 * url: redis://[[user]:password@]host[:port][/db], or rediss:// for TLS
 * with optional ?tls_ca=FILE (default: the system's CA store),
 * tls_cert=FILE&tls_key=FILE (a client certificate), tls_server_name=NAME
 * (SNI and the name the certificate must carry; default the host). The
 * certificate is always verified; there is no plaintext fallback. Or
 * redis+sentinel://[[user]:password@]h1[:p1][,h2[:p2]...]/MASTER[/db]: every
 * connect asks the Sentinels in turn for MASTER's address and checks with
 * ROLE that the node is the master (user and password are the node's; the
 * Sentinels are asked without); rediss+sentinel:// speaks TLS to both, each
 * certificate checked against the address connected to (or
 * tls_server_name). purpose: what an outage means for this
 * connection, logged with it ("deduping in PostgreSQL only").
 */
struct redisconn *redisconn_new(const char *url, const char *purpose, int connect_ms,
                                int command_ms, char *errstr, size_t errsize);
void redisconn_free(struct redisconn *rc);

typedef int (*redisconn_setup_fn)(redisContext *c, void *arg, char *why, size_t whysize);
void redisconn_on_connect(struct redisconn *rc, redisconn_setup_fn fn, void *arg);

redisContext *redisconn_get(struct redisconn *rc);
void redisconn_drop(struct redisconn *rc, const char *why);
int redisconn_is_down(const struct redisconn *rc);
const char *redisconn_host(const struct redisconn *rc);
int redisconn_port(const struct redisconn *rc);

redisReply *redisconn_command(struct redisconn *rc, char *errstr, size_t errsize, const char *fmt,
                              ...);
redisReply *redisconn_vcommand(struct redisconn *rc, char *errstr, size_t errsize, const char *fmt,
                               va_list ap);

/*
 * 1 when reply r says this redis+sentinel:// connection no longer reaches
 * the master (READONLY: it was demoted): the caller drops the connection,
 * and the next connect asks the Sentinels again. redisconn_command does so
 * itself; a caller reading replies of its own (pipelines) asks here.
 */
int redisconn_lost_master(const struct redisconn *rc, const redisReply *r);

/*
 * The TLS peer was refused (its certificate does not verify): why, naming
 * the host and never the password; NULL otherwise. A configuration error,
 * not an outage: a caller starting up reports it and stops.
 */
const char *redisconn_refused(const struct redisconn *rc);

#define REDISCONN_SENTINELS_MAX 8
#define REDISCONN_SENTINEL_PORT 26379 /* a Sentinel's port when the URL names none */

struct redisconn_addr {
    char host[256];
    int port;
};

/*
 * A parsed URL: redis[s]://[[user]:password@]host[:port][/db][?tls_...], or
 * redis+sentinel://[[user]:password@]h1[:p1][,h2[:p2]...]/MASTER[/db]. For
 * the latter, host and port are the master's address as last resolved (the
 * master's name and port 0 before that).
 */
struct redisconn_url {
    char host[256];
    int port, db;
    char user[128], password[256];
    int tls; /* rediss:// */
    char tls_ca[512], tls_cert[512], tls_key[512], tls_server_name[256];
    struct redisconn_addr sentinels[REDISCONN_SENTINELS_MAX]; /* asked in this order */
    int nsentinels;                                           /* 0: not a Sentinel URL */
    char master[128];                                         /* the name Sentinels know */
};

/* Exposed for the tests. */
int redisconn_parse_url(const char *url, struct redisconn_url *u, char *errstr, size_t errsize);

#endif
