/*
 * http.h - the HTTP server core: libmicrohttpd, the sockets, each request's
 * life, and nothing of what any route means. What a request gets as its
 * answer is decided by the handlers it is started with (routes.h's), as
 * libmicrohttpd takes an access handler and nginx its phase handlers.
 *
 * The core owns: the listening socket and its thread (acceptor.h), two MHD
 * worker threads (poll, see daemon_start), the whole-request deadline (guard.h: a request
 * must arrive whole within opts.request_timeout_ms, so slow clients cannot
 * hold connections), the per-address cap (conncap.h, opts.per_ip_limit), the
 * body (kept as it arrives up to opts.max_body, never its declared size up
 * front), suspending a connection and resuming it, a suspended request's
 * deadline (deadline.h), one timer thread for both kinds of deadline, the
 * server lock, and the drain. No thread of it ever blocks on a backend.
 *
 * The handlers, in the order a request meets them:
 *
 *   begin(arg, hr, req, conn, method, url, &body)   headers arrived; req is
 *            handlers.req_size zeroed bytes the request carries for them.
 *            Either answers now (core->send) and sets body = HTTP_ANSWERED,
 *            or asks for the body: HTTP_BODY_KEEP (up to max_body, more is
 *            only counted: overflow) or HTTP_BODY_DISCARD.
 *   serve(req, body, len, overflow)   the whole request arrived in time:
 *            answer it now, or core->suspend() it (body stays valid)
 *   resume(req, how)   a suspended request's connection was resumed:
 *            HTTP_WOKEN (its completion called core->wake), HTTP_EXPIRED
 *            (the timeout given to core->suspend passed) or HTTP_STOPPED
 *            (the drain answers it); answer it now
 *   headers(req, status, resp)   on every answer, before it is queued
 *   done(req)          the request is gone: free what req points to
 *   stop(arg)          from http_stop(): complete every request suspended
 *                      without a timeout, now (through core->wake)
 *
 * A suspended request is reference-counted (its connection + its pending
 * completion) under the server lock, so a completion that comes after the
 * request was answered (expired, stopped) is harmless: core->wake says so.
 *
 * Shutdown never leaves a connection suspended for MHD_stop_daemon() (which
 * aborts the process if it finds one): once the drain begins nothing is
 * suspended any more (core->suspend returns 1; core->draining() says so to
 * begin), every answer says Connection: close, and http_stop() resumes what
 * still waits (HTTP_STOPPED) and lets every resume happen first.
 *
 *   s = http_start(&opts, &handlers, metrics, err, sizeof err);
 *   http_quiesce(s);        begin the drain: stop accepting, suspend nothing new
 *   http_active(s);         requests not yet answered and sent
 *   http_stop(s);           answer the rest, close everything
 *   http_free(s);           after whatever calls core->wake() is gone
 *
 * What the handlers call: send, suspend, wake and draining, through a
 * struct http_core (http_core is the server's; a unit test gives the
 * handlers a fake one), which the routes are given when they are made.
 */
#ifndef TADAK_HTTP_H
#define TADAK_HTTP_H

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

struct http_server;
struct http_req; /* one request, the core's side of it */
struct metrics;
struct sockaddr;

enum http_body { HTTP_ANSWERED, HTTP_BODY_KEEP, HTTP_BODY_DISCARD };
enum http_wake { HTTP_WOKEN, HTTP_EXPIRED, HTTP_STOPPED };

struct http_handlers {
    void *arg;
    size_t req_size; /* the handlers' part of each request */
    enum MHD_Result (*begin)(void *arg, struct http_req *hr, void *req, struct MHD_Connection *conn,
                             const char *method, const char *url, enum http_body *body);
    enum MHD_Result (*serve)(void *req, const char *body, size_t len, int overflow);
    enum MHD_Result (*resume)(void *req, enum http_wake how);
    void (*headers)(void *req, int status, struct MHD_Response *resp);
    void (*done)(void *req);
    void (*stop)(void *arg);
};

/*
 * The core as the handlers see it:
 *   send(hr, status, body, content_type)   queue one answer (body copied)
 *   suspend(hr, timeout_ms, start, err, n)   under the server lock,
 *       start(req, deadline, err, n) hands the request to whoever completes
 *       it (returns 0, or -1 with err set; deadline: now + timeout_ms, or 0
 *       without one), then the connection is suspended until wake or, with
 *       timeout_ms > 0, the deadline. 0 suspended, 1 the drain began
 *       (nothing started), -1 start failed.
 *   wake(hr, store, arg)   from the completing thread, once: store(req,
 *       arg, late) runs under the lock (may be NULL); late = 0 and hr is
 *       resumed (returns 0) if it still waited, else late = 1 (answered
 *       already, returns 1). Drops the completion's reference: hr may be
 *       gone once it returns.
 *   draining(hr)           1 once the drain began
 */
struct http_core {
    enum MHD_Result (*send)(struct http_req *hr, int status, const char *body,
                            const char *content_type);
    int (*suspend)(struct http_req *hr, int64_t timeout_ms,
                   int (*start)(void *req, int64_t deadline_ms, char *err, size_t errsize),
                   char *err, size_t errsize);
    int (*wake)(struct http_req *hr, void (*store)(void *req, const void *arg, int late),
                const void *arg);
    int (*draining)(struct http_req *hr);
};

extern const struct http_core http_core;

struct http_opts {
    const char *listen; /* HOST:PORT */
    int64_t max_body;
    int64_t suspend_max_ms;     /* the longest a request stays suspended (idle timeout) */
    int64_t request_timeout_ms; /* a whole request must arrive in this long */
    unsigned int per_ip_limit;  /* connections per client address; 0: no cap */
    int (*uncapped)(void *arg, const struct sockaddr *peer); /* 1: no cap; may be NULL */
    void *uncapped_arg;
};

struct http_server *http_start(const struct http_opts *opts, const struct http_handlers *h,
                               struct metrics *metrics, char *errstr, size_t errsize);
void http_quiesce(struct http_server *s);
int64_t http_active(struct http_server *s);
void http_stop(struct http_server *s);
void http_free(struct http_server *s);

#endif
