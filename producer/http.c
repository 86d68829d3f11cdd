/*
 * http.c - the HTTP server core: libmicrohttpd, each request's life, the
 * timer. See http.h; what a request is answered is the handlers' (routes.c).
 *
 * Life of a request (struct http_req, one per HTTP request):
 *
 *   headers   handlers.begin: answered at once, or read on
 *   body      bytes kept up to max_body (the buffer grows with them, a
 *             declared Content-Length reserves nothing); more is counted
 *             only; all of it must arrive by the guard's deadline (guard.h)
 *   complete  handlers.serve: answered at once, or suspended (core_suspend)
 *   resumed   by its completion (core_wake), its deadline (the timer) or
 *             the drain: handlers.resume answers
 *   answered  MHD's completion callback drops the last reference
 *
 * The server lock guards request state, reference counts and the deadline
 * lists. Requests suspended with one timeout share a lane (a list in
 * deadline order, appended to at O(1)); the timer looks at lane heads and
 * at the guard's, and sleeps until the earliest.
 */
#include "http.h"
#include "acceptor.h"
#include "config.h"
#include "conncap.h"
#include "deadline.h"
#include "guard.h"
#include "log.h"
#include "metrics.h"
#include "util.h"

#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#define HTTP_THREADS        2
#define HTTP_CONN_LIMIT     4096
#define HTTP_FD_RESERVE     256 /* descriptors kept for Kafka, logs, status lookups */
#define HTTP_CONN_TIMEOUT_S 10  /* MHD's idle timeout: at least; longer if a suspension is */
#define HTTP_LANES          4   /* distinct suspension timeouts kept in O(1) order */
#define HTTP_TIMER_MAX_MS   200 /* the timer wakes at least this often */

enum req_state {
    REQ_BODY,      /* reading the request */
    REQ_SUSPENDED, /* handed over, waiting for core_wake or its deadline */
    REQ_WOKEN,     /* core_wake came in time */
    REQ_EXPIRED,   /* the deadline passed (or MHD tore the connection down) */
    REQ_STOPPED,   /* the drain answers it */
};

struct http_req {
    struct deadline due; /* first member: a suspended request with a timeout is on a lane */
    struct http_server *srv;
    struct MHD_Connection *conn;
    const char *method, *url; /* libmicrohttpd's, valid until the request completes */
    enum http_body want;      /* what begin asked for */
    struct guard_conn *gc;    /* the connection's request deadline */

    /* Under the server lock from REQ_SUSPENDED on. */
    enum req_state state;
    int refs;                     /* the connection + a pending completion */
    int lane;                     /* the lane it is on while suspended with a timeout */
    struct http_req *resume_next; /* on a list of requests to resume */

    char *body;
    size_t len, cap; /* cap grows with the body: never max_body up front */
    int overflow;
    max_align_t req[]; /* the handlers' part: handlers.req_size bytes */
};

/* Suspended requests with one timeout: appending keeps the list in deadline order. */
struct lane {
    int64_t timeout_ms; /* 0: unused */
    struct deadline_list due;
};

struct http_server {
    struct MHD_Daemon *daemon;
    struct acceptor *acceptor; /* the listening socket: new clients until quiesced */
    struct http_handlers h;
    size_t max_body;

    pthread_mutex_t lock;
    pthread_cond_t wake; /* CLOCK_MONOTONIC: a new earliest deadline, or stop */
    struct lane lanes[HTTP_LANES];
    int running;
    pthread_t timer;
    int has_timer;
    atomic_int draining; /* set under lock: no request is suspended once it is */
    atomic_int resuming; /* MHD_resume_connection() calls decided but not yet made */
    _Atomic int64_t active;

    struct guard *guard;     /* whole-request deadlines */
    struct conncap *conncap; /* connections per address; NULL: no cap */
    struct metric *m_body_bytes, *m_reaped, *m_capped;
};

/* ---- answers ------------------------------------------------------------ */

