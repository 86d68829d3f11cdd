/*
 * testtypes.c - examples/types.json for the unit tests. See testtypes.h.
 */
#include "testtypes.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* The unit tests run in tests/unit. */
#define TESTTYPES_FILE "../../examples/types.json"

struct evtype testtypes_poll_answer(void)
{
    static struct evtypes *set; /* loaded once, kept for the process */
    const struct evtype *t;
    char err[256];

    if (!set && !(set = evtypes_load(TESTTYPES_FILE, err, sizeof(err))))
        fail_msg("%s: %s", TESTTYPES_FILE, err);
    if (!(t = evtypes_find(set, "poll_answer")))
        fail_msg("%s has no poll_answer", TESTTYPES_FILE);
    return *t;
}
