"""The producer's side of event types (--types), against the real stack.

A types file in the test's tmp_path declares poll_answer (poll_id and user_id
ids, option_id an int in 1..64; key poll_id + user_id; identity user_id;
counts option_id and poll_id), on a topic of the test's own. Checked here:
POST /events/poll_answer answers 202 and puts the event on that topic keyed
by its token; bad values are 400s naming the field, an unknown type a 404
listing the types; GET /events/poll_answer/{poll}/{user} reads the row a
consumer would write (inserted here with SQL into a poll_answers table the
test creates) and the Redis lock; GET /events/poll_answer/counts counts
exactly the rows inserted; send, replay and load --type publish the right
messages. The vote's routes keep working beside them.
"""
import json
import re
import time
import uuid

import jwt
import psycopg
import pytest

from conftest import consume_all, ensure_topic, request, run, unique, wait_for
from test_status import Serve

POLL_TABLE = """
create table poll_answers (
    id bigserial primary key,
    token text unique not null,
    poll_id bigint not null,
    user_id bigint not null,
    option_id bigint not null,
    event_id uuid not null,
    kafka_partition int not null,
    kafka_offset bigint not null,
    created_at timestamptz not null default now()
)"""


@pytest.fixture
def poll_topic(env):
    name = unique("poll_answers")
    ensure_topic(env, name)
    return name


@pytest.fixture
def types_file(tmp_path, poll_topic):
    path = tmp_path / "types.json"
    path.write_text(json.dumps({"types": {"poll_answer": {
        "fields": {"poll_id": "id", "user_id": "id",
                   "option_id": {"kind": "int", "min": 1, "max": 64}},
        "key": ["poll_id", "user_id"],
        "identity": "user_id",
        "counts": ["option_id", "poll_id"],
        "topic": poll_topic}}}))
    return path


@pytest.fixture
def poll_db(db):
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute(POLL_TABLE)
    return db


@pytest.fixture
def serve(bins, env, tmp_path, topic, types_file, poll_db, prefix):
    s = Serve(bins, env, tmp_path, topic, database_url=poll_db.url, redis_url=env["REDIS_URL"],
              prefix=prefix, extra=("--types", str(types_file)))
    yield s
    s.stop()


def post(port, path, doc, headers=None):
    h = {"Content-Type": "application/json", **(headers or {})}
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    status, hdrs, raw = request(port, "POST", path, body, h)
    return status, hdrs, json.loads(raw)


def get_json(port, path):
    status, hdrs, raw = request(port, "GET", path)
    assert hdrs["content-type"] == "application/json", raw
    return status, json.loads(raw)


def insert_answer(db, poll, user, option):
    eid = str(uuid.uuid4())
    db.rows("insert into poll_answers (token, poll_id, user_id, option_id, event_id, "
            "kafka_partition, kafka_offset) values (%s, %s, %s, %s, %s, 0, 0) returning id",
            (f"poll_answer:{poll}:{user}", poll, user, option, eid))
    return eid


# ------------------------------------------------------------------- POST /events/{type}

def test_post_event_is_published_to_its_topic_keyed_by_its_token(serve, env, poll_topic):
    status, _, doc = post(serve.port, "/events/poll_answer",
                          {"poll_id": 7, "user_id": 3, "option_id": 2})
    assert status == 202, doc
    assert doc["status"] == "accepted" and doc["token"] == "poll_answer:7:3"
    msgs = consume_all(env, poll_topic, expected=1)
    assert len(msgs) == 1
    assert msgs[0].key == b"poll_answer:7:3"
    assert (msgs[0].partition, msgs[0].offset) == (doc["partition"], doc["offset"])
    value = json.loads(msgs[0].value)
    assert value["event_id"] == doc["event_id"] and value["token"] == "poll_answer:7:3"
    assert {k: value[k] for k in ("poll_id", "user_id", "option_id")} == {
        "poll_id": 7, "user_id": 3, "option_id": 2}

    # The vote is still a vote, on --topic, by both of its routes.
    for path in ("/votes", "/events/vote"):
        status, _, doc = post(serve.port, path, {"user_id": 5, "candidate_id": 1})
        assert status == 202, doc
        assert doc["token"] == "vote_lock:5:1"
    votes = consume_all(env, serve.topic, expected=2)
    assert {m.key for m in votes} == {b"vote_lock:5:1"}
    assert len(consume_all(env, poll_topic, timeout=5)) == 1  # nothing else went there


