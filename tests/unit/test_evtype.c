/*
 * test_evtype.c - the types file: what it may say, what each mistake is
 * called, and what a loaded type derives (topic, table, text layout, token
 * limits, ballot ranges, the chars bitmap). JSON in this file is written
 * with ' for " (json() swaps them) so the rows stay readable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <unistd.h>

#include "corpus.h"
#include "event.h"
#include "evtype.h"
#include "util.h"

/* s with every ' made a " (so \' in a row is an escaped quote in the JSON). */
static char *json(const char *s)
{
    char *out = xstrdup(s);

    for (char *p = out; *p; p++)
        if (*p == '\'')
            *p = '"';
    return out;
}

/* The set parsed from s (quote-swapped), or NULL with err. */
static struct evtypes *parse(const char *s, char *err, size_t errsize)
{
    char *buf = json(s);
    struct evtypes *set = evtypes_parse(buf, strlen(buf), "types.json", err, errsize);

    free(buf);
    return set;
}

static void expect_error(const char *s, const char *want)
{
    char err[1024] = "";
    struct evtypes *set = parse(s, err, sizeof(err));

    if (set) {
        evtypes_free(set);
        fail_msg("accepted: %s (want an error with: %s)", s, want);
    }
    if (strncmp(err, "types.json:", 11) != 0 || !strstr(err, want))
        fail_msg("%s\n  got:  %s\n  want: %s", s, err, want);
}

/* One type "t" with the given body, and one field "a" typed by spec. */
#define TYPE(body)  "{'types':{'t':{" body "}}}"
#define FIELD(spec) TYPE("'fields':{'a':" spec "},'key':['a']")

