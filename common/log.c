/*
 * log.c - logfmt writer. Each line is formatted into one buffer and written
 * with a single fwrite so that lines from different threads (librdkafka
 * callbacks, libmicrohttpd workers) never interleave mid-line.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

int log_level_current = LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_set_level(enum log_level level)
{
    log_level_current = (int)level;
}

int log_parse_level(const char *name, enum log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(name, level_names[i]) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

void log_emit(enum log_level level, const char *msg, const char *kvfmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    size_t n, j;
    int w;
    va_list ap;

    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    w = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03dZ level=%s msg=\"",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 (int)(tv.tv_usec / 1000), level_names[level]);
    n = w > 0 ? (size_t)w : 0;
    /* Quote the message: a stray '"' or newline must not break the line. */
    for (j = 0; msg[j] && n < sizeof(line) - 8; j++) {
        char c = msg[j];
        if (c == '"' || c == '\\')
            line[n++] = '\\';
        line[n++] = (c == '\n' || c == '\r') ? ' ' : c;
    }
    line[n++] = '"';
    if (kvfmt && *kvfmt && n < sizeof(line) - 2) {
        line[n++] = ' ';
        va_start(ap, kvfmt);
        w = vsnprintf(line + n, sizeof(line) - n - 1, kvfmt, ap);
        va_end(ap);
        if (w > 0)
            n += (size_t)w < sizeof(line) - n - 1 ? (size_t)w : sizeof(line) - n - 2;
    }
    line[n++] = '\n';
    fwrite(line, 1, n, stderr);
}