static enum MHD_Result core_send(struct http_req *r, int status, const char *body,
                                 const char *content_type)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;

    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (r->srv->h.headers)
        r->srv->h.headers(r->req, status, resp);
    /* Draining: keep-alive clients must not send their next request here. */
    if (atomic_load(&r->srv->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    ret = MHD_queue_response(r->conn, (unsigned int)status, resp);
    MHD_destroy_response(resp);
    /* The client's own words (its path is unescaped: %0A is a newline) go to log.c raw. */
    if (status >= 400 && status < 500) {
        size_t n = strlen(body);
        log_debug("request refused", "method=%s path=%s status=%d reply=%.*s", r->method, r->url,
                  status, (int)(n > 0 && body[n - 1] == '\n' ? n - 1 : n), body);
    }
    return ret;
}

static int core_draining(struct http_req *r)
{
    return atomic_load(&r->srv->draining);
}

/* ---- request lifetime --------------------------------------------------- */

static void request_free(struct http_req *r)
{
    if (r->cap)
        metric_add(r->srv->m_body_bytes, -(int64_t)r->cap);
    if (r->srv->h.done)
        r->srv->h.done(r->req);
    free(r->body);
    free(r);
}

/* Keep n more body bytes: the buffer doubles as the body grows, up to max_body. */
static void body_append(struct http_req *r, const char *data, size_t n)
{
    size_t want = r->len + n, cap = r->cap ? r->cap : 256;

    while (cap < want)
        cap *= 2;
    if (cap > r->srv->max_body)
        cap = r->srv->max_body; /* want <= max_body: the caller checked */
    if (cap != r->cap) {
        r->body = xrealloc(r->body, cap);
        metric_add(r->srv->m_body_bytes, (int64_t)(cap - r->cap));
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len = want;
}

/* The lane for timeout_ms: its own, or a free one, or (more timeouts than lanes) the first. */
static struct lane *lane_for(struct http_server *s, int64_t timeout_ms, int *index)
{
    for (int i = 0; i < HTTP_LANES; i++) {
        struct lane *l = &s->lanes[i];
        if (l->timeout_ms == 0)
            l->timeout_ms = timeout_ms;
        if (l->timeout_ms == timeout_ms) {
            *index = i;
            return l;
        }
    }
    *index = 0;
    return &s->lanes[0]; /* still in order: deadline_add walks back to its place */
}

/* Under the server lock: take r off its lane, if it is on one. */
static void unlist_locked(struct http_server *s, struct http_req *r)
{
    if (r->due.listed)
        deadline_remove(&s->lanes[r->lane].due, &r->due);
}

/*
 * Under the server lock: drop a completion's reference to r, release the
 * lock, then resume (a decision counted in s->resuming) and free r if that
 * was its last reference. MHD_resume_connection() is called after the lock
 * is released, so ours is never held while MHD takes its own; r stays alive
 * meanwhile: its connection is suspended, so MHD cannot complete it.
 */
static void unref_and_resume(struct http_server *s, struct http_req *r,
                             struct MHD_Connection *resume)
{
    int free_it = --r->refs == 0;

    pthread_mutex_unlock(&s->lock);
    if (resume) {
        MHD_resume_connection(resume);
        atomic_fetch_sub(&s->resuming, 1);
    }
    if (free_it)
        request_free(r);
}

static int core_wake(struct http_req *r, void (*store)(void *req, const void *arg, int late),
                     const void *arg)
{
    struct http_server *s = r->srv;
    struct MHD_Connection *resume = NULL;

    pthread_mutex_lock(&s->lock);
    if (r->state == REQ_SUSPENDED) {
        unlist_locked(s, r);
        r->state = REQ_WOKEN;
        resume = r->conn;
        atomic_fetch_add(&s->resuming, 1);
    }
    if (store)
        store(r->req, arg, !resume);
    unref_and_resume(s, r, resume);
    return resume ? 0 : 1;
}

static int core_suspend(struct http_req *r, int64_t timeout_ms,
                        int (*start)(void *req, int64_t deadline_ms, char *err, size_t errsize),
                        char *err, size_t errsize)
{
    struct http_server *s = r->srv;
    int64_t deadline = timeout_ms > 0 ? util_now_ms() + timeout_ms : 0;

    pthread_mutex_lock(&s->lock);
    if (atomic_load(&s->draining)) { /* nothing may be suspended once the drain began */
        pthread_mutex_unlock(&s->lock);
        return 1;
    }
    if (start(r->req, deadline, err, errsize) != 0) {
        pthread_mutex_unlock(&s->lock);
        return -1;
    }
    r->refs++; /* the completion's, dropped by core_wake */
    r->state = REQ_SUSPENDED;
    if (timeout_ms > 0) {
        struct lane *l = lane_for(s, timeout_ms, &r->lane);
        deadline_add(&l->due, &r->due, deadline);
        if (l->due.head == &r->due)
            pthread_cond_signal(&s->wake);
    }
    MHD_suspend_connection(r->conn);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

const struct http_core http_core = {
    .send = core_send,
    .suspend = core_suspend,
    .wake = core_wake,
    .draining = core_draining,
};

/* Under the server lock: detach every suspended request due by now, marked state. */
static struct http_req *take_due_locked(struct http_server *s, int64_t now, enum req_state state)
{
    struct http_req *out = NULL;

    for (int i = 0; i < HTTP_LANES; i++) {
        struct deadline *d;
        while ((d = deadline_due(&s->lanes[i].due, now))) {
            struct http_req *r = (struct http_req *)d; /* due is the first member */
            r->state = state;
            r->resume_next = out;
            out = r;
            atomic_fetch_add(&s->resuming, 1);
        }
    }
    return out;
}

static void resume_all(struct http_server *s, struct http_req *list)
{
    while (list) {
        struct http_req *next = list->resume_next;
        list->resume_next = NULL;
        MHD_resume_connection(list->conn);
        atomic_fetch_sub(&s->resuming, 1);
        list = next;
    }
}

/* Under the server lock: how long the timer may sleep. */
static int64_t timer_wait_ms(struct http_server *s, int64_t now, int64_t next_reap)
{
    int64_t wait_ms = HTTP_TIMER_MAX_MS;

    if (next_reap - now < wait_ms)
        wait_ms = next_reap - now;
    for (int i = 0; i < HTTP_LANES; i++)
        if (deadline_next(&s->lanes[i].due) - now < wait_ms)
            wait_ms = deadline_next(&s->lanes[i].due) - now;
    return wait_ms < 1 ? 1 : wait_ms;
}

/* One timer for both kinds of deadline: the guard's and the suspended requests'. */
static void *timer_main(void *arg)
{
    struct http_server *s = arg;
    struct timespec ts;

    pthread_mutex_lock(&s->lock);
    while (s->running) {
        int64_t now = util_now_ms(), next_reap, wait_ms;
        struct http_req *expired = take_due_locked(s, now, REQ_EXPIRED);
        int reaped = guard_reap(s->guard, now, &next_reap);

        if (reaped)
            metric_add(s->m_reaped, reaped);
        if (expired) {
            pthread_mutex_unlock(&s->lock);
            resume_all(s, expired);
            pthread_mutex_lock(&s->lock);
            continue;
        }
        wait_ms = timer_wait_ms(s, now, next_reap);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += wait_ms / 1000;
        ts.tv_nsec += (wait_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L)
            ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&s->wake, &s->lock, &ts);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* ---- libmicrohttpd callbacks -------------------------------------------- */

static struct guard_conn *connection_guard(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return info ? info->socket_context : NULL;
}

static enum MHD_Result request_begin(struct http_server *s, struct MHD_Connection *conn,
                                     const char *url, const char *method, void **con_cls)
{
    struct http_req *r = xcalloc(1, sizeof(*r) + s->h.req_size);

    r->srv = s;
    r->conn = conn;
    r->method = method;
    r->url = url;
    r->refs = 1;
    r->state = REQ_BODY;
    r->want = HTTP_ANSWERED;
    r->gc = connection_guard(conn);
    *con_cls = r;
    atomic_fetch_add(&s->active, 1);
    return s->h.begin(s->h.arg, r, r->req, conn, method, url, &r->want);
}

/* The connection was resumed: say why, under the lock its completion took. */
static enum MHD_Result request_resume(struct http_req *r)
{
    static const enum http_wake how[] = {
        [REQ_WOKEN] = HTTP_WOKEN, [REQ_EXPIRED] = HTTP_EXPIRED, [REQ_STOPPED] = HTTP_STOPPED};
    enum req_state state;

    pthread_mutex_lock(&r->srv->lock);
    state = r->state;
    pthread_mutex_unlock(&r->srv->lock);
    return r->srv->h.resume(r->req, how[state]);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct http_server *s = cls;
    struct http_req *r = *con_cls;

    (void)version;
    if (!r)
        return request_begin(s, conn, url, method, con_cls);
    if (r->state != REQ_BODY)
        return request_resume(r);
    if (*upload_data_size > 0) {
        /* Keep at most max_body bytes; beyond that only remember it overflowed. */
        if (r->want == HTTP_BODY_KEEP && !r->overflow) {
            if (r->len + *upload_data_size > s->max_body)
                r->overflow = 1;
            else
                body_append(r, upload_data, *upload_data_size);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->want == HTTP_ANSWERED)
        return MHD_YES;          /* answered at header time already */
    guard_busy(s->guard, r->gc); /* all of it arrived in time: serve it */
    return s->h.serve(r->req, r->body, r->len, r->overflow);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct http_req *r = *con_cls;
    struct guard_conn *gc;
    int free_it;

    (void)conn, (void)toe;
    if (!r)
        return;
    gc = r->gc; /* r may be gone once the lock is released */
    *con_cls = NULL;
    pthread_mutex_lock(&s->lock);
    if (r->state == REQ_SUSPENDED) { /* only if MHD tears down a suspended connection */
        unlist_locked(s, r);
        r->state = REQ_EXPIRED;
    }
    free_it = --r->refs == 0;
    pthread_mutex_unlock(&s->lock);
    atomic_fetch_sub(&s->active, 1);
    guard_idle(s->guard, gc, util_now_ms()); /* the next request is due */
    if (free_it)
        request_free(r);
}

/*
 * Accepted and closed connections: the guard tracks each one in between,
 * and the per-address cap counts it. One over the cap is shut down at once
 * (libmicrohttpd then reads end of file and closes it, unanswered).
 */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct http_server *s = cls;
    const union MHD_ConnectionInfo *fd =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    const union MHD_ConnectionInfo *peer =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        *socket_context = fd ? guard_open(s->guard, fd->connect_fd, util_now_ms()) : NULL;
        if (s->conncap && peer && !conncap_open(s->conncap, peer->client_addr)) {
            metric_add(s->m_capped, 1);
            if (fd)
                shutdown(fd->connect_fd, SHUT_RDWR);
        }
    } else {
        if (s->conncap && peer)
            conncap_close(s->conncap, peer->client_addr);
        /* Before libmicrohttpd closes the descriptor: the guard forgets it first. */
        guard_close(s->guard, *socket_context);
        *socket_context = NULL;
    }
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    size_t n;

    (void)cls;
    vsnprintf(line, sizeof(line), fmt, ap);
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    log_warn("libmicrohttpd", "detail=\"%s\"", line); /* log.c escapes it */
}

/* ---- lifecycle ---------------------------------------------------------- */

/* The acceptor's callback: MHD takes the socket (and closes it when it cannot). */
static void hand_connection(void *arg, int fd, const struct sockaddr *addr, socklen_t len)
{
    struct http_server *s = arg;

    if (MHD_add_connection(s->daemon, fd, addr, len) != MHD_YES)
        log_debug("connection not taken", "error=\"%s\"", strerror(errno));
}

/*
 * Connections MHD may hold. The usual soft limit of 1024 descriptors would
 * let ~1000 idle sockets make accept() fail with EMFILE, and MHD then stops
 * accepting anyone until they time out; so raise the soft limit towards the
 * hard one, and never let MHD reach whatever limit remains.
 */
static unsigned int conn_limit(void)
{
    struct rlimit rl;
    rlim_t want = HTTP_CONN_LIMIT + HTTP_FD_RESERVE;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return HTTP_CONN_LIMIT;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < want) {
        struct rlimit raised = rl;
        raised.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ? rl.rlim_max : want;
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl.rlim_cur = raised.rlim_cur;
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
        return HTTP_CONN_LIMIT;
    if (rl.rlim_cur <= 2 * HTTP_FD_RESERVE)
        return (unsigned int)(rl.rlim_cur / 2);
    log_warn("few file descriptors: fewer HTTP connections", "nofile=%llu connections=%llu",
             (unsigned long long)rl.rlim_cur, (unsigned long long)(rl.rlim_cur - HTTP_FD_RESERVE));
    return (unsigned int)(rl.rlim_cur - HTTP_FD_RESERVE);
}

/* The server's state, its metrics and its lock: nothing started yet. */
static struct http_server *server_new(const struct http_opts *o, const struct http_handlers *h,
                                      struct metrics *metrics)
{
    struct http_server *s = xcalloc(1, sizeof(*s));
    pthread_condattr_t ca;

    s->h = *h;
    s->max_body = (size_t)o->max_body;
    s->running = 1;
    s->m_body_bytes = metrics_gauge(metrics, "tadak_http_body_bytes", "",
                                    "Bytes allocated for request bodies being received");
    s->m_reaped = metrics_counter(metrics, "tadak_http_request_timeouts_total", "",
                                  "Connections closed because a request did not arrive in time");
    s->m_capped =
        metrics_counter(metrics, "tadak_http_connections_capped_total", "",
                        "Connections closed unanswered: their address held the most it may");
    s->guard = guard_new(o->request_timeout_ms);
    if (o->per_ip_limit > 0)
        s->conncap = conncap_new(o->per_ip_limit, o->uncapped, o->uncapped_arg);
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &ca);
    pthread_condattr_destroy(&ca);
    return s;
}

/*
 * The daemon: connections come from the acceptor (acceptor.h says why), not a
 * socket of MHD's. Its workers poll(), not epoll: with libmicrohttpd 0.9.75's
 * edge-triggered epoll, under 256 keep-alive connections a worker now and
 * then left every one of its connections unread until its 10 s wait ran out
 * (both workers in epoll_wait, `ss` showing 128 requests waiting on each):
 * the 8-22k requests/s runs of `make bench`. poll() is level-triggered, and
 * measured side by side as fast or faster at 64, 256, 512 and 1024
 * connections.
 */
static struct MHD_Daemon *daemon_start(struct http_server *s, const struct http_opts *o)
{
    /* A resumed connection must not be reaped as idle for the time it waited. */
    unsigned int conn_timeout_s = (unsigned int)(o->suspend_max_ms / 1000 + 5);

    if (conn_timeout_s < HTTP_CONN_TIMEOUT_S)
        conn_timeout_s = HTTP_CONN_TIMEOUT_S;
    return MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC,
        0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)HTTP_THREADS, MHD_OPTION_CONNECTION_LIMIT,
        conn_limit(), MHD_OPTION_CONNECTION_TIMEOUT, conn_timeout_s, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_END);
}