/* Each bad file and a part of its error: the place and the problem. */
static const struct {
    const char *json, *want;
} bad_rows[] = {
    /* syntax, before any meaning */
    {"", "types.json:1:1: unexpected end of input"},
    {"{'types':{}} x", "types.json:1:14: unexpected bytes after the JSON value"},
    {"{'types':\n {'t': {'fields': {'a': 'id',}}}}", "types.json:2:30: object keys must be"},
    {TYPE("'fields':{'a':'id','a':'int'},'key':['a']"), "types.json:1:35: \"a\" is given twice"},
    {FIELD("{'kind':'enum','values':['a\\u0000']}"), "types.json:1:55: a string holds \\u0000"},
    /* the top level */
    {"[1]", "types.json: the file must be one JSON object"},
    {"{}", "types.json: \"types\" is required"},
    {"{'types':[]}", "\"types\" is required"},
    {"{'types':{}}", "\"types\" is empty"},
    {"{'types':{},'typs':1}", "types.json: unknown attribute \"typs\" (allowed: types)"},
    /* a type's name and attributes */
    {"{'types':{'Poll':{}}}", "type \"Poll\": the name is not a plain identifier"},
    {"{'types':{'a23456789012345678901234567890123':{}}}", "the name is not a plain"},
    {"{'types':{'1a':{}}}", "type \"1a\": the name is not a plain identifier"},
    {"{'types':{'vote':{'fields':{'a':'id'},'key':['a']}}}", "the built-in type's"},
    {"{'types':{'t':1}}", "type \"t\": must be an object"},
    {TYPE("'fields':{'a':'id'},'keys':['a']"),
     "type \"t\": unknown attribute \"keys\" (allowed: fields, key, identity, counts, ballot, "
     "topic, table)"},
    {TYPE("'key':['a']"), "type \"t\": \"fields\" is required"},
    {TYPE("'fields':[],'key':['a']"), "\"fields\" must be an object"},
    {TYPE("'fields':{},'key':['a']"), "\"fields\" must hold 1 to 16 fields, not 0"},
    /* fields */
    {TYPE("'fields':{'Bad':'id'},'key':['Bad']"), "field \"Bad\": the name is not a plain"},
    {TYPE("'fields':{'event_id':'id'},'key':['event_id']"),
     "field \"event_id\": the name is reserved"},
    {TYPE("'fields':{'ts':'int'},'key':['ts']"), "field \"ts\": the name is reserved"},
    {TYPE("'fields':{'created_at':'int'},'key':['created_at']"), "is reserved"},
    {FIELD("'float'"), "field \"a\": unknown kind \"float\" (kinds: id, int, string, enum)"},
    {FIELD("'enum'"), "field \"a\": an enum needs its values"},
    {FIELD("null"), "field \"a\": must be a kind name"},
    {FIELD("{'kind':'int','maxlen':3}"),
     "type \"t\": field \"a\": unknown attribute \"maxlen\" (allowed: kind, min, max, "
     "max_length, chars, values)"},
    {FIELD("{'min':1}"), "field \"a\": \"kind\" is required"},
    {FIELD("{'kind':'string','min':1}"), "\"min\" does not apply to kind string (only to int)"},
    {FIELD("{'kind':'id','max':5}"), "\"max\" does not apply to kind id"},
    {FIELD("{'kind':'int','values':[1]}"), "\"values\" does not apply to kind int"},
    {FIELD("{'kind':'int','min':5,'max':3}"), "\"min\" 5 is above \"max\" 3"},
    {FIELD("{'kind':'int','min':1.5}"), "\"min\" must be an integer"},
    {FIELD("{'kind':'int','max':9223372036854775808}"), "\"max\" must be an integer"},
    {FIELD("{'kind':'int','max':'7'}"), "\"max\" must be an integer"},
    {FIELD("{'kind':'string','max_length':0}"), "\"max_length\" must be an integer from 1 to 256"},
    {FIELD("{'kind':'string','max_length':257}"), "from 1 to 256"},
    {FIELD("{'kind':'string','chars':''}"), "\"chars\" \"\" is empty"},
    {FIELD("{'kind':'string','chars':5}"), "\"chars\" must be a string"},
    {FIELD("{'kind':'string','chars':'z-a'}"), "has the range z-a backwards"},
    {FIELD("{'kind':'string','chars':' -~'}"), "allows byte 0x22"},
    {FIELD("{'kind':'string','chars':'a\\\\'}"), "allows byte 0x5c"},
    {FIELD("{'kind':'string','chars':'a\\t'}"), "allows byte 0x09"},
    {FIELD("{'kind':'string','chars':'\xc3\xa9'}"), "allows byte 0xc3"},
    {FIELD("{'kind':'string','chars':'a-z:'}"),
     "field \"a\": is in the key, so its \"chars\" may not allow ':'"},
    /* enums */
    {FIELD("{'kind':'enum'}"), "\"values\" must be a list of 1 to 64 integers or strings"},
    {FIELD("{'kind':'enum','values':[]}"), "\"values\" must be a list of 1 to 64"},
    {FIELD("{'kind':'enum','values':[true]}"), "\"values\" must be a list of 1 to 64"},
    {FIELD("{'kind':'enum','values':[1,'a']}"), "\"values\" mixes integers and other values"},
    {FIELD("{'kind':'enum','values':['a',1]}"), "\"values\" mixes strings and other values"},
    {FIELD("{'kind':'enum','values':['a','b','a']}"), "value \"a\" is listed twice"},
    {FIELD("{'kind':'enum','values':[1,-1,1]}"), "value 1 is listed twice"},
    {FIELD("{'kind':'enum','values':['']}"), "value \"\" must be 1 to 256 characters"},
    {FIELD("{'kind':'enum','values':['a\\'b']}"), "holds byte 0x22"},
    {FIELD("{'kind':'enum','values':['a:b']}"), "is in the key, so value \"a:b\" may not hold"},
    {FIELD("{'kind':'enum','values':[1.5]}"), "\"values\" must be a list of 1 to 64"},
    /* key, identity, counts */
    {TYPE("'fields':{'a':'id'}"), "type \"t\": \"key\" is required"},
    {TYPE("'fields':{'a':'id'},'key':'a'"), "\"key\" must be a list of 1 to 4 field names"},
    {TYPE("'fields':{'a':'id'},'key':[]"), "\"key\" must be a list of 1 to 4 field names"},
    {TYPE("'fields':{'a':'id','b':'id','c':'id','d':'id','e':'id'},"
          "'key':['a','b','c','d','e']"),
     "\"key\" must be a list of 1 to 4"},
    {"{'types':{'poll_answer':{'fields':{'poll_id':'id','user_id':'id','option_id':'int'},"
     "'key':['pol_id','user_id']}}}",
     "types.json: type \"poll_answer\": key names \"pol_id\", not a field of the type "
     "(fields: poll_id, user_id, option_id)"},
    {TYPE("'fields':{'a':'id'},'key':['a','a']"), "key names \"a\" twice"},
    {TYPE("'fields':{'a':'id'},'key':[1]"), "key must name fields by strings"},
    {TYPE("'fields':{'a':'id','n':'int'},'key':['a'],'identity':'n'"),
     "identity \"n\" must be an id field"},
    {TYPE("'fields':{'a':'id'},'key':['a'],'identity':'u'"), "identity names \"u\", not a"},
    {TYPE("'fields':{'a':'id','b':'id'},'key':['a'],'counts':['b','b']"),
     "counts names \"b\" twice"},
    {TYPE("'fields':{'a':'id','b':'id','c':'id','d':'id','e':'id'},'key':['a'],"
          "'counts':['a','b','c','d','e']"),
     "\"counts\" must be a list of 0 to 4 field names"},
    /* ballot */
    {TYPE("'fields':{'a':'id','s':'string'},'key':['a'],'ballot':{'field':'s','values':'1'}"),
     "ballot field \"s\" must be an id or int field"},
    {TYPE("'fields':{'a':'id'},'key':['a'],'ballot':{'field':'a','value':'1'}"),
     "unknown attribute \"value\" (allowed: field, values)"},
    {TYPE("'fields':{'a':'id'},'key':['a'],'ballot':{'field':'a'}"),
     "\"ballot\" needs \"field\" and \"values\""},
    {TYPE("'fields':{'a':'id'},'key':['a'],'ballot':'1-4'"), "\"ballot\" must be an object"},
    {TYPE("'fields':{'a':'id'},'key':['a'],'ballot':{'field':'a','values':[1]}"),
     "ballot \"values\" must be a string"},
    {TYPE("'fields':{'a':'id'},'key':['a'],'ballot':{'field':'a','values':'4-1'}"),
     "ballot values \"4-1\" of \"a\": not like 1-4,7"},
    {TYPE("'fields':{'a':'id'},'key':['a'],'ballot':{'field':'a','values':'0-2'}"),
     "0-2 is outside 1..9223372036854775807"},
    {TYPE("'fields':{'a':'id','n':{'kind':'int','min':-5,'max':5}},'key':['a'],"
          "'ballot':{'field':'n','values':'-6--1'}"),
     "ballot values \"-6--1\" of \"n\": -6--1 is outside -5..5"},
    {TYPE("'fields':{'a':'id'},'key':['a'],'ballot':{'field':'a','values':'1,x'}"),
     "ballot values \"1,x\" of \"a\": not like 1-4,7"},
    {TYPE("'fields':{'a':'id'},'key':['a'],'ballot':{'field':'a','values':''}"), "not like"},
    {TYPE("'fields':{'a':'id'},'key':['a'],'ballot':{'field':'a','values':'1,'}"), "not like"},
    {TYPE("'fields':{'a':'id'},'key':['a'],'ballot':{'field':'a','values':'1;2'}"), "not like"},
    /* topics and tables */
    {TYPE("'fields':{'a':'id'},'key':['a'],'topic':'votes'"),
     "type \"t\": topic \"votes\" is already type \"vote\"'s"},
    {TYPE("'fields':{'a':'id'},'key':['a'],'table':'votes'"),
     "table \"votes\" is already type \"vote\"'s"},
    {"{'types':{'a':{'fields':{'a':'id'},'key':['a'],'topic':'bs'},"
     "'b':{'fields':{'a':'id'},'key':['a']}}}",
     "type \"b\": topic \"bs\" is already type \"a\"'s"},
    {"{'types':{'a':{'fields':{'a':'id'},'key':['a']},"
     "'b':{'fields':{'a':'id'},'key':['a'],'table':'as'}}}",
     "type \"b\": table \"as\" is already type \"a\"'s"},
    {"{'types':{'a':{'fields':{'a':'id'},'key':['a']},"
     "'b':{'fields':{'a':'id'},'key':['a'],'topic':'as'}}}",
     "type \"b\": topic \"as\" is already type \"a\"'s"},
    {TYPE("'fields':{'a':'id'},'key':['a'],'topic':'a b'"), "topic \"a b\" is not a Kafka"},
    {TYPE("'fields':{'a':'id'},'key':['a'],'topic':'..'"), "is not a Kafka topic name"},
    {TYPE("'fields':{'a':'id'},'key':['a'],'topic':''"), "is not a Kafka topic name"},
    {TYPE("'fields':{'a':'id'},'key':['a'],'table':'T'"), "table \"T\" is not a plain"},
    {TYPE("'fields':{'a':'id'},'key':['a'],'table':3"), "table 3 is not a plain identifier"},
    {TYPE("'fields':{'a':'id'},'key':['a'],'table':'tadak_identity'"), "tadak's own"},
    /* limits derived from the whole type */
    {TYPE("'fields':{'a':{'kind':'string','max_length':190}},'key':['a']"),
     "its token can be 192 bytes long, more than 191"},
    {TYPE("'fields':{'a':'id','b':{'kind':'string','max_length':256},"
          "'c':{'kind':'string','max_length':256},'d':{'kind':'string','max_length':256},"
          "'e':{'kind':'string','max_length':256}},'key':['a']"),
     "its string fields need 1028 bytes (max_length + 1 each), more than 1024"},
};

