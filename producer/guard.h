/*
 * guard.h - the whole-request deadline: a connection must deliver a whole
 * request (headers and body) within the timeout of becoming ready for one,
 * or it is shut down.
 *
 * libmicrohttpd's own timeout is an idle timeout: a client trickling a byte
 * a second keeps a connection (and a slot of the connection limit) forever.
 * The guard keeps the connections that owe a request in one deadline list
 * (deadline.h, the same kind the suspended requests' lanes are, serviced by
 * the same timer in http.c) and shuts the late ones down with shutdown(2); libmicrohttpd then reads
 * end of file and closes them in its own time. A connection whose request has arrived is off the
 * list while it is served (a vote waiting for Kafka has the delivery timeout); once answered it
 * owes the next one.
 *
 * guard_close() must come before the descriptor is closed (libmicrohttpd's
 * MHD_CONNECTION_NOTIFY_CLOSED does): a shutdown is only ever made, under the
 * guard's lock, on a descriptor still listed, so never on a reused number.
 * Times are monotonic milliseconds passed in, so tests need no clock.
 *
 *   g = guard_new(timeout_ms);
 *   c = guard_open(g, fd, now);     accepted: the first request is due
 *   guard_busy(g, c);               it arrived whole: no deadline while served
 *   guard_idle(g, c, now);          answered: the next one is due
 *   guard_close(g, c);              libmicrohttpd is done with it
 *   n = guard_reap(g, now, &next);  shut down the late; next deadline (INT64_MAX: none)
 *   guard_count(g);  guard_free(g);
 */
#ifndef TADAK_GUARD_H
#define TADAK_GUARD_H

#include <stdint.h>

struct guard;
struct guard_conn;

struct guard *guard_new(int64_t timeout_ms);
void guard_free(struct guard *g);
struct guard_conn *guard_open(struct guard *g, int fd, int64_t now_ms);
void guard_busy(struct guard *g, struct guard_conn *c);
void guard_idle(struct guard *g, struct guard_conn *c, int64_t now_ms);
void guard_close(struct guard *g, struct guard_conn *c);
int guard_reap(struct guard *g, int64_t now_ms, int64_t *next_ms);
int64_t guard_count(struct guard *g);

#endif