struct http_server *http_start(const struct http_opts *o, const struct http_handlers *h,
                               struct metrics *metrics, char *errstr, size_t errsize)
{
    struct http_server *s = server_new(o, h, metrics);
    struct sockaddr_in sa;
    char why[256];

    if (config_parse_listen(o->listen, "listen", &sa, errstr, errsize) != 0)
        goto fail;
    if (pthread_create(&s->timer, NULL, timer_main, s) != 0) {
        snprintf(errstr, errsize, "cannot start the timeout thread");
        goto fail;
    }
    s->has_timer = 1;
    if (!(s->acceptor = acceptor_new(&sa, why, sizeof(why)))) {
        snprintf(errstr, errsize, "cannot listen on %s: %s", o->listen, why);
        goto fail;
    }
    if (!(s->daemon = daemon_start(s, o))) {
        snprintf(errstr, errsize, "cannot serve on %s: %s", o->listen, strerror(errno));
        goto fail;
    }
    if (acceptor_run(s->acceptor, hand_connection, s) != 0) {
        snprintf(errstr, errsize, "cannot start the accepting thread");
        goto fail;
    }
    return s;
fail:
    http_stop(s);
    http_free(s);
    return NULL;
}

void http_quiesce(struct http_server *s)
{
    pthread_mutex_lock(&s->lock);
    atomic_store(&s->draining, 1);
    pthread_mutex_unlock(&s->lock);
    acceptor_stop(s->acceptor); /* the socket is closed: new clients are refused now */
}