static void test_bad_files(void **state)
{
    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bad_rows); i++)
        expect_error(bad_rows[i].json, bad_rows[i].want);
}

/* A type "t" whose n fields f0.. are ids, keyed by f0. */
static void many_fields(char *buf, size_t size, int n)
{
    size_t used = (size_t)snprintf(buf, size, "{'types':{'t':{'fields':{");

    for (int i = 0; i < n; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s'f%d':'id'", i ? "," : "", i);
    snprintf(buf + used, size - used, "},'key':['f0']}}}");
}

/* A type "t" keyed by id "a" with a ballot of the n values from, from + step, ... */
static void many_ballot(char *buf, size_t size, int n, int from, int step)
{
    size_t used = (size_t)snprintf(
        buf, size,
        "{'types':{'t':{'fields':{'a':'id'},'key':['a'],'ballot':{'field':'a','values':'");

    for (int i = 0; i < n; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%d", i ? "," : "", from + i * step);
    snprintf(buf + used, size - used, "'}}}}");
}

/* Limits that take many members: 16 fields, 64 enum values, 64 ballot ranges. */
static void test_count_limits(void **state)
{
    char buf[4096], err[512];
    size_t used;
    struct evtypes *set;

    (void)state;
    many_fields(buf, sizeof(buf), 17);
    expect_error(buf, "\"fields\" must hold 1 to 16 fields, not 17");
    many_fields(buf, sizeof(buf), 16);
    set = parse(buf, err, sizeof(err));
    assert_non_null(set);
    assert_int_equal(evtypes_at(set, 1)->nfields, 16);
    evtypes_free(set);

    used = (size_t)snprintf(buf, sizeof(buf),
                            "{'types':{'t':{'fields':{'a':'id','e':{'kind':"
                            "'enum','values':[");
    for (int i = 0; i < 65; i++)
        used += (size_t)snprintf(buf + used, sizeof(buf) - used, "%s%d", i ? "," : "", i);
    snprintf(buf + used, sizeof(buf) - used, "]}},'key':['a']}}}");
    expect_error(buf, "\"values\" must be a list of 1 to 64");

    many_ballot(buf, sizeof(buf), 65, 1, 2);
    expect_error(buf, "more than 64 ranges");
    many_ballot(buf, sizeof(buf), 64, 1, 2);
    set = parse(buf, err, sizeof(err));
    assert_non_null(set);
    assert_int_equal(evtypes_at(set, 1)->nballot, 64);
    assert_int_equal(evtypes_at(set, 1)->ballot[63].lo, 127);
    evtypes_free(set);
    /* Touching values merge: 1..130 as 130 items is one range. */
    many_ballot(buf, sizeof(buf), 130, 1, 1);
    set = parse(buf, err, sizeof(err));
    assert_non_null(set);
    assert_int_equal(evtypes_at(set, 1)->nballot, 1);
    assert_int_equal(evtypes_at(set, 1)->ballot[0].lo, 1);
    assert_int_equal(evtypes_at(set, 1)->ballot[0].hi, 130);
    evtypes_free(set);
}

/* The longest token that fits: prefix "t" + ":" + 189 characters + NUL = 192. */
static void test_token_limit_edge(void **state)
{
    char err[512];
    struct evtypes *set;

    (void)state;
    set = parse(TYPE("'fields':{'a':{'kind':'string','max_length':189}},'key':['a']"), err,
                sizeof(err));
    assert_non_null(set);
    evtypes_free(set);
    /* Four int64 keys under a 32-byte name: 32 + 4 * 21 = 116, well inside. */
    set = parse("{'types':{'a2345678901234567890123456789012':{'fields':{'a':'int','b':'int',"
                "'c':'int','d':'int'},'key':['a','b','c','d']}}}",
                err, sizeof(err));
    assert_non_null(set);
    evtypes_free(set);
    /* Three strings of 256 and one of 252: 3 * 257 + 253 = 1024, exactly the limit. */
    set =
        parse(TYPE("'fields':{'a':'id','b':{'kind':'string','max_length':256},"
                   "'c':{'kind':'string','max_length':256},'d':{'kind':'string','max_length':256},"
                   "'e':{'kind':'string','max_length':252}},'key':['a']"),
              err, sizeof(err));
    if (!set)
        fail_msg("%s", err);
    assert_int_equal(evtypes_at(set, 1)->text_size, EVTYPE_TEXT_MAX);
    assert_int_equal(evtypes_at(set, 1)->fields[4].text_off, 3 * 257);
    evtypes_free(set);
}

static void test_vote_only(void **state)
{
    char err[128] = "";
    const char *paths[] = {NULL, ""};

    (void)state;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(paths); i++) {
        struct evtypes *set = evtypes_load(paths[i], err, sizeof(err));
        const struct evtype *v;

        assert_non_null(set);
        assert_int_equal(evtypes_count(set), 1);
        v = evtypes_at(set, 0);
        assert_ptr_equal(v, evtype_vote());
        assert_ptr_equal(evtypes_find(set, "vote"), v);
        assert_null(evtypes_find(set, "like"));
        assert_null(evtypes_at(set, 1));
        assert_string_equal(v->token_prefix, "vote_lock");
        assert_string_equal(v->topic, "votes");
        assert_string_equal(v->table, "votes");
        assert_int_equal(evtype_field(v, "candidate_id"), 1);
        assert_int_equal(v->identity, 0);
        assert_int_equal(v->ballot_field, -1);
        assert_true(v->extra_fields_ok);
        evtypes_free(set);
    }
}

static void check_ids(const struct evtype *t, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int f = evtype_field(t, names[i]);
        assert_true(f >= 0);
        assert_int_equal(t->fields[f].kind, EVF_ID);
        assert_int_equal(t->fields[f].min, 1);
        assert_true(t->fields[f].max == INT64_MAX);
    }
}

