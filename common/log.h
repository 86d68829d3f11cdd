/*
 * log.h - logfmt lines on stderr, one per event:
 *
 *   ts=2026-11-29T10:00:00.123Z level=info msg="consumer started" topic=votes
 *
 * The macros test the level before anything is formatted, so a debug line
 * in a hot loop costs one comparison when debug is off. The second macro
 * argument, when there is one, is a printf format for the key=value tail:
 * log_info("consumer stopped") has none.
 *
 * No value can forge or break a record: the format's literal text (keys,
 * '=', quotes) is trusted, every converted value is escaped - in place
 * inside literal quotes (detail="%s"), quoted when a bare one (path=%s) is
 * not a plain token - and URL passwords are written as ***. Callers pass
 * raw text; they never sanitise it themselves.
 *
 *   log_set_level(LOG_DEBUG);  log_parse_level("warn", &lvl);
 *   log_info("batch stored", "rows=%d ms=%lld", n, ms);
 */
#ifndef TADAK_LOG_H
#define TADAK_LOG_H

#include <stdint.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern int log_level_current;

void log_set_level(enum log_level level);
int log_parse_level(const char *name, enum log_level *out);
void log_emit(enum log_level level, const char *msg, const char *kvfmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_emit_msg(enum log_level level, const char *msg); /* a record without a tail */

/*
 * A line that repeats while a condition lasts (every failed reconnect of an
 * outage): the first is due at once, then one every every_ms at most; *held
 * is how many were held back since the last one due. Not thread-safe: one
 * per thread that logs it.
 *
 *   static struct log_every down;
 *   int64_t held;
 *   if (log_every_due(&down, util_now_ms(), 30000, &held))
 *       log_warn("brokers down", "repeated=%" PRId64, held);
 */
struct log_every {
    int64_t at; /* when the last due one was, 0: never */
    int64_t held;
};
int log_every_due(struct log_every *e, int64_t now_ms, int64_t every_ms, int64_t *held);

#define log_at(lvl, ...)                                                                           \
    do {                                                                                           \
        if ((int)(lvl) <= log_level_current)                                                       \
            LOG_PICK_(__VA_ARGS__)(lvl, __VA_ARGS__);                                              \
    } while (0)

/* A message alone, or a message, a tail format and its values (up to 29). */
#define LOG_MSG_(lvl, msg)     log_emit_msg((lvl), (msg))
#define LOG_KV_(lvl, msg, ...) log_emit((lvl), (msg), __VA_ARGS__)
#define LOG_PICK_(...)                                                                             \
    LOG_CHOOSE_(__VA_ARGS__, LOG_KV_, LOG_KV_, LOG_KV_, LOG_KV_, LOG_KV_, LOG_KV_, LOG_KV_,        \
                LOG_KV_, LOG_KV_, LOG_KV_, LOG_KV_, LOG_KV_, LOG_KV_, LOG_KV_, LOG_KV_, LOG_KV_,   \
                LOG_KV_, LOG_KV_, LOG_KV_, LOG_KV_, LOG_KV_, LOG_KV_, LOG_KV_, LOG_KV_, LOG_KV_,   \
                LOG_KV_, LOG_KV_, LOG_KV_, LOG_KV_, LOG_KV_, LOG_MSG_, LOG_NONE_)
#define LOG_CHOOSE_(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13, a14, a15, a16, a17,    \
                    a18, a19, a20, a21, a22, a23, a24, a25, a26, a27, a28, a29, a30, a31, name,    \
                    ...)                                                                           \
    name

#define log_error(...) log_at(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_at(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_at(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_at(LOG_DEBUG, __VA_ARGS__)

#endif
