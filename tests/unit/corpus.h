/*
 * corpus.h - the bad-input corpus for the unit tests: JSONTestSuite's
 * test_parsing/ files (../shared/corpus, or TADAK_CORPUS_DIR), each read
 * whole and handed to a callback. Its name says what JSON readers must do
 * with it: y_ accept, n_ reject, i_ either.
 *
 *   static void check(const struct corpus_file *f, void *arg) { ... }
 *   size_t n = corpus_each(check, &state);   how many files; a missing
 *                                            corpus fails the test
 */
#ifndef TADAK_TEST_CORPUS_H
#define TADAK_TEST_CORPUS_H

#include <stddef.h>

struct corpus_file {
    const char *name; /* "y_array_empty.json" */
    const char *buf;  /* the bytes, NUL-terminated past len */
    size_t len;
};

size_t corpus_each(void (*fn)(const struct corpus_file *f, void *arg), void *arg);

#endif