@pytest.mark.parametrize("doc,error,field", [
    ({"poll_id": 7, "user_id": 3, "option_id": 65}, "out_of_range", "option_id"),
    ({"poll_id": 0, "user_id": 3, "option_id": 2}, "out_of_range", "poll_id"),
    ({"poll_id": "7", "user_id": 3, "option_id": 2}, "wrong_type", "poll_id"),
    ({"poll_id": 7, "option_id": 2}, "missing_field", "user_id"),
    ({"poll_id": 7, "user_id": 3, "option_id": 2, "colour": "red"}, "unknown_field", "colour"),
    ({"user_id": 3, "candidate_id": 2}, "missing_field", "poll_id"),
])
def test_bad_values_are_400_naming_the_field(serve, doc, error, field):
    status, _, body = post(serve.port, "/events/poll_answer", doc)
    assert status == 400, body
    assert body["error"] == error and field in body["detail"], body


def test_unknown_type_and_wrong_shapes(serve):
    status, _, body = post(serve.port, "/events/polls", {"poll_id": 1})
    assert status == 404 and body["error"] == "unknown_type", body
    assert body["types"] == ["vote", "poll_answer"]
    status, hdrs, _ = request(serve.port, "GET", "/events/poll_answer")
    assert status == 405 and hdrs["allow"] == "POST"
    status, doc = get_json(serve.port, "/events/poll_answer/7")
    assert status == 400 and doc["error"] == "wrong_key_length", doc
    status, doc = get_json(serve.port, "/events/poll_answer/x/3")
    assert status == 400 and "poll_id" in doc["detail"], doc
    status, doc = get_json(serve.port, "/events/poll_answer/counts?by=user_id")
    assert status == 400 and doc["error"] == "invalid_by", doc
    assert "option_id, poll_id" in doc["detail"]
    status, doc = get_json(serve.port, "/events/poll_answer/counts?by=option_id&poll_id=-2")
    assert status == 400 and "poll_id" in doc["detail"], doc


def test_idempotency_key_on_an_event_route(serve, env, poll_topic):
    answer = {"poll_id": 9, "user_id": 4, "option_id": 1}
    first = post(serve.port, "/events/poll_answer", answer, {"Idempotency-Key": "k-1"})
    again = post(serve.port, "/events/poll_answer", answer, {"Idempotency-Key": "k-1"})
    assert first[0] == again[0] == 202
    assert again[1].get("idempotent-replayed") == "true"
    assert again[2]["event_id"] == first[2]["event_id"]
    # The same key on the vote's route is another key: a vote, not a replay.
    vote = post(serve.port, "/votes", {"user_id": 4, "candidate_id": 1}, {"Idempotency-Key": "k-1"})
    assert vote[0] == 202 and "idempotent-replayed" not in vote[1]
    assert len(consume_all(env, poll_topic, expected=1, timeout=10)) == 1


def test_identity_binds_the_types_identity_field(bins, env, tmp_path, topic, types_file,
                                                  poll_db, poll_topic, monkeypatch):
    secret = "an-hs256-secret-of-more-than-32-bytes-for-tests"
    monkeypatch.setenv("TADAK_TEST_JWT_SECRET", secret)
    now = int(time.time())
    tok = jwt.encode({"sub": "3", "exp": now + 600, "iat": now}, secret, algorithm="HS256")
    auth = {"Authorization": f"Bearer {tok}"}
    s = Serve(bins, env, tmp_path, topic, database_url=poll_db.url,
              extra=("--types", str(types_file), "--jwt-secret-env", "TADAK_TEST_JWT_SECRET"))
    try:
        # user_id may be left out (the token's), must be the token's when given.
        status, _, doc = post(s.port, "/events/poll_answer", {"poll_id": 7, "option_id": 2}, auth)
        assert status == 202 and doc["token"] == "poll_answer:7:3", doc
        status, _, doc = post(s.port, "/events/poll_answer",
                              {"poll_id": 7, "user_id": 4, "option_id": 2}, auth)
        assert status == 403 and doc["error"] == "user_mismatch" and "user_id" in doc["detail"]
        status, _, doc = post(s.port, "/events/poll_answer", {"poll_id": 7, "user_id": 3,
                                                              "option_id": 2})
        assert status == 401, doc
        # The status of one's own keys only.
        status, _, raw = request(s.port, "GET", "/events/poll_answer/7/4", headers=auth)
        assert status == 403 and json.loads(raw)["error"] == "user_mismatch"
        assert request(s.port, "GET", "/events/poll_answer/7/3", headers=auth)[0] == 404
        assert request(s.port, "GET", "/events/poll_answer/7/3")[0] == 401
    finally:
        s.stop()
    msgs = consume_all(env, poll_topic, expected=1)
    assert [json.loads(m.value)["user_id"] for m in msgs] == [3]


