/*
 * jsoncheck.h - a strict RFC 8259 validator that runs before json-c.
 *
 * json-c is lenient even in strict mode (single-quoted keys, "-01", "2.",
 * NaN, raw tabs and newlines inside strings). A vote that is not JSON must
 * be rejected as such, so every payload passes this scanner first: grammar,
 * UTF-8 (no overlongs, no surrogates), and a nesting bound that keeps a
 * 10k-deep "[[[[" from costing more than a few comparisons.
 *
 *   jsoncheck(buf, len, max_depth, why, sizeof why)   0 valid, -1 not (why says where)
 */
#ifndef TADAK_JSONCHECK_H
#define TADAK_JSONCHECK_H

#include <stddef.h>

int jsoncheck(const char *buf, size_t len, int max_depth, char *why, size_t whysize);

#endif
