/*
 * strbuf.h - a growing, always NUL-terminated text buffer for building
 * responses (Prometheus text, JSON bodies) whose size is not known up front.
 *
 *   struct strbuf b;
 *   strbuf_init(&b, 256);
 *   strbuf_printf(&b, "{\"total\":%d}", n);
 *   ... b.s, b.len ...; free(b.s) or hand b.s over to its new owner
 */
#ifndef TADAK_STRBUF_H
#define TADAK_STRBUF_H

#include <stddef.h>

struct strbuf {
    char *s;
    size_t len, cap;
};

void strbuf_init(struct strbuf *b, size_t cap);
void strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