# ---------------------------------------------------------------- status and counts

def test_status_unknown_pending_recorded(serve, poll_db, redis_client, prefix):
    assert get_json(serve.port, "/events/poll_answer/7/3") == (
        404, {"status": "unknown", "token": "poll_answer:7:3"})
    redis_client.set(prefix + "poll_answer:7:3", "P other x", px=60000)
    assert get_json(serve.port, "/events/poll_answer/7/3") == (
        202, {"status": "pending", "token": "poll_answer:7:3"})
    eid = insert_answer(poll_db, 7, 3, 2)
    status, doc = get_json(serve.port, "/events/poll_answer/7/3")
    assert status == 200, doc
    assert doc["status"] == "recorded" and doc["event_id"] == eid
    assert doc["token"] == "poll_answer:7:3"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", doc["created_at"]), doc
    status, hdrs, _ = request(serve.port, "GET", "/events/poll_answer/7/3")
    assert hdrs["cache-control"] == "no-store"
    # Another key of the same poll is still unknown.
    assert get_json(serve.port, "/events/poll_answer/7/4")[0] == 404


def test_counts_are_exact(serve, poll_db):
    path = "/events/poll_answer/counts?by=option_id&poll_id=7"
    assert get_json(serve.port, path) == (200, {
        "type": "poll_answer", "by": "option_id", "where": {"poll_id": 7},
        "total": 0, "values": 0, "counts": []})
    user = 0
    for poll, option, n in ((7, 1, 3), (7, 2, 2), (7, 5, 1), (8, 1, 4)):
        for _ in range(n):
            user += 1
            insert_answer(poll_db, poll, user, option)
    want = {"type": "poll_answer", "by": "option_id", "where": {"poll_id": 7},
            "total": 6, "values": 3,
            "counts": [{"option_id": 1, "rows": 3}, {"option_id": 2, "rows": 2},
                       {"option_id": 5, "rows": 1}]}
    # Cached like /tallies (1 s): the new rows show once the cache expired.
    status, doc = wait_for(lambda: (lambda r: r if r[1]["total"] == 6 else None)(
        get_json(serve.port, path)), timeout=5, what="counts refreshed")
    assert (status, doc) == (200, want)
    status, hdrs, _ = request(serve.port, "GET", path)
    assert hdrs["cache-control"] == "no-store"

    # Every poll, and one option across polls; filters in any order are one question.
    assert get_json(serve.port, "/events/poll_answer/counts?by=poll_id") == (200, {
        "type": "poll_answer", "by": "poll_id", "where": {},
        "total": 10, "values": 2,
        "counts": [{"poll_id": 7, "rows": 6}, {"poll_id": 8, "rows": 4}]})
    assert get_json(serve.port, "/events/poll_answer/counts?option_id=1&by=poll_id&poll_id=8")[1][
        "counts"] == [{"poll_id": 8, "rows": 4}]


# ------------------------------------------------------------------------------ the CLI

def cli(bins, env, types_file, *args, input=None):
    return run([bins.producer, *args, "--types", types_file,
                "--brokers", env["KAFKA_BOOTSTRAP_SERVERS"]], input=input)


def test_send_with_fields(bins, env, types_file, poll_topic):
    p = cli(bins, env, types_file, "send", "--type", "poll_answer", "-f", "poll_id=7",
            "-f", "user_id=3", "--field", "option_id=2", "--repeat", "3")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"sent": 3, "acked": 3, "failed": 0}
    msgs = consume_all(env, poll_topic, expected=3)
    assert {m.key for m in msgs} == {b"poll_answer:7:3"}
    assert len({json.loads(m.value)["event_id"] for m in msgs}) == 3
    assert {json.loads(m.value)["option_id"] for m in msgs} == {2}

    # A value the type refuses, a field it does not have: exit 2 naming it, nothing sent.
    for field, name in (("option_id=99", "option_id"), ("colour=1", "colour"),
                        ("poll_id=x", "poll_id")):
        fields = {"poll_id": "poll_id=7", "user_id": "user_id=3", "option_id": "option_id=2"}
        fields[name] = field
        args = [a for f in fields.values() for a in ("-f", f)]
        p = cli(bins, env, types_file, "send", "--type", "poll_answer", *args)
        assert p.returncode == 2 and name in p.stderr, p.stderr
    p = cli(bins, env, types_file, "send", "--type", "poll")
    assert p.returncode == 2 and "poll_answer" in p.stderr, p.stderr
    assert len(consume_all(env, poll_topic, timeout=5)) == 3


