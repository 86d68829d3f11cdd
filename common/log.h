/*
 * log.h - logfmt lines on stderr, one per event:
 *
 *   ts=2026-11-29T10:00:00.123Z level=info msg="consumer started" topic=votes
 *
 * The macros test the level before anything is formatted, so a debug line
 * in a hot loop costs one comparison when debug is off. The second macro
 * argument is a printf format for the key=value tail ("" when there is none).
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

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

extern int log_level_current;

void log_set_level(enum log_level level);
int log_parse_level(const char *name, enum log_level *out);
void log_emit(enum log_level level, const char *msg, const char *kvfmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_at(lvl, msg, ...)                                                                      \
    do {                                                                                           \
        if ((int)(lvl) <= log_level_current)                                                       \
            log_emit((lvl), (msg), __VA_ARGS__);                                                   \
    } while (0)

#define log_error(msg, ...) log_at(LOG_ERROR, msg, __VA_ARGS__)
#define log_warn(msg, ...)  log_at(LOG_WARN, msg, __VA_ARGS__)
#define log_info(msg, ...)  log_at(LOG_INFO, msg, __VA_ARGS__)
#define log_debug(msg, ...) log_at(LOG_DEBUG, msg, __VA_ARGS__)

#endif
