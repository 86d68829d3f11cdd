/*
 * api.c - routes, request checks and response bodies. See api.h.
 */
#include "api.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct route {
    const char *method;
    const char *path;
    enum api_action action;
    const char *label;
} routes[] = {
    {"POST", "/votes", API_VOTE, "/votes"},       {"POST", "/votes/", API_VOTE, "/votes"},
    {"GET", "/healthz", API_HEALTH, "/healthz"},  {"GET", "/readyz", API_READY, "/readyz"},
    {"GET", "/metrics", API_METRICS, "/metrics"},
};

int api_json_escape(const char *s, char *buf, size_t size)
{
    size_t n = 0;

    if (size == 0)
        return -1;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char tmp[8];
        size_t k;

        if (c == '"' || c == '\\')
            k = (size_t)snprintf(tmp, sizeof(tmp), "\\%c", c);
        else if (c < 0x20)
            k = (size_t)snprintf(tmp, sizeof(tmp), "\\u%04x", c);
        else
            tmp[0] = (char)c, k = 1;
        if (n + k >= size) {
            buf[n] = '\0';
            return -1;
        }
        memcpy(buf + n, tmp, k);
        n += k;
    }
    buf[n] = '\0';
    return (int)n;
}

void api_error(struct api_reply *r, int status, const char *error, const char *detail)
{
    char esc[512];

    api_json_escape(detail, esc, sizeof(esc));
    r->action = API_RESPOND;
    r->status = status;
    snprintf(r->body, sizeof(r->body), "{\"error\":\"%s\",\"detail\":\"%s\"}\n", error, esc);
}

/* application/json, any case, optionally followed by parameters (charset). */
static int json_content_type(const char *ct)
{
    static const char want[] = "application/json";
    size_t n = sizeof(want) - 1;

    while (*ct == ' ' || *ct == '\t')
        ct++;
    if (strncasecmp(ct, want, n) != 0)
        return 0;
    ct += n;
    while (*ct == ' ' || *ct == '\t')
        ct++;
    return *ct == '\0' || *ct == ';';
}

int api_begin(const char *method, const char *path, const char *content_type,
              const char *content_length, size_t max_body, struct api_reply *r)
{
    const struct route *match = NULL;
    int64_t declared;
    char detail[128];

    memset(r, 0, sizeof(*r));
    r->route = "other";
    for (size_t i = 0; i < UTIL_ARRAY_LEN(routes); i++) {
        if (strcmp(routes[i].path, path) != 0)
            continue;
        r->route = routes[i].label;
        if (strcmp(routes[i].method, method) == 0) {
            match = &routes[i];
            break;
        }
        if (!strstr(r->allow, routes[i].method))
            snprintf(r->allow + strlen(r->allow), sizeof(r->allow) - strlen(r->allow), "%s%s",
                     r->allow[0] ? ", " : "", routes[i].method);
    }
    if (!match && r->allow[0]) {
        snprintf(detail, sizeof(detail), "use %s on this path", r->allow);
        api_error(r, 405, "method_not_allowed", detail);
        return 1;
    }
    if (!match) {
        api_error(r, 404, "not_found", "unknown path; votes go to POST /votes");
        return 1;
    }
    r->action = match->action;
    if (match->action != API_VOTE)
        return 0;
    if (content_type && !json_content_type(content_type)) {
        api_error(r, 415, "unsupported_media_type", "send the vote as application/json");
        return 1;
    }
    if (content_length && util_parse_i64(content_length, &declared) == 0 &&
        declared > (int64_t)max_body) {
        snprintf(detail, sizeof(detail), "the body is larger than %zu bytes", max_body);
        api_error(r, 413, "too_large", detail);
        return 1;
    }
    return 0;
}

int api_vote(const char *body, size_t len, int overflow, size_t max_body, struct api_reply *r)
{
    enum event_err err;
    char detail[256];

    if (overflow || len > max_body) {
        snprintf(detail, sizeof(detail), "the body is larger than %zu bytes", max_body);
        api_error(r, 413, "too_large", detail);
        return 1;
    }
    if (event_parse(body ? body : "", len, &r->vote, &err, detail, sizeof(detail)) != 0) {
        api_error(r, 400, event_err_name(err), detail);
        return 1;
    }
    /* A client does not choose the identity of an event: every request is a new one. */
    r->vote.event_id[0] = '\0';
    r->vote.ts_ms = 0;
    r->action = API_VOTE;
    return 0;
}

int api_accepted(const struct vote *v, int32_t partition, int64_t offset, char *buf, size_t size)
{
    int n = snprintf(buf, size,
                     "{\"status\":\"accepted\",\"event_id\":\"%s\",\"token\":\"%s\","
                     "\"partition\":%" PRId32 ",\"offset\":%" PRId64 "}\n",
                     v->event_id, v->token, partition, offset);
    return (n < 0 || (size_t)n >= size) ? -1 : n;
}
