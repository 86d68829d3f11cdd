/*
 * http.c - the HTTP frontend's server: libmicrohttpd, each request's life,
 * the timer and the readiness prober. See http.h; the routes are in
 * routes.c (routes.h is what the two share).
 *
 * Life of a request (struct request, one per HTTP request):
 *
 *   headers   api_begin(): 404/405/415/413 answered at once, else read on
 *   body      bytes appended up to max_body (the buffer grows with them,
 *             a declared Content-Length reserves nothing); more is counted
 *             only; all of it must arrive by the guard's deadline (guard.h)
 *   complete  routes_serve(): answered at once, or handed over (a vote to
 *             the publisher, a status read to reads.h) and suspended
 *   resumed   by the delivery report (REQ_REPORTED), the timer
 *             (REQ_TIMED_OUT) or the read's answer (REQ_READ_DONE):
 *             routes_resume() answers
 *   answered  MHD's completion callback drops the last reference
 *
 * The server lock guards request state, reference counts and the pending
 * list. Every suspended vote has the same timeout, so the pending list is
 * ordered by deadline and the timer only ever looks at its head.
 */
#include "http.h"
#include "acceptor.h"
#include "config.h"
#include "conncap.h"
#include "guard.h"
#include "log.h"
#include "metrics.h"
#include "page.h"
#include "routes.h"
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define HTTP_THREADS          2
#define HTTP_CONN_LIMIT       4096
#define HTTP_FD_RESERVE       256 /* descriptors kept for Kafka, logs, status lookups */
#define HTTP_CONN_TIMEOUT_S   10  /* at least; longer if the delivery timeout is */
#define HTTP_READY_EVERY_MS   1000
#define HTTP_READY_TIMEOUT_MS 1000
#define HTTP_REQUEST_ID_LEN   17 /* 16 hex digits + NUL */

/* Suspended requests with one timeout each, so ordered by deadline: the timer looks at heads. */
struct pending {
    struct request *head, *tail;
};

struct http_server {
    struct MHD_Daemon *daemon;
    struct acceptor *acceptor; /* the listening socket: new clients until quiesced */
    struct http_routes routes;

    pthread_mutex_t lock;
    pthread_cond_t wake;     /* CLOCK_MONOTONIC: new head of a pending list, or stop */
    pthread_cond_t stopping; /* CLOCK_MONOTONIC: the prober's sleep, cut short by stop */
    struct pending waiting;  /* REQ_WAITING: votes handed to the publisher */
    struct pending claiming; /* REQ_CLAIMING: Idempotency-Key claims handed to idem.h */
    int running;
    pthread_t timer, prober;
    int has_timer, has_prober;
    atomic_int draining; /* set under lock: no request is suspended once it is */
    atomic_int resuming; /* MHD_resume_connection() calls decided but not yet made */
    _Atomic int64_t active;
    uint32_t id_prefix;          /* random per process: ids of two producers differ */
    _Atomic uint32_t id_counter; /* request ids: prefix + counter */

    struct guard *guard;     /* whole-request deadlines */
    struct conncap *conncap; /* connections per address; NULL: no cap */
    struct metric *m_timeouts, *m_body_bytes, *m_reaped, *m_idem_timeouts, *m_capped;
};

/* ---- responses ---------------------------------------------------------- */

static void count_request(struct http_server *s, const char *route, int status)
{
    char labels[96];

    snprintf(labels, sizeof(labels), "route=\"%s\",status=\"%d\"", route, status);
    metric_add(metrics_counter(s->routes.metrics, "tadak_http_requests_total", labels,
                               "HTTP requests by route and status"),
               1);
}

enum MHD_Result http_send(struct request *r, int status, const char *body, const char *content_type)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result ret;

    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED && r->reply.allow[0])
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->reply.allow);
    if (status == MHD_HTTP_SERVICE_UNAVAILABLE)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    if (r->replayed)
        MHD_add_response_header(resp, "Idempotent-Replayed", "true");
    edge_headers(r->rt->edge, &r->edge, &r->reply, status, resp);
    /* Draining: keep-alive clients must not send their next request here. */
    if (atomic_load(&r->srv->draining))
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    if (r->reply.action == API_PAGE || r->reply.action == API_TALLIES ||
        r->reply.action == API_STATS || r->reply.action == API_STATUS)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    ret = MHD_queue_response(r->conn, (unsigned int)status, resp);
    MHD_destroy_response(resp);
    count_request(r->srv, r->reply.route, status);
    /* The client's own words (its path is unescaped: %0A is a newline) go to log.c raw. */
    if (status >= 400 && status < 500) {
        size_t n = strlen(body);
        log_debug("request refused", "method=%s path=%s status=%d reply=%.*s", r->method, r->url,
                  status, (int)(n > 0 && body[n - 1] == '\n' ? n - 1 : n), body);
    }
    return ret;
}

