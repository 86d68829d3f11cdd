/*
 * strbuf.h - a growing, always NUL-terminated text buffer for building
 * responses (Prometheus text, JSON bodies) whose size is not known up front.
 *
 *   struct strbuf b;
 *   strbuf_init(&b, 256);
 *   strbuf_printf(&b, "{\"total\":%d}", n);
 *   strbuf_reserve(&b, n)   room for n more bytes (and the NUL): fill
 *                           b.s + b.len yourself, then add to b.len and
 *                           terminate (the batch builders of store.c do)
 *   strbuf_append(&b, s, n) / strbuf_putc(&b, c)
 *   ... b.s, b.len ...; free(b.s) or hand b.s over to its new owner
 *
 * strbuf_init is optional: a zeroed strbuf grows on first use. A format
 * vsnprintf cannot render (an encoding error) appends nothing.
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
void strbuf_reserve(struct strbuf *b, size_t more);
void strbuf_append(struct strbuf *b, const char *s, size_t n);
void strbuf_putc(struct strbuf *b, char c);

#endif
