"""tadak-consumer --type: an event type from a types file, consumed into its
own table with the vote's guarantees.

The types file (written per test, its topics the test's own) declares
poll_answer (one answer per user per poll: key poll_id + user_id, payload
option_id 1..64) and rsvp (strings and enums of strings, stored as text).
`migrate` makes every type's table from the file and refuses one whose
columns disagree; a consumer of poll_answer records one row per key from
bursts of copies, across a SIGKILL and a replay into a fresh group,
dead-letters what does not fit the type with the field named, and runs
beside a vote consumer on the same PostgreSQL and Redis.

Each test fails on a consumer that parses every message as a vote, writes
into votes, builds its INSERT or DDL for the vote's columns, or alters a
table it finds.
"""
import json
import random
import signal
import subprocess

import psycopg

from conftest import consume_all, create_topic, produce, run, unique, wait_for
from test_consumer import TIMEOUT, consume, summary_of, token as vote_token, vote

IDLE = "3"


def types_file(tmp_path, poll_topic, rsvp_topic=None):
    """poll_answer (and rsvp) with the test's own topics; the path."""
    doc = {"types": {
        "poll_answer": {
            "fields": {"poll_id": "id", "user_id": "id",
                       "option_id": {"kind": "int", "min": 1, "max": 64}},
            "key": ["poll_id", "user_id"],
            "identity": "user_id",
            "counts": ["option_id", "poll_id"],
            "topic": poll_topic,
        },
        "rsvp": {
            "fields": {"meetup_id": "id", "user_id": "id",
                       "answer": {"kind": "enum", "values": ["yes", "no", "maybe"]},
                       "note": {"kind": "string", "max_length": 40, "chars": "a-z ,{}"}},
            "key": ["meetup_id", "user_id"],
            "topic": rsvp_topic or unique("t_rsvp"),
        },
    }}
    path = tmp_path / "types.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def answer(poll, user, option):
    return json.dumps({"poll_id": poll, "user_id": user, "option_id": option}).encode()


def answer_token(poll, user):
    return f"poll_answer:{poll}:{user}"


def type_args(bins, env, db, prefix, types, type_name="poll_answer", group=None, extra=(),
              idle=IDLE):
    """A consumer of one type; its topic is the type's (no --topic)."""
    idle_args = ["--idle-exit", idle] if idle else []
    return [bins.consumer,
            "--brokers", env["KAFKA_BOOTSTRAP_SERVERS"],
            "--redis-url", env["REDIS_URL"],
            "--database-url", db.url,
            "--types", str(types), "--type", type_name,
            "--group", group or unique("g_types"),
            "--key-prefix", prefix,
            "--from-beginning", *idle_args, *extra]


def consume_type(bins, env, db, prefix, types, **kw):
    p = run(type_args(bins, env, db, prefix, types, **kw), timeout=TIMEOUT)
    assert p.returncode == 0, f"consumer exited {p.returncode}:\n{p.stderr[-3000:]}"
    return summary_of(p.stdout), p.stderr


def migrate(bins, db, types):
    return run([bins.consumer, "migrate", "--database-url", db.url, "--types", str(types)])


def columns(db, table):
    return dict(db.rows("select column_name, data_type from information_schema.columns "
                        "where table_name = %s", (table,)))


def burst(keys, copies=5, seed=25):
    """Each key's answer `copies` times, shuffled: (values, kafka keys)."""
    events = [(answer(p, u, (p + u) % 64 + 1), answer_token(p, u).encode())
              for p, u in keys for _ in range(copies)]
    random.Random(seed).shuffle(events)
    return [v for v, _ in events], [k for _, k in events]


def poll_rows(db):
    return db.rows("select token, poll_id, user_id, option_id from poll_answers")


def poll_count(db):
    """Rows of poll_answers; 0 before the consumer made the table."""
    try:
        return db.rows("select count(*) from poll_answers")[0][0]
    except psycopg.errors.UndefinedTable:
        return 0


# ---------------------------------------------------------------- migrate

