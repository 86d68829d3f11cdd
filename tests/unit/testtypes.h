/*
 * testtypes.h - the example event types for the unit tests.
 *
 * The tests that need a type beside the vote take poll_answer as
 * examples/types.json declares it (poll_id and user_id ids, the key,
 * identity user_id, option_id 1..64, counts option_id and poll_id), so
 * they test what a user would run, and the file stays loadable.
 *
 *   struct evtype t = testtypes_poll_answer();   a copy, free to change
 */
#ifndef TADAK_TESTTYPES_H
#define TADAK_TESTTYPES_H

#include "evtype.h"

struct evtype testtypes_poll_answer(void);

#endif
