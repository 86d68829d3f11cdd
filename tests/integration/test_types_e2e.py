"""A type from a file, end to end: the poll_answer session a new user would try.

The types file (poll_answer: one answer per user per poll) is read by
`tadak-consumer topics` and `migrate`, by `serve` and by the consumer; clicks go
through POST /events/poll_answer, rows come out in table poll_answers, and the
status and counts routes read them back. Beside it the vote type keeps working
on the same Kafka, Redis and PostgreSQL.
"""
import json
import signal
import subprocess
import threading

import pytest

from conftest import free_port, request, run, unique, wait_for, wait_serving


def types_file(tmp_path, topic):
    """examples/types.json's poll_answer, on a topic of this test's own."""
    doc = {"types": {"poll_answer": {
        "topic": topic,
        "fields": {"poll_id": "id", "user_id": "id",
                   "option_id": {"kind": "int", "min": 1, "max": 64}},
        "key": ["poll_id", "user_id"],
        "identity": "user_id",
        "counts": ["option_id", "poll_id"]}}}
    path = tmp_path / "types.json"
    path.write_text(json.dumps(doc))
    return path


def post(port, path, obj):
    return request(port, "POST", path, json.dumps(obj).encode(),
                   {"Content-Type": "application/json"})


def get_json(port, path):
    status, _, body = request(port, "GET", path)
    return status, json.loads(body)


class Session:
    def __init__(self, bins, env, db, prefix, tmp_path):
        self.bins, self.env, self.db, self.prefix = bins, env, db, prefix
        self.topic = unique("t_poll")
        self.types = types_file(tmp_path, self.topic)
        self.log = tmp_path / "serve.log"
        self.ack_log = tmp_path / "acks.jsonl"
        self.port = free_port()
        self.proc = None

    def consumer_args(self, *extra):
        return [self.bins.consumer, *extra, "--types", self.types, "--type", "poll_answer",
                "--brokers", self.env["KAFKA_BOOTSTRAP_SERVERS"],
                "--redis-url", self.env["REDIS_URL"], "--database-url", self.db.url,
                "--key-prefix", self.prefix]

    def setup(self):
        for cmd in ("topics", "migrate"):
            r = run(self.consumer_args(cmd), timeout=60)
            assert r.returncode == 0, f"{cmd}: {r.stderr[-2000:]}"

    def serve(self):
        args = [self.bins.producer, "serve", "--listen", f"127.0.0.1:{self.port}",
                "--types", self.types, "--brokers", self.env["KAFKA_BOOTSTRAP_SERVERS"],
                "--redis-url", self.env["REDIS_URL"], "--database-url", self.db.url,
                "--key-prefix", self.prefix, "--ack-log", self.ack_log]
        self._logf = open(self.log, "wb")
        self.proc = subprocess.Popen([str(a) for a in args], stdout=self._logf,
                                     stderr=subprocess.STDOUT)
        wait_serving(self.proc, self.port, self.log)

    def consume(self):
        r = run(self.consumer_args() + ["--group", unique("g"), "--from-beginning",
                                        "--idle-exit", "3"], timeout=120)
        assert r.returncode == 0, r.stderr[-2000:]
        return r

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self._logf.close()


@pytest.fixture
def session(bins, env, db, prefix, tmp_path):
    s = Session(bins, env, db, prefix, tmp_path)
    s.setup()
    s.serve()
    yield s
    s.stop()