def test_migrate_creates_every_types_table(bins, db, tmp_path):
    types = types_file(tmp_path, unique("t_poll"))
    for _ in range(2):  # idempotent: the second run finds everything there
        p = migrate(bins, db, types)
        assert p.returncode == 0, p.stderr
    assert columns(db, "poll_answers") == {
        "id": "bigint", "token": "text", "poll_id": "bigint", "user_id": "bigint",
        "option_id": "bigint", "event_id": "uuid", "kafka_partition": "integer",
        "kafka_offset": "bigint", "created_at": "timestamp with time zone"}
    assert columns(db, "rsvps")["answer"] == "text" and columns(db, "rsvps")["note"] == "text"
    assert columns(db, "votes")["candidate_id"] == "bigint"  # the vote's table too
    indexes = dict(db.rows("select indexname, indexdef from pg_indexes "
                           "where tablename = 'poll_answers'"))
    assert "(option_id)" in indexes["poll_answers_option_id_idx"]
    assert "(poll_id)" in indexes["poll_answers_poll_id_idx"]
    assert any("UNIQUE" in d and "(token)" in d for d in indexes.values()), indexes
    assert db.rows("select count(*) from tadak_identity")[0][0] == 1


def test_migrate_refuses_a_table_whose_columns_disagree(bins, db, tmp_path):
    types = types_file(tmp_path, unique("t_poll"))
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("create table poll_answers (id bigserial primary key, "
                     "token text not null unique, poll_id bigint not null, "
                     "user_id bigint not null, option_id integer not null, "
                     "event_id uuid not null, kafka_partition int, kafka_offset bigint, "
                     "created_at timestamptz not null default now())")
        conn.execute("insert into poll_answers (token, poll_id, user_id, option_id, event_id) "
                     "values ('poll_answer:1:1', 1, 1, 3, gen_random_uuid())")
    p = migrate(bins, db, types)
    assert p.returncode != 0
    err = p.stderr
    assert "table poll_answers does not fit" in err, err
    assert "option_id is integer, the type wants bigint" in err, err
    assert "never alters" in err and "ALTER TABLE poll_answers" in err, err
    # Untouched, and nothing else of the migration was committed.
    assert columns(db, "poll_answers")["option_id"] == "integer"
    assert poll_rows(db) == [("poll_answer:1:1", 1, 1, 3)]
    assert columns(db, "rsvps") == {} and columns(db, "votes") == {}
    # A column missing is named the same way.
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("alter table poll_answers drop column option_id")
    p = migrate(bins, db, types)
    assert p.returncode != 0 and "lacks column(s) option_id" in p.stderr, p.stderr


def test_topics_creates_the_types_topic(bins, env, tmp_path):
    topic = unique("t_poll")
    types = types_file(tmp_path, topic)
    p = run([bins.consumer, "topics", "--brokers", env["KAFKA_BOOTSTRAP_SERVERS"],
             "--types", str(types), "--type", "poll_answer", "--partitions", "2"])
    assert p.returncode == 0, p.stderr
    assert f"created {topic} partitions=2" in p.stdout, p.stdout
    assert f"created {topic}.dlq partitions=2" in p.stdout, p.stdout


def test_topics_of_every_type_without_type(bins, env, tmp_path):
    """`topics --types FILE` alone: every type's topic and dead-letter topic, the vote's too."""
    poll, rsvp = unique("t_poll"), unique("t_rsvp")
    types = types_file(tmp_path, poll, rsvp)
    p = run([bins.consumer, "topics", "--brokers", env["KAFKA_BOOTSTRAP_SERVERS"],
             "--types", str(types), "--partitions", "2"])
    assert p.returncode == 0, p.stderr
    for topic in (poll, f"{poll}.dlq", rsvp, f"{rsvp}.dlq"):
        assert f"created {topic} partitions=2" in p.stdout, p.stdout
    assert "votes partitions=" in p.stdout and "votes.dlq partitions=" in p.stdout, p.stdout


def test_unknown_type_and_bad_file_exit_2(bins, db, tmp_path):
    types = types_file(tmp_path, unique("t_poll"))
    p = run([bins.consumer, "--database-url", db.url, "--types", str(types), "--type", "like"])
    assert p.returncode == 2
    assert "like" in p.stderr and "vote" in p.stderr and "poll_answer" in p.stderr, p.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"types": {"x": {"fields": {"a": "id"}, "key": ["b"]}}}')
    p = run([bins.consumer, "--database-url", db.url, "--types", str(bad), "--type", "x"])
    assert p.returncode == 2 and str(bad) in p.stderr, p.stderr


# ---------------------------------------------------------------- consume

