/*
 * ranges.c - "1-4,7" lists of integer ranges. See ranges.h.
 */
#include "ranges.h"
#include "util.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

static const char *skip_blank(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* An integer at *s ('-' only when signed), blanks around it skipped; advances *s. */
static int number(const char **s, int signed_ok, int64_t *out)
{
    char num[24];
    size_t n = 0;
    const char *p = skip_blank(*s);

    if (signed_ok && *p == '-')
        num[n++] = *p++;
    while (*p >= '0' && *p <= '9') {
        if (n + 1 >= sizeof(num))
            return -1;
        num[n++] = *p++;
    }
    num[n] = '\0';
    if (n == 0 || util_parse_i64(num, out) != 0)
        return -1;
    *s = skip_blank(p);
    return 0;
}

static int range_cmp(const void *a, const void *b)
{
    const struct range *x = a, *y = b;

    return x->lo < y->lo ? -1 : x->lo > y->lo;
}

/* Sorted, then each range folded into the previous one when they overlap or touch. */
static size_t merge(struct range *r, size_t n)
{
    size_t m = 0;

    qsort(r, n, sizeof(*r), range_cmp);
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && r[i].lo <= r[m - 1].hi + (r[m - 1].hi < INT64_MAX)) {
            if (r[i].hi > r[m - 1].hi)
                r[m - 1].hi = r[i].hi;
            continue;
        }
        r[m++] = r[i];
    }
    return m;
}

int ranges_parse(const char *spec, int64_t min, int64_t max, struct range *out, size_t cap,
                 size_t *n, char *errstr, size_t errsize)
{
    const char *s = spec;
    size_t k = 0;

    for (;;) {
        int64_t lo, hi;

        if (number(&s, min < 0, &lo) != 0)
            goto bad;
        hi = lo;
        if (*s == '-' && (s++, number(&s, min < 0, &hi) != 0 || hi < lo))
            goto bad;
        if (lo < min || hi > max) {
            snprintf(errstr, errsize, "%" PRId64 "-%" PRId64 " is outside %" PRId64 "..%" PRId64,
                     lo, hi, min, max);
            return -1;
        }
        /* Merging may make room: sort what we have when full, then go on. */
        if (k == cap && (k = merge(out, k)) == cap) {
            snprintf(errstr, errsize, "more than %zu ranges", cap);
            return -1;
        }
        out[k++] = (struct range){.lo = lo, .hi = hi};
        if (*s == '\0')
            break;
        if (*s++ != ',')
            goto bad;
    }
    *n = merge(out, k);
    return 0;
bad:
    snprintf(errstr, errsize,
             "not like 1-4,7 (values or ranges of values in %" PRId64 "..%" PRId64
             ", comma-separated)",
             min, max);
    return -1;
}

int ranges_has(const struct range *r, size_t n, int64_t v)
{
    for (size_t i = 0; i < n; i++)
        if (v >= r[i].lo && v <= r[i].hi)
            return 1;
    return 0;
}