def test_replay_parses_lines_as_the_type(bins, env, types_file, poll_topic):
    lines = ('{"poll_id":1,"user_id":2,"option_id":3}\n'
             '{"user_id":2,"candidate_id":3}\n'
             '{"poll_id":1,"user_id":5,"option_id":64}\n')
    p = cli(bins, env, types_file, "replay", "--type", "poll_answer", "-", input=lines)
    assert p.returncode == 1, p.stderr  # the vote line is a bad line of this type
    assert json.loads(p.stdout) == {"sent": 2, "acked": 2, "failed": 0, "bad_lines": 1}
    assert "line=2" in p.stderr and "poll_id" in p.stderr
    msgs = consume_all(env, poll_topic, expected=2)
    assert sorted(m.key for m in msgs) == [b"poll_answer:1:2", b"poll_answer:1:5"]


def test_load_maps_users_onto_the_key(bins, env, types_file, poll_topic):
    p = cli(bins, env, types_file, "load", "--type", "poll_answer", "--users", "40",
            "--dup-factor", "3", "--candidates", "5", "--seed", "7")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout) == {"sent": 120, "acked": 120, "failed": 0}
    msgs = consume_all(env, poll_topic, expected=120)
    values = [json.loads(m.value) for m in msgs]
    assert len({m.key for m in msgs}) == 40
    assert {v["user_id"] for v in values} == set(range(1, 41))
    for m, v in zip(msgs, values):
        assert m.key.decode() == f"poll_answer:{v['poll_id']}:{v['user_id']}"
        assert 1 <= v["poll_id"] <= 5 and 1 <= v["option_id"] <= 5
    # Each user answers one poll, one option, however many copies.
    per_user = {}
    for v in values:
        per_user.setdefault(v["user_id"], set()).add((v["poll_id"], v["option_id"]))
    assert all(len(s) == 1 for s in per_user.values())


def test_bad_types_file_stops_every_command(bins, env, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"types": {"poll_answer": {"fields": {"poll_id": "id"}, "key": ["nope"]}}}')
    for args in (["serve", "--listen", "127.0.0.1:1"], ["send", "-u", "1", "-c", "2"],
                 ["load", "--users", "1"]):
        p = cli(bins, env, bad, *args)
        assert p.returncode == 2, (args, p.stderr)
        assert "nope" in p.stderr and str(bad) in p.stderr, p.stderr


def test_counts_questions_never_share_an_answer(bins, env, tmp_path, topic, db):
    """Two questions whose filters would read alike once joined with '&' and '='
    (a string value may hold both) get their own answers."""
    note_topic = unique("notes")
    ensure_topic(env, note_topic)
    path = tmp_path / "notes.json"
    path.write_text(json.dumps({"types": {"note": {
        "fields": {"tag": {"kind": "string", "chars": "a-z0-9&="}, "author": "id"},
        "key": ["author"], "counts": ["author"], "topic": note_topic}}}))
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("create table notes (id bigserial primary key, token text unique not null, "
                     "tag text not null, author bigint not null, event_id uuid not null, "
                     "kafka_partition int not null, kafka_offset bigint not null, "
                     "created_at timestamptz not null default now())")
    for author, tag in ((1, "x"), (2, "x&1=1")):
        db.rows("insert into notes (token, tag, author, event_id, kafka_partition, kafka_offset) "
                "values (%s, %s, %s, %s, 0, 0) returning id",
                (f"note:{author}", tag, author, str(uuid.uuid4())))
    s = Serve(bins, env, tmp_path, topic, database_url=db.url, extra=("--types", str(path)))
    try:
        one = get_json(s.port, "/events/note/counts?by=author&tag=x&author=1")
        other = get_json(s.port, "/events/note/counts?by=author&tag=x%261%3D1")
    finally:
        s.stop()
    assert one[1]["counts"] == [{"author": 1, "rows": 1}], one
    assert other[1]["where"] == {"tag": "x&1=1"}, other
    assert other[1]["counts"] == [{"author": 2, "rows": 1}], other