def test_burst_of_copies_one_row_per_key(bins, env, db, prefix, tmp_path):
    topic = unique("t_poll")
    create_topic(env, topic)
    types = types_file(tmp_path, topic)
    keys = [(p, u) for p in range(1, 5) for u in range(1, 51)]  # 200 keys
    values, kkeys = burst(keys)
    produce(env, topic, values, keys=kkeys)
    s, err = consume_type(bins, env, db, prefix, types)
    assert s["consumed"] == 5 * len(keys) and s["inserted"] == len(keys), s
    rows = poll_rows(db)
    assert len(rows) == len(keys)
    assert {r[0] for r in rows} == {answer_token(p, u) for p, u in keys}
    for tok, p, u, option in rows:
        assert tok == answer_token(p, u) and option == (p + u) % 64 + 1
    assert f"topic={topic}" in err and "table=poll_answers" in err
    # The vote's table was never the destination.
    assert db.count() == 0


def test_events_that_do_not_fit_are_dead_lettered(bins, env, db, prefix, tmp_path):
    topic = unique("t_poll")
    create_topic(env, topic)
    types = types_file(tmp_path, topic)
    bad = {
        json.dumps({"poll_id": 1, "user_id": 2}): ("missing_field", "option_id"),
        json.dumps({"poll_id": 1, "user_id": 3, "option_id": 99}): ("out_of_range", "option_id"),
        json.dumps({"poll_id": 1, "user_id": 4, "option_id": 1, "colour": "red"}):
            ("unknown_field", "colour"),
        json.dumps({"user_id": 5, "candidate_id": 1}): ("missing_field", "poll_id"),
    }
    good = [answer(1, 1, 7), answer(2, 1, 8)]
    produce(env, topic, [v.encode() for v in bad] + good)
    s, _ = consume_type(bins, env, db, prefix, types)
    assert s["inserted"] == 2 and s["dead_lettered"] == len(bad), s
    assert sorted(r[0] for r in poll_rows(db)) == [answer_token(1, 1), answer_token(2, 1)]
    dead = consume_all(env, f"{topic}.dlq", expected=len(bad))
    assert len(dead) == len(bad)
    for m in dead:
        error, field = bad[m.value.decode()]
        assert m.headers["tadak-error"].decode() == error, (m.value, m.headers)
        assert field in m.headers["tadak-detail"].decode(), (m.value, m.headers)
        assert m.headers["tadak-source-topic"].decode() == topic


def test_replay_into_a_fresh_group_inserts_nothing(bins, env, db, prefix, tmp_path):
    topic = unique("t_poll")
    create_topic(env, topic)
    types = types_file(tmp_path, topic)
    keys = [(7, u) for u in range(1, 101)]
    values, kkeys = burst(keys, copies=2)
    produce(env, topic, values, keys=kkeys)
    s, _ = consume_type(bins, env, db, prefix, types)
    assert s["inserted"] == len(keys)
    before = db.rows("select token, event_id::text from poll_answers order by token")
    # Another group, and Redis' memory gone (another prefix): PostgreSQL alone says no.
    s, _ = consume_type(bins, env, db, prefix + "again:", types, group=unique("g_replay"))
    assert s["consumed"] == len(values) and s["inserted"] == 0, s
    assert db.rows("select token, event_id::text from poll_answers order by token") == before


def test_sigkill_mid_stream_then_restart_rows_equal_keys(bins, env, db, prefix, tmp_path):
    topic = unique("t_poll")
    create_topic(env, topic)
    types = types_file(tmp_path, topic)
    keys = [(p, u) for p in range(1, 11) for u in range(1, 801)]  # 8,000 keys, 40,000 events
    values, kkeys = burst(keys)
    produce(env, topic, values, keys=kkeys)
    group = unique("g_kill")
    args = type_args(bins, env, db, prefix, types, group=group, extra=("--batch-size", "200"))
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        wait_for(lambda: poll_count(db) >= 500, 60, "rows before the kill")
        assert poll_count(db) < len(keys), "the stream ended before the kill"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    at_kill = poll_count(db)
    s, _ = consume_type(bins, env, db, prefix, types, group=group)
    rows = poll_rows(db)
    assert len(rows) == len(keys)
    assert len({r[0] for r in rows}) == len(keys)
    # The restart recorded exactly what the killed one had not: nothing twice, nothing lost.
    assert s["inserted"] == len(keys) - at_kill, (s, at_kill)


