/*
 * evtype.c - the built-in vote type and types read from a file. See evtype.h.
 */
#include "evtype.h"
#include "util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct evtypes {
    size_t n;
    struct evtype **types; /* [0] is the vote (not owned) */
};

static const struct evtype vote_type = {
    .name = "vote",
    .token_prefix = "vote_lock",
    .topic = "votes",
    .table = "votes",
    .nfields = 2,
    .fields = {{.name = "user_id", .kind = EVF_ID, .min = 1, .max = INT64_MAX},
               {.name = "candidate_id", .kind = EVF_ID, .min = 1, .max = INT64_MAX}},
    .nkey = 2,
    .key = {0, 1},
    .identity = 0,
    .ncounts = 1,
    .counts = {1},
    .ballot_field = -1,
    .extra_fields_ok = 1,
};

const struct evtype *evtype_vote(void)
{
    return &vote_type;
}

int evtype_field(const struct evtype *t, const char *name)
{
    for (size_t i = 0; i < t->nfields; i++)
        if (strcmp(t->fields[i].name, name) == 0)
            return (int)i;
    return -1;
}

int evtype_on_ballot(const struct evtype *t, int64_t v)
{
    if (t->ballot_field < 0)
        return 1;
    for (size_t i = 0; i < t->nballot; i++)
        if (v >= t->ballot[i].lo && v <= t->ballot[i].hi)
            return 1;
    return 0;
}

size_t evtypes_count(const struct evtypes *set)
{
    return set->n;
}

const struct evtype *evtypes_at(const struct evtypes *set, size_t i)
{
    return i < set->n ? set->types[i] : NULL;
}

const struct evtype *evtypes_find(const struct evtypes *set, const char *name)
{
    for (size_t i = 0; i < set->n; i++)
        if (strcmp(set->types[i]->name, name) == 0)
            return set->types[i];
    return NULL;
}

/* TODO(loader): the file. For now the vote only. */
struct evtypes *evtypes_parse(const char *json, size_t len, const char *origin, char *errstr,
                              size_t errsize)
{
    (void)json;
    (void)len;
    snprintf(errstr, errsize, "%s: types files are not read yet", origin);
    return NULL;
}

struct evtypes *evtypes_load(const char *path, char *errstr, size_t errsize)
{
    struct evtypes *set;

    if (path && *path)
        return evtypes_parse("", 0, path, errstr, errsize);
    set = xcalloc(1, sizeof(*set));
    set->types = xcalloc(1, sizeof(*set->types));
    set->types[0] = (struct evtype *)&vote_type;
    set->n = 1;
    return set;
}

void evtypes_free(struct evtypes *set)
{
    if (!set)
        return;
    free(set->types);
    free(set);
}