int64_t http_active(struct http_server *s)
{
    return atomic_load(&s->active);
}

void http_stop(struct http_server *s)
{
    struct http_req *rest;

    /*
     * MHD_stop_daemon() aborts the process if it finds a suspended
     * connection. With draining set (under the lock) nothing is suspended
     * any more; the rest is answered 503; and every resume decided so far,
     * here or by a late completion, has been made before MHD stops.
     */
    pthread_mutex_lock(&s->lock);
    atomic_store(&s->draining, 1);
    rest = take_due_locked(s, INT64_MAX, REQ_STOPPED);
    s->running = 0;
    pthread_cond_broadcast(&s->wake);
    pthread_mutex_unlock(&s->lock);
    resume_all(s, rest);
    if (s->has_timer)
        pthread_join(s->timer, NULL);
    s->has_timer = 0;
    if (s->h.stop) /* what waits without a timeout (status reads, claims) is answered */
        s->h.stop(s->h.arg);
    while (atomic_load(&s->resuming) > 0) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    acceptor_stop(s->acceptor); /* no MHD_add_connection() after this */
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    s->daemon = NULL;
}

void http_free(struct http_server *s)
{
    if (!s)
        return;
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    guard_free(s->guard);
    conncap_free(s->conncap);
    acceptor_free(s->acceptor);
    free(s);
}