def test_strings_and_enums_reach_text_columns(bins, env, db, prefix, tmp_path):
    rsvp_topic = unique("t_rsvp")
    create_topic(env, rsvp_topic)
    types = types_file(tmp_path, unique("t_poll"), rsvp_topic)
    notes = {1: "see you there", 2: "a,b {c}", 3: "no"}
    answers = {1: "yes", 2: "maybe", 3: "no"}
    values = [json.dumps({"meetup_id": 9, "user_id": u, "answer": answers[u],
                          "note": notes[u]}).encode() for u in notes]
    produce(env, rsvp_topic, values + values)
    s, _ = consume_type(bins, env, db, prefix, types, type_name="rsvp")
    assert s["inserted"] == 3 and s["consumed"] == 6, s
    rows = db.rows("select token, user_id, answer, note from rsvps order by user_id")
    assert rows == [(f"rsvp:9:{u}", u, answers[u], notes[u]) for u in sorted(notes)]


def test_vote_consumer_beside_a_types_consumer(bins, env, db, prefix, tmp_path):
    """Two groups, two types, one PostgreSQL and one Redis (one key prefix):
    each records its own, neither sees the other's."""
    poll_topic, vote_topic = unique("t_poll"), unique("t_vote")
    create_topic(env, poll_topic)
    create_topic(env, vote_topic)
    types = types_file(tmp_path, poll_topic)
    keys = [(3, u) for u in range(1, 301)]
    values, kkeys = burst(keys, copies=3)
    produce(env, poll_topic, values, keys=kkeys)
    votes = [vote(u, c) for u in range(1, 151) for c in (1, 2)]
    produce(env, vote_topic, votes + votes)
    polls = subprocess.Popen(type_args(bins, env, db, prefix, types), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        vs, _ = consume(bins, env, vote_topic, db, prefix)
    finally:
        out, err = polls.communicate(timeout=TIMEOUT)
    assert polls.returncode == 0, err[-3000:]
    ps = summary_of(out)
    assert ps["inserted"] == len(keys) and vs["inserted"] == len(votes)
    assert len(poll_rows(db)) == len(keys)
    assert {r[0] for r in db.rows("select token from votes")} == \
        {vote_token(u, c) for u in range(1, 151) for c in (1, 2)}


def test_long_keys_that_differ_late_are_two_rows(bins, env, db, prefix, tmp_path):
    """Tokens up to the longest a type may make (event.h): two that share
    their first 150 bytes are two keys, in Redis as in PostgreSQL."""
    topic = unique("t_tag")
    create_topic(env, topic)
    path = tmp_path / "tags.json"
    path.write_text(json.dumps({"types": {"tag": {
        "fields": {"label": {"kind": "string", "max_length": 180, "chars": "a-z"}},
        "key": ["label"], "topic": topic}}}))
    labels = ["a" * 170 + "b", "a" * 170 + "c"]
    group = unique("g_tag")
    for label in labels:  # one at a time: the second meets the first's done marker, if any
        produce(env, topic, [json.dumps({"label": label}).encode()])
        s, _ = consume_type(bins, env, db, prefix, path, type_name="tag", group=group)
        assert s["inserted"] == 1, s
    assert sorted(r[0] for r in db.rows("select label from tags")) == labels


def test_the_users_own_table_with_a_check_and_a_foreign_key(bins, env, db, prefix, tmp_path):
    """A poll_answers table the user made, with the columns the type needs plus a CHECK and
    a foreign key to their polls: migrate accepts it as it is, a refused row is dead-lettered
    with PostgreSQL's reason and the rest of its batch is recorded."""
    with psycopg.connect(db.url, autocommit=True) as c:
        c.execute("create table polls (id bigint primary key)")
        c.execute("insert into polls values (1), (2)")
        c.execute("create table poll_answers (id bigserial primary key, "
                  "token text not null unique, poll_id bigint not null references polls(id), "
                  "user_id bigint not null, option_id bigint not null check (option_id <> 13), "
                  "event_id uuid not null, kafka_partition int, kafka_offset bigint, "
                  "created_at timestamptz not null default now())")
    topic = unique("t_poll")
    create_topic(env, topic)
    types = types_file(tmp_path, topic)
    r = migrate(bins, db, types)
    assert r.returncode == 0, r.stderr
    good = [answer(1, u, 1 + u % 5) for u in range(1, 21)]
    refused = {answer(1, 99, 13): "23514", answer(3, 99, 1): "23503"}  # CHECK, foreign key
    produce(env, topic, good + list(refused))
    s, _ = consume_type(bins, env, db, prefix, types)
    assert s["inserted"] == 20 and s["dead_lettered"] == 2, s
    assert poll_count(db) == 20
    dead = consume_all(env, f"{topic}.dlq", expected=2)
    assert {m.value: m.headers["tadak-sqlstate"].decode() for m in dead} == refused
    assert all(m.headers["tadak-error"].decode() == "rejected_by_database" for m in dead)
