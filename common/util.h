/*
 * util.h - the few helpers every tadak module leans on.
 *
 * Allocation failure is the one thing that aborts in tadak: xmalloc() and
 * friends never return NULL, so callers do not carry an error path for it.
 * Number parsing goes through util_parse_i64(), which refuses what the
 * libc shortcuts silently accept (trailing junk, overflow, empty input).
 *
 *   void *xmalloc(size_t n);  void *xcalloc(size_t n, size_t sz);
 *   void *xrealloc(void *p, size_t n);  char *xstrdup(const char *s);
 *   int util_parse_i64(const char *s, int64_t *out);        0 / -1
 *   size_t util_strlcpy(char *dst, const char *src, size_t size);
 *   int64_t util_now_ms(void);   monotonic milliseconds
 *   int64_t util_wall_ms(void);  wall-clock milliseconds since the epoch
 *
 *   uint64_t util_fnv1a64(data, len)  FNV-1a 64 (the standard offset and
 *                                     prime): for hash tables, not security
 *   size_t util_utf8_decode(s, avail, &cp)  1..4, the length of the valid
 *                                     UTF-8 sequence at s; 0 when it is not
 */
#ifndef TADAK_UTIL_H
#define TADAK_UTIL_H

#include <stddef.h>
#include <stdint.h>

void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t sz);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

int util_parse_i64(const char *s, int64_t *out);
size_t util_strlcpy(char *dst, const char *src, size_t size);
int64_t util_now_ms(void);
int64_t util_wall_ms(void);

uint64_t util_fnv1a64(const void *data, size_t len);
/*
 * The valid UTF-8 sequence at s[0, avail): its length (1 to 4) with its code
 * point in *cp, or 0 when it is not one (a stray continuation byte, an
 * overlong form, a surrogate, a code point past U+10FFFF, a sequence cut
 * short by avail; avail 0 too), *cp then untouched.
 */
size_t util_utf8_decode(const unsigned char *s, size_t avail, uint32_t *cp);
/*
 * Edit distance (optimal string alignment: a swap of two neighbours is one
 * edit) for names of at most 63 bytes; a longer one is "far" (64). For
 * "did you mean": options, topics.
 */
size_t util_edit_distance(const char *a, size_t na, const char *b, size_t nb);

#define UTIL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
