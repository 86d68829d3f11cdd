/*
 * ranges.h - lists of integer ranges written like "1-4,7".
 *
 * The vote's ballot (--candidates) and a type's ballot in a types file
 * are the same kind of list: values and ranges of values, comma-separated,
 * blanks allowed around them. One parser reads both, sorts the ranges and
 * merges those that overlap or touch, so a lookup is a short scan and a
 * listing comes out in order.
 *
 *   ranges_parse("1-4, 7", min, max, out, cap, &n, err, sizeof err)   0 / -1
 *       every value in min..max (a '-' before a number is its sign when
 *       min < 0: "-5--3" is -5..-3); at most cap ranges after merging
 *   ranges_has(r, n, v)              1 when v is in one of the ranges
 */
#ifndef TADAK_RANGES_H
#define TADAK_RANGES_H

#include <stddef.h>
#include <stdint.h>

struct range {
    int64_t lo, hi; /* both included, lo <= hi */
};

int ranges_parse(const char *spec, int64_t min, int64_t max, struct range *out, size_t cap,
                 size_t *n, char *errstr, size_t errsize);
int ranges_has(const struct range *r, size_t n, int64_t v);

#endif