def test_poll_answer_clicks_status_and_counts(session, db):
    port = session.port
    # Five concurrent clicks of one answer: five 202s, one token.
    results = [None] * 5

    def click(i):
        results[i] = post(port, "/events/poll_answer",
                          {"poll_id": 7, "user_id": 100, "option_id": 3})

    threads = [threading.Thread(target=click, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r[0] for r in results] == [202] * 5, [r[2] for r in results]
    assert {json.loads(r[2])["token"] for r in results} == {"poll_answer:7:100"}

    # Bad values: a 400 naming the field, nothing published.
    for body, field in [({"poll_id": 7, "user_id": 101, "option_id": 65}, "option_id"),
                        ({"poll_id": 7, "user_id": 101}, "option_id"),
                        ({"poll_id": 0, "user_id": 101, "option_id": 1}, "poll_id"),
                        ({"poll_id": 7, "user_id": 101, "option_id": 1, "x": 1}, "x")]:
        status, _, raw = post(port, "/events/poll_answer", body)
        assert status == 400, raw
        assert field in json.loads(raw)["detail"], raw

    # Other voters of poll 7 and one of poll 8, for the counts.
    answers = {(7, 101): 3, (7, 102): 5, (7, 103): 5, (7, 104): 5, (8, 100): 3}
    for (poll, user), option in answers.items():
        status, _, raw = post(port, "/events/poll_answer",
                              {"poll_id": poll, "user_id": user, "option_id": option})
        assert status == 202, raw
    assert get_json(port, "/events/poll_answer/7/100")[0] in (202, 404)  # not recorded yet

    session.consume()
    assert db.rows("SELECT count(*) FROM poll_answers WHERE token = 'poll_answer:7:100'") == [(1,)]
    assert db.rows("SELECT count(*) FROM poll_answers") == [(6,)]

    # The same click after the first was recorded: 202 again, still one row.
    status, _, raw = post(port, "/events/poll_answer",
                          {"poll_id": 7, "user_id": 100, "option_id": 3})
    assert status == 202, raw
    session.consume()
    assert db.rows("SELECT count(*) FROM poll_answers") == [(6,)]

    status, doc = get_json(port, "/events/poll_answer/7/100")
    assert status == 200 and doc["status"] == "recorded", doc
    status, doc = get_json(port, "/events/poll_answer/7/999")
    assert status == 404, doc

    # Counts: poll 7 only, by option; exact.
    def counts():
        status, doc = get_json(port, "/events/poll_answer/counts?by=option_id&poll_id=7")
        assert status == 200, doc
        return doc
    wait_for(lambda: counts()["total"] == 5, timeout=10, what="counts past the cache")
    doc = counts()
    got = {c["option_id"]: c["rows"] for c in doc["counts"]}
    assert got == {3: 2, 5: 3}, doc
    status, doc = get_json(port, "/events/poll_answer/counts?by=user_id")
    assert status == 400 and "option_id" in doc["detail"], doc


def test_vote_beside_poll_answer(session, bins, env, db, prefix):
    """Two types, two consumer groups, one PostgreSQL and one Redis."""
    status, _, raw = post(session.port, "/events/poll_answer",
                          {"poll_id": 1, "user_id": 1, "option_id": 1})
    assert status == 202, raw
    topic = unique("t_votes")
    assert run([bins.consumer, "topics", "--topic", topic,
                "--brokers", env["KAFKA_BOOTSTRAP_SERVERS"]]).returncode == 0
    r = run([bins.producer, "send", "--topic", topic, "--brokers", env["KAFKA_BOOTSTRAP_SERVERS"],
             "--user", "1", "--candidate", "1"])
    assert r.returncode == 0, r.stderr
    r = run([bins.consumer, "--topic", topic, "--group", unique("g"),
             "--brokers", env["KAFKA_BOOTSTRAP_SERVERS"], "--redis-url", env["REDIS_URL"],
             "--database-url", db.url, "--key-prefix", prefix, "--from-beginning",
             "--idle-exit", "3"], timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    session.consume()
    assert db.rows("SELECT token FROM votes") == [("vote_lock:1:1",)]
    assert db.rows("SELECT token FROM poll_answers") == [("poll_answer:1:1",)]


def test_replay_of_the_ack_log_inserts_nothing(session, bins, env, db):
    """serve's ack log of poll answers, replayed: every line published again, no new row."""
    for user in range(1, 21):
        status, _, raw = post(session.port, "/events/poll_answer",
                              {"poll_id": 3, "user_id": user, "option_id": 1 + user % 4})
        assert status == 202, raw
    session.consume()
    assert db.rows("SELECT count(*) FROM poll_answers") == [(20,)]
    wait_for(lambda: len(session.ack_log.read_text().splitlines()) == 20, timeout=10,
             what="20 lines in the ack log")
    r = run([bins.producer, "replay", session.ack_log, "--types", session.types,
             "--type", "poll_answer", "--brokers", env["KAFKA_BOOTSTRAP_SERVERS"]])
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout.strip().splitlines()[-1])["acked"] == 20, r.stdout
    out = session.consume()
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["consumed"] == 40 and summary["inserted"] == 0, summary
    assert db.rows("SELECT count(*) FROM poll_answers") == [(20,)]