enum MHD_Result http_send_reply(struct request *r)
{
    return http_send(r, r->reply.status, r->reply.body, "application/json");
}

/*
 * A 503 for something that failed behind us. The client learns what failed
 * in general terms and a request id; the cause (libpq's or hiredis' words,
 * with host names and roles in them) goes only to the log, under that id.
 */
enum MHD_Result http_unavailable(struct request *r, const char *what, const char *why)
{
    struct http_server *s = r->srv;
    char id[HTTP_REQUEST_ID_LEN];

    snprintf(id, sizeof(id), "%08" PRIx32 "%08" PRIx32, s->id_prefix,
             atomic_fetch_add(&s->id_counter, 1));
    log_warn("request failed", "request_id=%s route=%s status=503 detail=\"%s\" error=\"%s\"", id,
             r->reply.route, what, why);
    api_error_id(&r->reply, 503, "unavailable", what, id);
    return http_send_reply(r);
}

enum MHD_Result http_shutting_down(struct request *r)
{
    api_error(&r->reply, 503, "shutting_down", "this server is shutting down; retry");
    return http_send_reply(r);
}

/* ---- request lifetime --------------------------------------------------- */

static void request_unref_locked(struct request *r, int *free_it)
{
    *free_it = --r->refs == 0;
}

static void request_free(struct request *r)
{
    if (r->cap)
        metric_add(r->srv->m_body_bytes, -(int64_t)r->cap);
    free(r->body);
    free(r->read.tallies);
    free(r);
}

/* Keep n more body bytes: the buffer doubles as the body grows, up to max_body. */
static void body_append(struct request *r, const char *data, size_t n)
{
    size_t want = r->len + n, cap = r->cap ? r->cap : 256;

    while (cap < want)
        cap *= 2;
    if (cap > r->rt->max_body)
        cap = r->rt->max_body; /* want <= max_body: the caller checked */
    if (cap != r->cap) {
        r->body = xrealloc(r->body, cap);
        metric_add(r->srv->m_body_bytes, (int64_t)(cap - r->cap));
        r->cap = cap;
    }
    memcpy(r->body + r->len, data, n);
    r->len = want;
}

static void pending_remove(struct pending *l, struct request *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        l->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        l->tail = r->prev;
    r->prev = r->next = NULL;
}

static void pending_append(struct http_server *s, struct pending *l, struct request *r)
{
    r->prev = l->tail;
    r->next = NULL;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
    if (l->head == r)
        pthread_cond_signal(&s->wake);
}

/* The list a suspended request is on, or NULL. */
static struct pending *pending_of(struct http_server *s, const struct request *r)
{
    return r->state == REQ_WAITING ? &s->waiting : r->state == REQ_CLAIMING ? &s->claiming : NULL;
}

/*
 * MHD_resume_connection() is called after the server lock is released, so
 * our lock is never held while MHD takes its own. The request stays alive
 * meanwhile: its connection is suspended, so MHD cannot complete it.
 */

/*
 * Under the server lock: drop a completion's reference to r, release the
 * lock, then resume (a decision counted in s->resuming) and free r if that
 * was its last reference.
 */
static void unref_and_resume(struct http_server *s, struct request *r,
                             struct MHD_Connection *resume)
{
    int free_it;

    request_unref_locked(r, &free_it);
    pthread_mutex_unlock(&s->lock);
    if (resume) {
        MHD_resume_connection(resume);
        atomic_fetch_sub(&s->resuming, 1);
    }
    if (free_it)
        request_free(r);
}

/* Runs on the publisher's delivery report thread. */
static void on_delivery(struct publish_completion *cb, const struct publish_report *rep)
{
    struct request *r = (struct request *)cb;
    struct http_server *s = r->srv;
    struct MHD_Connection *resume = NULL;

    pthread_mutex_lock(&s->lock);
    if (r->state == REQ_WAITING) {
        r->report_err = rep->err;
        util_strlcpy(r->report_errname, rep->errname, sizeof(r->report_errname));
        r->partition = rep->partition;
        r->offset = rep->offset;
        r->state = REQ_REPORTED;
        pending_remove(&s->waiting, r);
        resume = r->conn;
        atomic_fetch_add(&s->resuming, 1);
    } else {
        /* The client already has its 503; the event may still have landed. */
        log_info("late delivery report", "token=%s event_id=%s error=\"%s\"", r->reply.vote.token,
                 r->reply.vote.event_id, rep->errname);
    }
    unref_and_resume(s, r, resume);
}