static void check_poll_answer(const struct evtype *t)
{
    static const char *const ids[] = {"poll_id", "user_id"};

    assert_string_equal(t->name, "poll_answer");
    assert_string_equal(t->token_prefix, "poll_answer");
    assert_string_equal(t->topic, "poll_answers");
    assert_string_equal(t->table, "poll_answers");
    assert_int_equal(t->nfields, 3);
    check_ids(t, ids, 2);
    assert_string_equal(t->fields[0].name, "poll_id");
    assert_string_equal(t->fields[2].name, "option_id");
    assert_int_equal(t->fields[2].kind, EVF_INT);
    assert_int_equal(t->fields[2].min, 1);
    assert_int_equal(t->fields[2].max, 64);
    assert_int_equal(t->nkey, 2);
    assert_int_equal(t->key[0], 0);
    assert_int_equal(t->key[1], 1);
    assert_int_equal(t->identity, 1);
    assert_int_equal(t->ncounts, 2);
    assert_int_equal(t->counts[0], 2);
    assert_int_equal(t->counts[1], 0);
    assert_int_equal(t->ballot_field, -1);
    assert_int_equal(t->nballot, 0);
    assert_int_equal(t->text_size, 0);
    assert_false(t->extra_fields_ok);
}

static void check_like_rsvp(const struct evtype *like, const struct evtype *rsvp)
{
    static const char *const like_ids[] = {"post_id", "user_id"};
    static const char *const rsvp_ids[] = {"gathering_id", "user_id"};
    const struct evfield *answer = &rsvp->fields[2];

    assert_string_equal(like->topic, "likes");
    assert_string_equal(like->table, "likes");
    assert_int_equal(like->nfields, 2);
    check_ids(like, like_ids, 2);
    assert_int_equal(like->nkey, 2);
    assert_int_equal(like->identity, 1);
    assert_int_equal(like->ncounts, 1);
    assert_int_equal(like->counts[0], 0);

    assert_string_equal(rsvp->topic, "rsvps");
    assert_string_equal(rsvp->table, "rsvps");
    assert_string_equal(rsvp->token_prefix, "rsvp");
    check_ids(rsvp, rsvp_ids, 2);
    assert_string_equal(answer->name, "answer");
    assert_int_equal(answer->kind, EVF_ENUM_STRING);
    assert_int_equal(answer->nenum, 3);
    assert_string_equal(answer->enum_str[0], "yes");
    assert_string_equal(answer->enum_str[1], "no");
    assert_string_equal(answer->enum_str[2], "maybe");
    assert_null(answer->enum_int);
    assert_int_equal(rsvp->key[0], 0);
    assert_int_equal(rsvp->key[1], 1);
    assert_int_equal(rsvp->identity, 1);
    assert_int_equal(rsvp->ncounts, 2);
    assert_int_equal(rsvp->counts[0], 2);
    assert_int_equal(rsvp->counts[1], 0);
    assert_int_equal(rsvp->text_size, 0); /* an enum holds its index, not text */
}

