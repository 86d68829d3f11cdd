/*
 * strbuf.c - see strbuf.h. Allocation failure aborts (xrealloc).
 */
#include "strbuf.h"
#include "util.h"

#include <stdarg.h>
#include <stdio.h>

void strbuf_init(struct strbuf *b, size_t cap)
{
    b->cap = cap ? cap : 64;
    b->s = xmalloc(b->cap);
    b->s[0] = '\0';
    b->len = 0;
}

void strbuf_printf(struct strbuf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n >= 0 && (size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        b->cap = b->cap * 2 + (n > 0 ? (size_t)n : 0);
        b->s = xrealloc(b->s, b->cap);
    }
}
