/*
 * strbuf.c - see strbuf.h. Allocation failure aborts (xrealloc).
 */
#include "strbuf.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

void strbuf_init(struct strbuf *b, size_t cap)
{
    b->cap = cap ? cap : 64;
    b->s = xmalloc(b->cap);
    b->s[0] = '\0';
    b->len = 0;
}

void strbuf_reserve(struct strbuf *b, size_t more)
{
    if (b->len + more + 1 <= b->cap && b->s)
        return;
    b->cap = (b->len + more + 1) * 2;
    b->s = xrealloc(b->s, b->cap);
    if (b->len == 0)
        b->s[0] = '\0';
}

void strbuf_append(struct strbuf *b, const char *s, size_t n)
{
    strbuf_reserve(b, n);
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void strbuf_putc(struct strbuf *b, char c)
{
    strbuf_reserve(b, 1);
    b->s[b->len++] = c;
    b->s[b->len] = '\0';
}

void strbuf_printf(struct strbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = b->s ? vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap) : vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) { /* an encoding error: nothing sensible to append, and no endless growth */
        if (b->s)
            b->s[b->len] = '\0';
        return;
    }
    if (b->s && (size_t)n < b->cap - b->len) {
        b->len += (size_t)n;
        return;
    }
    strbuf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}