static void test_example_file(void **state)
{
    char err[512] = "";
    struct evtypes *set = evtypes_load("../../examples/types.json", err, sizeof(err));

    (void)state;
    if (!set)
        fail_msg("examples/types.json: %s", err);
    assert_int_equal(evtypes_count(set), 4);
    assert_ptr_equal(evtypes_at(set, 0), evtype_vote());
    assert_ptr_equal(evtypes_find(set, "poll_answer"), evtypes_at(set, 1));
    assert_ptr_equal(evtypes_find(set, "like"), evtypes_at(set, 2));
    assert_ptr_equal(evtypes_find(set, "rsvp"), evtypes_at(set, 3));
    check_poll_answer(evtypes_at(set, 1));
    check_like_rsvp(evtypes_at(set, 2), evtypes_at(set, 3));
    evtypes_free(set);
}

/* Every kind, given both ways, and every default and derived value. */
static const char every_kind[] =
    "{'types':{'k':{'fields':{"
    "'i':'id','i2':{'kind':'id'},'n':'int','m':{'kind':'int','min':-5,'max':5},"
    "'s':'string','t':{'kind':'string','max_length':10,'chars':'a-c_-'},"
    "'d':{'kind':'string','chars':'0-9'},"
    "'e':{'kind':'enum','values':[3,-1,200]},'w':{'kind':'enum','values':['a b','c:d']}},"
    "'key':['i','t','e'],'identity':'i2','counts':['w','m','s'],"
    "'ballot':{'field':'m','values':'-5--3,-2,0-1,3'},'topic':'My.topic-1','table':'k_rows'}}}";