/* Runs on a reads.h worker (or in reads_stop): the answer is in r->read. */
static void on_read(struct read_job *job)
{
    struct request *r = (struct request *)((char *)job - offsetof(struct request, read));
    struct http_server *s = r->srv;
    struct MHD_Connection *conn = r->conn;
    int free_it;

    pthread_mutex_lock(&s->lock);
    r->state = REQ_READ_DONE;
    atomic_fetch_add(&s->resuming, 1);
    /* Suspended, the connection cannot complete: its reference is not the last. */
    request_unref_locked(r, &free_it);
    pthread_mutex_unlock(&s->lock);
    MHD_resume_connection(conn);
    atomic_fetch_sub(&s->resuming, 1);
}

/*
 * Runs on an idem.h worker (or in idem_stop): the claim's answer is in
 * r->claim. 1 when r no longer waits for it (its deadline passed, or the
 * drain answered it): the worker then gives back a key it took.
 */
static int on_claim(struct idem_claim *c)
{
    struct request *r = (struct request *)((char *)c - offsetof(struct request, claim));
    struct http_server *s = r->srv;
    struct MHD_Connection *resume = NULL;

    pthread_mutex_lock(&s->lock);
    if (r->state == REQ_CLAIMING) {
        pending_remove(&s->claiming, r);
        r->state = REQ_CLAIMED;
        resume = r->conn;
        atomic_fetch_add(&s->resuming, 1);
    }
    unref_and_resume(s, r, resume);
    return resume ? 0 : 1;
}

int http_suspend(struct request *r, enum req_state state,
                 int (*start)(struct request *r, char *err, size_t errsize), char *err,
                 size_t errsize)
{
    struct http_server *s = r->srv;

    pthread_mutex_lock(&s->lock);
    if (atomic_load(&s->draining)) { /* nothing may be suspended once the drain began */
        pthread_mutex_unlock(&s->lock);
        return 1;
    }
    r->deadline_ms =
        util_now_ms() + (state == REQ_CLAIMING ? s->routes.idem_timeout_ms : s->routes.timeout_ms);
    if (start(r, err, errsize) != 0) {
        pthread_mutex_unlock(&s->lock);
        return -1;
    }
    r->refs++; /* the completion's, dropped by on_delivery, on_read or on_claim */
    r->state = state;
    if (pending_of(s, r))
        pending_append(s, pending_of(s, r), r);
    MHD_suspend_connection(r->conn);
    pthread_mutex_unlock(&s->lock);
    return 0;
}

enum req_state http_vote_state(struct request *r)
{
    enum req_state state;

    pthread_mutex_lock(&r->srv->lock);
    state = r->state;
    pthread_mutex_unlock(&r->srv->lock);
    return state;
}

/* Detach every pending request whose deadline passed (all, with now < 0). */
static struct request *take_expired_locked(struct http_server *s, int64_t now, int *claims)
{
    struct pending *lists[] = {&s->waiting, &s->claiming};
    struct request *out = NULL;

    *claims = 0;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(lists); i++) {
        struct pending *l = lists[i];
        while (l->head && (now < 0 || l->head->deadline_ms <= now)) {
            struct request *r = l->head;
            pending_remove(l, r);
            *claims += r->state == REQ_CLAIMING;
            r->state = r->state == REQ_CLAIMING ? REQ_CLAIM_LATE : REQ_TIMED_OUT;
            r->next = out; /* reuse the link: r is off the pending list now */
            out = r;
            atomic_fetch_add(&s->resuming, 1);
        }
    }
    return out;
}

static void resume_all(struct http_server *s, struct request *list)
{
    while (list) {
        struct request *next = list->next;
        list->next = NULL;
        MHD_resume_connection(list->conn);
        atomic_fetch_sub(&s->resuming, 1);
        list = next;
    }
}

