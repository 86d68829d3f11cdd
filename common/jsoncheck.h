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
 *
 * RFC 8259 allows two things that readers disagree on, so a vote must not
 * hold them: an object with the same key twice (json-c keeps the last,
 * others the first or fail) and "\u0000" in a string (C strings end there,
 * so json-c's keys and strlen() see less than was sent). jsoncheck_ex()
 * reports where the first of each is, comparing keys after unescaping
 * ("a\u0062" is "ab"), in n log n per object; they do not make it fail,
 * so the caller decides which error comes first.
 *
 *   struct jsoncheck_strict st;
 *   jsoncheck_ex(buf, len, max_depth, &st, why, sizeof why)
 *       st.dup_key_at, st.nul_at: byte offset of the string, or JSONCHECK_NONE
 *
 * Bytes that passed go to json-c through one door, so every reader of
 * strict JSON (events, the types file) gets the same tree and reasons:
 *
 *   obj = jsoncheck_tree(buf, len, max_depth, &end, &why)
 *       json-c's tree (strict, UTF-8 checked), end = the byte after the
 *       value; or NULL with json-c's reason in why and the byte it stopped
 *       at in end. The caller frees the tree with json_object_put.
 */
#ifndef TADAK_JSONCHECK_H
#define TADAK_JSONCHECK_H

#include <stddef.h>
#include <stdint.h>

#define JSONCHECK_NONE SIZE_MAX

struct jsoncheck_strict {
    size_t dup_key_at; /* opening quote of the first key seen twice in one object */
    size_t nul_at;     /* opening quote of the first string holding \u0000 */
};

int jsoncheck(const char *buf, size_t len, int max_depth, char *why, size_t whysize);
int jsoncheck_ex(const char *buf, size_t len, int max_depth, struct jsoncheck_strict *strict,
                 char *why, size_t whysize);
struct json_object;
struct json_object *jsoncheck_tree(const char *buf, size_t len, int max_depth, size_t *end,
                                   const char **why);

#endif