static void check_every_kind_fields(const struct evtype *t)
{
    assert_int_equal(t->nfields, 9);
    assert_int_equal(t->fields[0].kind, EVF_ID);
    assert_int_equal(t->fields[1].kind, EVF_ID);
    assert_int_equal(t->fields[1].min, 1);
    assert_int_equal(t->fields[2].kind, EVF_INT);
    assert_true(t->fields[2].min == INT64_MIN && t->fields[2].max == INT64_MAX);
    assert_int_equal(t->fields[3].min, -5);
    assert_int_equal(t->fields[3].max, 5);
    /* "s": the default string, 64 of A-Za-z0-9_.- */
    assert_int_equal(t->fields[4].kind, EVF_STRING);
    assert_int_equal(t->fields[4].max_length, 64);
    for (int ch = 0; ch < 128; ch++) {
        int want = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                   (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' || ch == '-';
        if (evfield_allows(&t->fields[4], (unsigned char)ch) != want)
            fail_msg("default chars: '%c' (%d) allowed=%d", ch, ch, !want);
    }
    assert_false(evfield_allows(&t->fields[4], 200));
    /* "t": a-c, _ and a trailing '-' that is itself */
    assert_int_equal(t->fields[5].max_length, 10);
    assert_true(evfield_allows(&t->fields[5], 'b') && evfield_allows(&t->fields[5], '-'));
    assert_true(evfield_allows(&t->fields[5], '_') && !evfield_allows(&t->fields[5], 'd'));
    assert_false(evfield_allows(&t->fields[5], 'A'));
    /* "d": the bitmap itself, bit c of byte c / 8: '0'..'7' fill byte 6, '8' '9' byte 7 */
    for (int b = 0; b < 16; b++)
        assert_int_equal(t->fields[6].chars[b], b == 6 ? 0xff : b == 7 ? 0x03 : 0);
    assert_int_equal(t->fields[7].kind, EVF_ENUM_INT);
    assert_int_equal(t->fields[7].nenum, 3);
    assert_int_equal(t->fields[7].enum_int[1], -1);
    assert_int_equal(t->fields[7].enum_int[2], 200);
    assert_null(t->fields[7].enum_str);
    assert_int_equal(t->fields[8].kind, EVF_ENUM_STRING);
    assert_string_equal(t->fields[8].enum_str[1], "c:d"); /* ':' is fine outside the key */
}

static void test_every_kind(void **state)
{
    char err[512] = "";
    struct evtypes *set = parse(every_kind, err, sizeof(err));
    const struct evtype *t;

    (void)state;
    if (!set)
        fail_msg("%s", err);
    t = evtypes_find(set, "k");
    assert_non_null(t);
    check_every_kind_fields(t);
    assert_string_equal(t->token_prefix, "k");
    assert_string_equal(t->topic, "My.topic-1");
    assert_string_equal(t->table, "k_rows");
    assert_int_equal(t->nkey, 3);
    assert_int_equal(t->key[1], 5);
    assert_int_equal(t->identity, 1);
    assert_int_equal(t->ncounts, 3);
    assert_int_equal(t->counts[0], 8);
    /* text: s at 0 (64 + 1), t at 65 (10 + 1), d at 76 (64 + 1) */
    assert_int_equal(t->fields[4].text_off, 0);
    assert_int_equal(t->fields[5].text_off, 65);
    assert_int_equal(t->fields[6].text_off, 76);
    assert_int_equal(t->text_size, 141);
    /* the ballot: -5..-3, -2 merge; 0..1; 3 */
    assert_int_equal(t->ballot_field, 3);
    assert_int_equal(t->nballot, 3);
    assert_true(t->ballot[0].lo == -5 && t->ballot[0].hi == -2);
    assert_true(t->ballot[1].lo == 0 && t->ballot[1].hi == 1);
    assert_true(t->ballot[2].lo == 3 && t->ballot[2].hi == 3);
    assert_true(evtype_on_ballot(t, -2) && evtype_on_ballot(t, 1) && evtype_on_ballot(t, 3));
    assert_false(evtype_on_ballot(t, -1) || evtype_on_ballot(t, 2) || evtype_on_ballot(t, 4));
    assert_true(evtype_on_ballot(evtype_vote(), 12345));
    assert_false(t->extra_fields_ok);
    evtypes_free(set);
}

/* Several types keep file order; identity and ballot default to none. */
static void test_defaults_and_order(void **state)
{
    char err[512] = "";
    struct evtypes *set = parse("{'types':{'zeta':{'fields':{'a':'id'},'key':['a']},"
                                "'alpha':{'fields':{'a':'id'},'key':['a'],'counts':[]}}}",
                                err, sizeof(err));

    (void)state;
    if (!set)
        fail_msg("%s", err);
    assert_int_equal(evtypes_count(set), 3);
    assert_string_equal(evtypes_at(set, 1)->name, "zeta");
    assert_string_equal(evtypes_at(set, 2)->name, "alpha");
    assert_string_equal(evtypes_at(set, 2)->topic, "alphas");
    assert_int_equal(evtypes_at(set, 1)->identity, -1);
    assert_int_equal(evtypes_at(set, 1)->ballot_field, -1);
    assert_int_equal(evtypes_at(set, 1)->ncounts, 0);
    assert_null(evtypes_find(set, "beta"));
    evtypes_free(set);
}

static void test_load_errors(void **state)
{
    char err[512] = "", want[256], path[] = "/tmp/test_evtype_XXXXXX";
    static const char bad[] = "{\n  \"types\": {\n    \"t\": {\"fields\": 1,}\n  }\n}\n";
    int fd;

    (void)state;
    assert_null(evtypes_load("/nonexistent/dir/types.json", err, sizeof(err)));
    snprintf(want, sizeof(want), "/nonexistent/dir/types.json: %s", strerror(ENOENT));
    assert_string_equal(err, want);

    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, bad, sizeof(bad) - 1), (ssize_t)(sizeof(bad) - 1));
    close(fd);
    assert_null(evtypes_load(path, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s:3:23: object keys must be double-quoted strings", path);
    assert_string_equal(err, want);
    unlink(path);

    assert_null(evtypes_load("/", err, sizeof(err)));
    snprintf(want, sizeof(want), "/: %s", strerror(EISDIR));
    assert_string_equal(err, want);
}

/* No JSONTestSuite file is a types file: each is refused, with its place or problem named. */
static void refuse_corpus_file(const struct corpus_file *f, void *arg)
{
    char err[512] = "";
    struct evtypes *set = evtypes_parse(f->buf, f->len, f->name, err, sizeof(err));

    (void)arg;
    if (set) {
        evtypes_free(set);
        fail_msg("%s was taken for a types file", f->name);
    }
    if (strncmp(err, f->name, strlen(f->name)) != 0 || err[strlen(f->name)] != ':')
        fail_msg("%s: the error does not start with the file's name: %s", f->name, err);
}

static void test_corpus_refused(void **state)
{
    (void)state;
    assert_true(corpus_each(refuse_corpus_file, NULL) >= 300);
}

/* A message stays one line whatever a name holds; a huge file is refused unread. */
static void test_message_hygiene(void **state)
{
    char err[512] = "";
    size_t big = 1024 * 1024 + 1;
    char *buf = xmalloc(big);

    (void)state;
    assert_null(parse("{'types':{'a\\nb':{}}}", err, sizeof(err)));
    assert_non_null(strstr(err, "type \"a?b\": the name is not a plain identifier"));
    assert_null(strchr(err, '\n'));
    memset(buf, ' ', big);
    assert_null(evtypes_parse(buf, big, "big.json", err, sizeof(err)));
    assert_string_equal(err, "big.json: larger than 1048576 bytes");
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vote_only),        cmocka_unit_test(test_example_file),
        cmocka_unit_test(test_every_kind),       cmocka_unit_test(test_defaults_and_order),
        cmocka_unit_test(test_bad_files),        cmocka_unit_test(test_count_limits),
        cmocka_unit_test(test_token_limit_edge), cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_corpus_refused),   cmocka_unit_test(test_message_hygiene),
    };
    return cmocka_run_group_tests_name("evtype", tests, NULL, NULL);
}