static void *timer_main(void *arg)
{
    struct http_server *s = arg;
    struct timespec ts;

    pthread_mutex_lock(&s->lock);
    while (s->running) {
        int64_t now = util_now_ms(), wait_ms = 200, next_reap;
        int claims;
        struct request *expired = take_expired_locked(s, now, &claims);
        int reaped = guard_reap(s->guard, now, &next_reap);

        if (reaped)
            metric_add(s->m_reaped, reaped);
        if (next_reap - now < wait_ms)
            wait_ms = next_reap - now;

        if (expired) {
            pthread_mutex_unlock(&s->lock);
            for (struct request *r = expired; r; r = r->next)
                if (r->state == REQ_TIMED_OUT)
                    metric_add(s->m_timeouts, 1);
            metric_add(s->m_idem_timeouts, claims);
            resume_all(s, expired);
            pthread_mutex_lock(&s->lock);
            continue;
        }
        if (s->waiting.head && s->waiting.head->deadline_ms - now < wait_ms)
            wait_ms = s->waiting.head->deadline_ms - now;
        if (s->claiming.head && s->claiming.head->deadline_ms - now < wait_ms)
            wait_ms = s->claiming.head->deadline_ms - now;
        if (wait_ms < 1)
            wait_ms = 1;
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

/* /readyz must not block an MHD thread on Kafka: probe here, cache the answer. */
static void *prober_main(void *arg)
{
    struct http_server *s = arg;
    struct timespec ts;
    int running = 1;

    while (running) {
        int ok = publisher_probe(s->routes.pub, HTTP_READY_TIMEOUT_MS);
        if (atomic_exchange(&s->routes.ready, ok) != ok)
            log_info(ok ? "kafka ready" : "kafka not ready", "ready=%d", ok);
        pthread_mutex_lock(&s->lock);
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += HTTP_READY_EVERY_MS / 1000;
        if (s->running)
            pthread_cond_timedwait(&s->stopping, &s->lock, &ts);
        running = s->running;
        pthread_mutex_unlock(&s->lock);
    }
    return NULL;
}

/* ---- libmicrohttpd callbacks -------------------------------------------- */

static struct guard_conn *connection_guard(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return info ? info->socket_context : NULL;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct http_server *s = cls;
    struct request *r = *con_cls;
    int final;

    (void)version;
    if (!r) {
        r = xcalloc(1, sizeof(*r));
        r->completion.fn = on_delivery;
        r->read.fn = on_read;
        r->claim.done = on_claim;
        r->srv = s;
        r->rt = &s->routes;
        r->conn = conn;
        r->method = method;
        r->url = url;
        r->refs = 1;
        r->state = REQ_BODY;
        r->gc = connection_guard(conn);
        *con_cls = r;
        atomic_fetch_add(&s->active, 1);
        final = api_begin(
            method, url,
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH),
            s->routes.max_body, &r->reply);
        if (edge_admit(s->routes.edge, conn, method, final, &r->reply, &r->edge))
            return http_send_reply(r);
        if (atomic_load(&s->draining))
            return http_shutting_down(r);
        if (r->reply.action == API_VOTE) {
            const char *key = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Idempotency-Key");
            if (key && api_idempotency_key(key, r->edge.user, &r->reply))
                return http_send_reply(r);
        }
        return MHD_YES;
    }
    if (r->state != REQ_BODY)
        return routes_resume(r);
    if (*upload_data_size > 0) {
        /* Keep at most max_body bytes; beyond that only remember it overflowed. */
        if (r->reply.action == API_VOTE && !r->overflow) {
            if (r->len + *upload_data_size > s->routes.max_body)
                r->overflow = 1;
            else
                body_append(r, upload_data, *upload_data_size);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->reply.action == API_RESPOND)
        return MHD_YES;          /* answered at header time already */
    guard_busy(s->guard, r->gc); /* all of it arrived in time: serve it */
    return routes_serve(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct http_server *s = cls;
    struct request *r = *con_cls;
    struct guard_conn *gc;
    int free_it;

    (void)conn, (void)toe;
    if (!r)
        return;
    gc = r->gc; /* r may be gone once the lock is released */
    *con_cls = NULL;
    pthread_mutex_lock(&s->lock);
    if (pending_of(s, r)) { /* only if MHD tears down a suspended connection */
        pending_remove(pending_of(s, r), r);
        r->state = r->state == REQ_CLAIMING ? REQ_CLAIM_LATE : REQ_TIMED_OUT;
    }
    request_unref_locked(r, &free_it);
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

struct http_server *http_start(const struct http_opts *o, struct publisher *pub,
                               struct metrics *metrics, char *errstr, size_t errsize)
{
    struct http_server *s = xcalloc(1, sizeof(*s));
    struct sockaddr_in sa;
    char why[256];
    pthread_condattr_t ca;
    /* A resumed connection must not be reaped as idle for the time it waited. */
    unsigned int conn_timeout_s = (unsigned int)(o->delivery_timeout_ms / 1000 + 5);

    if (conn_timeout_s < HTTP_CONN_TIMEOUT_S)
        conn_timeout_s = HTTP_CONN_TIMEOUT_S;

    s->routes.pub = pub;
    s->routes.metrics = metrics;
    s->routes.max_body = (size_t)o->max_body;
    s->routes.timeout_ms = o->delivery_timeout_ms;
    s->routes.reads = o->reads;
    s->routes.idem = o->idem;
    s->routes.edge = o->edge;
    s->routes.idem_window_ms = o->idem_window_ms;
    s->routes.idem_timeout_ms = o->idem_timeout_ms;
    s->running = 1;
    if (getrandom(&s->id_prefix, sizeof(s->id_prefix), 0) != sizeof(s->id_prefix))
        s->id_prefix = (uint32_t)util_wall_ms() ^ (uint32_t)getpid();
    if (o->candidates)
        s->routes.candidates = *o->candidates;
    {
        int64_t ids[PAGE_MAX_CANDIDATES];
        s->routes.page =
            page_render(ids, api_candidates_list(&s->routes.candidates, ids, PAGE_MAX_CANDIDATES),
                        edge_identity(o->edge));
    }
    s->m_timeouts = metrics_counter(metrics, "tadak_http_delivery_timeouts_total", "",
                                    "Votes answered 503 because no delivery report came in time");
    s->m_body_bytes = metrics_gauge(metrics, "tadak_http_body_bytes", "",
                                    "Bytes allocated for request bodies being received");
    s->m_reaped = metrics_counter(metrics, "tadak_http_request_timeouts_total", "",
                                  "Connections closed because a request did not arrive in time");
    s->m_idem_timeouts =
        metrics_counter(metrics, "tadak_http_idempotency_timeouts_total", "",
                        "Votes answered 503 because Redis did not answer an Idempotency-Key claim "
                        "in time");
    s->m_capped =
        metrics_counter(metrics, "tadak_http_connections_capped_total", "",
                        "Connections closed unanswered: their address held the most it may");
    s->guard = guard_new(o->request_timeout_ms);
    if (o->per_ip_limit > 0)
        s->conncap = conncap_new(o->per_ip_limit, edge_trusted_proxy, o->edge);
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->wake, &ca);
    pthread_cond_init(&s->stopping, &ca);
    pthread_condattr_destroy(&ca);

    if (config_parse_listen(o->listen, "listen", &sa, errstr, errsize) != 0)
        goto fail;
    if (pthread_create(&s->timer, NULL, timer_main, s) != 0) {
        snprintf(errstr, errsize, "cannot start the timeout thread");
        goto fail;
    }
    s->has_timer = 1;
    if (pthread_create(&s->prober, NULL, prober_main, s) != 0) {
        snprintf(errstr, errsize, "cannot start the readiness thread");
        goto fail;
    }
    s->has_prober = 1;
    if (!(s->acceptor = acceptor_new(&sa, why, sizeof(why)))) {
        snprintf(errstr, errsize, "cannot listen on %s: %s", o->listen, why);
        goto fail;
    }
    /* Connections come from the acceptor (acceptor.h says why), not a socket of MHD's. */
    s->daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
            MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC,
        0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned int)HTTP_THREADS, MHD_OPTION_CONNECTION_LIMIT,
        conn_limit(), MHD_OPTION_CONNECTION_TIMEOUT, conn_timeout_s, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection, s, MHD_OPTION_END);
    if (!s->daemon) {
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
    struct request *rest;
    int claims;

    /*
     * MHD_stop_daemon() aborts the process if it finds a suspended
     * connection. With draining set (under the lock) nothing is suspended
     * any more; the rest is answered 503; and every resume decided so far,
     * here or by a late delivery report, has been made before MHD stops.
     */
    pthread_mutex_lock(&s->lock);
    atomic_store(&s->draining, 1);
    rest = take_expired_locked(s, -1, &claims);
    s->running = 0;
    pthread_cond_broadcast(&s->wake);
    pthread_cond_broadcast(&s->stopping);
    pthread_mutex_unlock(&s->lock);
    resume_all(s, rest);
    if (s->has_timer)
        pthread_join(s->timer, NULL);
    if (s->has_prober)
        pthread_join(s->prober, NULL);
    s->has_timer = s->has_prober = 0;
    reads_stop(s->routes.reads); /* every status read answered, its connection resumed */
    idem_stop(s->routes.idem);   /* every claim answered (its request already was) */
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
    pthread_cond_destroy(&s->stopping);
    pthread_mutex_destroy(&s->lock);
    free(s->routes.page);
    guard_free(s->guard);
    conncap_free(s->conncap);
    acceptor_free(s->acceptor);
    free(s);
}
