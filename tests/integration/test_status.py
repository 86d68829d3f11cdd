"""What the producer tells about votes after publishing them, against the real
stack: GET /votes/{user_id}/{candidate_id} (recorded / pending / unknown),
GET /tallies, GET /stats, the 503s without DATABASE_URL/REDIS_URL, and
Idempotency-Key on POST /votes (one event per key, whatever the client does).

Rows are written straight into a fresh database (with sql/schema.sql) where
the producer's answer is what is under test; the end-to-end test runs a real
consumer.
"""
import hashlib
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid

import psycopg
import pytest

from conftest import (ensure_topic, free_port, request, wait_serving, REPO, consume_all, unique,
                     wait_for)

SCHEMA = (REPO / "sql" / "schema.sql").read_text()


def get_json(port, path):
    status, hdrs, body = request(port, "GET", path)
    assert hdrs["content-type"] == "application/json", body
    return status, json.loads(body)


def post_vote(port, user, cand, key=None, raw=None):
    h = {"Content-Type": "application/json"}
    if key is not None:
        h["Idempotency-Key"] = key
    body = raw if raw is not None else json.dumps({"user_id": user, "candidate_id": cand}).encode()
    status, hdrs, body = request(port, "POST", "/votes", body, h)
    return status, hdrs, json.loads(body)


class Serve:
    """`tadak-producer serve` with exactly the store URLs given (none inherited)."""

    def __init__(self, bins, env, tmp, topic, database_url=None, redis_url=None, prefix="",
                 brokers=None, extra=()):
        ensure_topic(env, topic)  # serve refuses a topic that does not exist
        self.port = free_port()
        self.topic = topic
        self.log = tmp / f"serve-{self.port}.log"
        penv = {k: v for k, v in os.environ.items()
                if k not in ("DATABASE_URL", "REDIS_URL", "TADAK_KEY_PREFIX")}
        args = [bins.producer, "serve", "--listen", f"127.0.0.1:{self.port}", "--topic", topic,
                "--brokers", brokers or env["KAFKA_BOOTSTRAP_SERVERS"], "--key-prefix", prefix,
                *extra]
        if database_url:
            args += ["--database-url", database_url]
        if redis_url:
            args += ["--redis-url", redis_url]
        self._logf = open(self.log, "wb")
        self.proc = subprocess.Popen(args, stdout=self._logf, stderr=subprocess.STDOUT, env=penv)
        wait_serving(self.proc, self.port, self.log)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        finally:
            self._logf.close()


@pytest.fixture
def schema_db(db):
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute(SCHEMA)
    return db


@pytest.fixture
def serve(bins, env, tmp_path, topic, schema_db, prefix):
    s = Serve(bins, env, tmp_path, topic, schema_db.url, env["REDIS_URL"], prefix)
    yield s
    assert s.stop() == 0, s.log.read_text()[-2000:]


def insert_vote(db, user, cand, event_id=None):
    event_id = event_id or str(uuid.uuid4())
    db.rows("insert into votes (token, user_id, candidate_id, event_id) values (%s, %s, %s, %s) "
            "returning id", (f"vote_lock:{user}:{cand}", user, cand, event_id))
    return event_id


def events(env, topic):
    """Everything on the topic (acknowledged events are all there already)."""
    return [json.loads(m.value) for m in consume_all(env, topic, timeout=20)]


# ---------------------------------------------------------------- status and tallies

def test_status_recorded_pending_unknown(serve, schema_db, redis_client, prefix):
    eid = insert_vote(schema_db, 11, 2)
    status, doc = get_json(serve.port, "/votes/11/2")
    assert status == 200, doc
    assert doc["status"] == "recorded" and doc["event_id"] == eid
    assert doc["token"] == "vote_lock:11:2"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", doc["created_at"]), doc

    # A consumer holds the in-flight lock: pending, until the row exists.
    redis_client.set(prefix + "vote_lock:12:3", "P other x", px=60000)
    assert get_json(serve.port, "/votes/12/3") == (202, {"status": "pending",
                                                         "token": "vote_lock:12:3"})
    insert_vote(schema_db, 12, 3)
    assert get_json(serve.port, "/votes/12/3")[1]["status"] == "recorded"

    # Nothing anywhere, a lock under another prefix, a "done" marker without a row: unknown.
    redis_client.set("other" + prefix + "vote_lock:13:1", "P other x", px=60000)
    redis_client.set(prefix + "vote_lock:14:1", "1", px=60000)
    try:
        for path in ("/votes/13/1", "/votes/14/1", "/votes/11/3"):
            status, doc = get_json(serve.port, path)
            assert (status, doc["status"]) == (404, "unknown"), path
    finally:
        redis_client.delete("other" + prefix + "vote_lock:13:1")


@pytest.mark.parametrize("path,error", [
    ("/votes/abc/1", "wrong_type"), ("/votes/1/1.5", "wrong_type"), ("/votes/-1/1", "wrong_type"),
    ("/votes/+1/1", "wrong_type"), ("/votes/0/1", "out_of_range"),
    ("/votes/1/9223372036854775808", "out_of_range"),
    ("/votes/99999999999999999999999/1", "out_of_range"),
])
def test_status_bad_ids_are_400(serve, path, error):
    status, doc = get_json(serve.port, path)
    assert (status, doc["error"]) == (400, error)
    assert doc["detail"]


def test_status_routing(serve):
    status, hdrs, body = request(serve.port, "POST", "/votes/1/2", b"{}",
                                 {"Content-Type": "application/json"})
    assert status == 405 and hdrs["allow"] == "GET"
    for path in ("/votes/1", "/votes/1/2/3", "/votes//2"):
        assert request(serve.port, "GET", path)[0] == 404, path
    status, doc = get_json(serve.port, "/votes/9223372036854775807/1")
    assert (status, doc["status"]) == (404, "unknown")


EMPTY_TALLIES = {"tallies": [], "total": 0, "candidates": 0}


def tallies_queries(port):
    """The producer's count of tallies queries sent to PostgreSQL."""
    text = request(port, "GET", "/metrics")[2].decode()
    return int(re.search(r"^tadak_tallies_queries_total (\d+)$", text, re.M)[1])


def test_tallies(serve, schema_db):
    assert get_json(serve.port, "/tallies") == (200, EMPTY_TALLIES)
    for user, cand in [(1, 1), (2, 1), (3, 1), (1, 2), (1, 4), (2, 4)]:
        insert_vote(schema_db, user, cand)
    # Served from a cache at most a second old: the new rows show within a second or two.
    doc = wait_for(lambda: (lambda r: r[1] if r[1]["total"] == 6 else None)(
        get_json(serve.port, "/tallies")), timeout=5, what="tallies refreshed")
    assert doc == {"tallies": [{"candidate_id": 1, "votes": 3}, {"candidate_id": 4, "votes": 2},
                               {"candidate_id": 2, "votes": 1}],
                   "total": 6, "candidates": 3}


def test_tallies_top_n_and_one_query_a_second(bins, env, tmp_path, topic, schema_db):
    """The answer is bounded (top N by votes, the total over all) and however many
    clients ask, PostgreSQL gets at most one tallies query a second."""
    for cand, n in [(1, 1), (2, 5), (3, 2), (4, 4), (5, 3)]:
        for user in range(n):
            insert_vote(schema_db, 100 + user, cand)
    s = Serve(bins, env, tmp_path, topic, schema_db.url, extra=("--tallies-top", "3"))
    try:
        assert get_json(s.port, "/tallies") == (200, {
            "tallies": [{"candidate_id": 2, "votes": 5}, {"candidate_id": 4, "votes": 4},
                        {"candidate_id": 5, "votes": 3}],
            "total": 15, "candidates": 5})
        before, t0 = tallies_queries(s.port), time.monotonic()
        errors = []

        def hammer():
            for _ in range(40):
                status, doc = get_json(s.port, "/tallies")
                if status != 200 or doc["total"] != 15:
                    errors.append((status, doc))

        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        queries = tallies_queries(s.port) - before
        assert not errors, errors[:3]
        assert queries <= int(elapsed) + 1, (queries, elapsed)
    finally:
        assert s.stop() == 0


def test_tallies_count_only_the_ballot(bins, env, tmp_path, topic, schema_db):
    """--candidates 1-4,7: rows for 5 and 9 (recorded before the ballot, or by
    another producer) are not in the list, the total or the count of candidates,
    even when 5 has the most votes; outside_ballot says how many there are."""
    for cand, n in [(1, 2), (5, 4), (7, 1), (9, 1), (3, 1)]:
        for user in range(n):
            insert_vote(schema_db, 200 + user, cand)
    s = Serve(bins, env, tmp_path, topic, schema_db.url,
              extra=("--candidates", "1-4,7", "--tallies-top", "2"))
    try:
        assert get_json(s.port, "/tallies") == (200, {
            "tallies": [{"candidate_id": 1, "votes": 2}, {"candidate_id": 3, "votes": 1}],
            "total": 4, "candidates": 3, "outside_ballot": 5})
    finally:
        assert s.stop() == 0


def test_tallies_with_a_ballot_and_no_votes_on_it(bins, env, tmp_path, topic, schema_db):
    insert_vote(schema_db, 1, 5)
    s = Serve(bins, env, tmp_path, topic, schema_db.url, extra=("--candidates", "1-4,7"))
    try:
        assert get_json(s.port, "/tallies") == (200, {**EMPTY_TALLIES, "outside_ballot": 1})
    finally:
        assert s.stop() == 0


def test_voting_never_waits_on_status_reads(bins, env, tmp_path, topic, schema_db):
    """Status reads stuck in PostgreSQL (the table locked: every read waits for
    the 2 s statement timeout) while clients keep asking: votes are still
    answered at once, because no HTTP thread runs a status query."""
    s = Serve(bins, env, tmp_path, topic, schema_db.url, env["REDIS_URL"])
    stop = threading.Event()
    reads = []

    def reader(path):
        while not stop.is_set():
            reads.append(request(s.port, "GET", path)[0])

    try:
        assert post_vote(s.port, 899, 1)[0] == 202  # the topic exists, its leader is known
        with psycopg.connect(schema_db.url) as locker:
            locker.execute("LOCK TABLE votes IN ACCESS EXCLUSIVE MODE")
            threads = [threading.Thread(target=reader, args=(p,))
                       for p in ["/tallies", "/votes/1/1", "/tallies", "/votes/2/2"] * 2]
            for t in threads:
                t.start()
            # The reads are stuck behind the lock before the first vote is sent.
            waiting = ("select count(*) from pg_stat_activity where datname = current_database() "
                       "and application_name = 'tadak-producer' and wait_event_type = 'Lock'")
            wait_for(lambda: schema_db.rows(waiting)[0][0] > 0, 10,
                     "a status read waiting for the table lock")
            latencies = []
            for i in range(20):
                t0 = time.monotonic()
                status, _, _ = post_vote(s.port, 900 + i, 1)
                latencies.append(time.monotonic() - t0)
                assert status == 202
            locker.rollback()
        stop.set()
        for t in threads:
            t.join()
        assert max(latencies) < 0.5, latencies
        assert set(reads) <= {200, 404, 503}, set(reads)
    finally:
        stop.set()
        assert s.stop() == 0


def test_tallies_before_the_table_exists(bins, env, tmp_path, topic, db):
    s = Serve(bins, env, tmp_path, topic, db.url)
    try:
        assert get_json(s.port, "/tallies") == (200, EMPTY_TALLIES)
        assert get_json(s.port, "/votes/1/1")[1]["status"] == "unknown"
    finally:
        assert s.stop() == 0


def test_stats_reads_the_consumer_counters(serve, redis_client, prefix):
    """/stats shows one consumer group's counters: --stats-group, "tadak" by default."""
    status, doc = get_json(serve.port, "/stats")
    assert status == 200
    assert doc == {"group": "tadak", "consumed": 0, "inserted": 0, "dup_redis": 0, "dup_db": 0,
                   "dead_lettered": 0, "accepted": 0}
    redis_client.hset(prefix + "tadak:stats:tadak", mapping={"consumed": 7, "inserted": 4,
                                                             "dup_redis": 2, "dup_db": 1})
    redis_client.hset(prefix + "tadak:stats:replay-1", mapping={"consumed": 99})
    assert post_vote(serve.port, 5, 1)[0] == 202
    status, doc = get_json(serve.port, "/stats")
    assert doc == {"group": "tadak", "consumed": 7, "inserted": 4, "dup_redis": 2, "dup_db": 1,
                   "dead_lettered": 0, "accepted": 1}


def test_without_stores_routes_503_and_voting_works(bins, env, tmp_path, topic):
    s = Serve(bins, env, tmp_path, topic)
    try:
        for path, var in (("/votes/1/2", "DATABASE_URL"), ("/tallies", "DATABASE_URL"),
                          ("/stats", "REDIS_URL")):
            status, doc = get_json(s.port, path)
            assert (status, doc["error"]) == (503, "not_configured"), path
            assert var in doc["detail"]
        # Idempotency-Key cannot be honoured without Redis: ignored (and said so once).
        a = post_vote(s.port, 21, 1, key="k-1")
        b = post_vote(s.port, 21, 1, key="k-1")
        assert a[0] == b[0] == 202
        assert a[2]["event_id"] != b[2]["event_id"]
        status, _, body = request(s.port, "GET", "/")
        assert status == 200 and b"<button" in body
    finally:
        assert s.stop() == 0
    log = s.log.read_text()
    assert log.count("Idempotency-Key ignored") == 1, log
    assert len([e for e in events(env, topic) if e["user_id"] == 21]) == 2


def test_unavailable_says_nothing_about_the_backend(bins, env, tmp_path, topic):
    """A store that refuses us (a role that does not exist, a Redis password
    it does not want): 503 bodies say what failed in general terms and carry
    a request id; libpq's and hiredis' words (host, port, role) go to the
    log under that id; the password in the URLs is never logged."""
    pg = re.match(r"postgresql://[^@]*@([^/]+)/", env["DATABASE_URL"])[1]
    redis_hostport = re.match(r"redis://([^/]+)/", env["REDIS_URL"])[1]
    s = Serve(bins, env, tmp_path, topic, f"postgresql://intruder_probe:hunter2@{pg}/nope",
              f"redis://:hunter2@{redis_hostport}/0")
    seen = []
    try:
        for path in ("/votes/1/2", "/tallies", "/stats"):
            status, doc = get_json(s.port, path)
            seen.append((path, status, doc))
        status, hdrs, doc = post_vote(s.port, 1, 1, key="k")
        seen.append(("POST /votes", status, doc))
    finally:
        assert s.stop() == 0
    log = s.log.read_text()
    assert "hunter2" not in log
    for path, status, doc in seen:
        assert (status, doc["error"]) == (503, "unavailable"), (path, doc)
        assert set(doc) == {"error", "detail", "request_id"}, doc
        text = json.dumps(doc).lower()
        for word in ("intruder_probe", "127.0.0.1", pg.split(":")[1], "role", "fatal", "auth",
                     "connection", "hiredis", "libpq", "hunter2"):
            assert word not in text, (path, word, doc)
        assert re.fullmatch(r"[0-9a-f]{16}", doc["request_id"]), doc
        lines = [ln for ln in log.splitlines() if f"request_id={doc['request_id']}" in ln]
        assert len(lines) == 1, (doc, log[-3000:])
    ids = {doc["request_id"] for _, _, doc in seen}
    assert len(ids) == len(seen)
    assert "intruder_probe" in log  # the details are in the log, for the operator


def test_status_unavailable_is_503_not_a_hang(bins, env, tmp_path, topic):
    dead = f"postgresql://tadak@127.0.0.1:{free_port()}/nope"
    s = Serve(bins, env, tmp_path, topic, dead, f"redis://127.0.0.1:{free_port()}/0")
    try:
        for path in ("/votes/1/2", "/tallies", "/stats"):
            status, doc = get_json(s.port, path)
            assert (status, doc["error"]) == (503, "unavailable"), (path, doc)
        assert post_vote(s.port, 1, 1)[0] == 202
        # With a key, Redis down means the guarantee cannot be given: 503, retry later.
        status, hdrs, doc = post_vote(s.port, 1, 1, key="k")
        assert (status, doc["error"]) == (503, "unavailable") and hdrs["retry-after"] == "1"
    finally:
        assert s.stop() == 0


# ---------------------------------------------------------------- Idempotency-Key

def test_idempotency_same_key_same_body_one_event(serve, env, redis_client, prefix):
    s1, h1, d1 = post_vote(serve.port, 31, 2, key="order-31")
    s2, h2, d2 = post_vote(serve.port, 31, 2, key="order-31")
    assert (s1, s2) == (202, 202)
    assert d1 == d2  # the stored 202: same event id, partition and offset
    assert "idempotent-replayed" not in h1 and h2["idempotent-replayed"] == "true"
    # The structured-field form of the same key is the same key.
    s3, _, d3 = post_vote(serve.port, 31, 2, key='"order-31"')
    assert (s3, d3) == (202, d1)
    # Another key is another request.
    s4, _, d4 = post_vote(serve.port, 31, 2, key="order-31b")
    assert s4 == 202 and d4["event_id"] != d1["event_id"]

    value = redis_client.get(prefix + "idem:a:order-31").decode()
    assert value.startswith("done ") and d1["event_id"] in value
    # The body's fingerprint is its SHA-256: no other body can be made to match it.
    body = json.dumps({"user_id": 31, "candidate_id": 2}).encode()
    assert value.split(" ", 2)[1] == hashlib.sha256(body).hexdigest()
    ttl = redis_client.pttl(prefix + "idem:a:order-31")
    assert 86_000_000 < ttl <= 86_400_000
    evs = [e for e in events(env, serve.topic) if e["user_id"] == 31]
    assert sorted(e["event_id"] for e in evs) == sorted([d1["event_id"], d4["event_id"]])
    assert get_json(serve.port, "/stats")[1]["accepted"] == 2


def test_idempotency_key_reused_with_other_body_422(serve, env):
    s1, _, d1 = post_vote(serve.port, 32, 1, key="k32")
    assert s1 == 202
    status, _, doc = post_vote(serve.port, 32, 2, key="k32")
    assert (status, doc["error"]) == (422, "idempotency_key_reused")
    # Same JSON, other bytes: another body, by the draft's fingerprint.
    status, _, doc = post_vote(serve.port, 0, 0, key="k32",
                               raw=b'{"candidate_id":1,"user_id":32}')
    assert status == 422
    assert post_vote(serve.port, 32, 1, key="k32")[2] == d1
    assert [e["event_id"] for e in events(env, serve.topic)] == [d1["event_id"]]


def test_idempotency_concurrent_same_key_one_event(serve, env):
    n = 24
    results = [None] * n
    barrier = threading.Barrier(n)

    def go(i):
        barrier.wait()
        results[i] = post_vote(serve.port, 33, 3, key="race-33")

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = [r[0] for r in results]
    assert set(statuses) <= {202, 409}, statuses
    accepted = [r[2] for r in results if r[0] == 202]
    assert accepted and len({d["event_id"] for d in accepted}) == 1
    assert all(r[2]["error"] == "request_in_progress" for r in results if r[0] == 409)
    assert [e["event_id"] for e in events(env, serve.topic)] == [accepted[0]["event_id"]]


def test_idempotency_value_with_a_short_fingerprint_is_not_a_replay(serve, redis_client, prefix):
    """A 16-digit prefix of the body's SHA-256 does not pass for it."""
    body = json.dumps({"user_id": 36, "candidate_id": 1}).encode()
    stored = '{"status":"accepted","event_id":"e-36","token":"vote_lock:36:1"}\n'
    redis_client.set(prefix + "idem:a:old-36b", f"done {hashlib.sha256(body).hexdigest()[:16]} "
                     f"{stored}", px=60000)
    assert post_vote(serve.port, 36, 1, key="old-36b")[0] == 422


@pytest.mark.parametrize("key", ["x" * 256, '""', 'a"b', "caf\u00e9"])
def test_idempotency_bad_key_400(serve, key):
    h = {"Content-Type": "application/json", "Idempotency-Key": key.encode("utf-8")}
    status, _, body = request(serve.port, "POST", "/votes", b'{"user_id":1,"candidate_id":1}', h)
    assert (status, json.loads(body)["error"]) == (400, "invalid_idempotency_key")


def test_idempotency_longest_key_ok(serve):
    assert post_vote(serve.port, 34, 1, key="k" * 255)[0] == 202


def test_idempotency_claim_released_after_503(bins, env, tmp_path, topic, redis_client, prefix):
    s = Serve(bins, env, tmp_path, topic, redis_url=env["REDIS_URL"], prefix=prefix,
              brokers=f"127.0.0.1:{free_port()}", extra=["--delivery-timeout-ms", "300"])
    try:
        status, _, doc = post_vote(s.port, 35, 1, key="retry-me")
        assert status == 503, doc
        assert redis_client.get(prefix + "idem:a:retry-me") is None
        # The retry is a new attempt (503 again, not 409 "in progress").
        status, _, doc = post_vote(s.port, 35, 1, key="retry-me")
        assert status == 503, doc
        # A marker someone else holds is never released by us.
        redis_client.set(prefix + "idem:a:theirs", "inflight 0000000000000000 x", px=60000)
        status, _, doc = post_vote(s.port, 35, 1, key="theirs")
        assert status == 422
        assert redis_client.get(prefix + "idem:a:theirs") is not None
    finally:
        assert s.stop() == 0


# ---------------------------------------------------------------- end to end

def test_vote_to_recorded_through_a_consumer(serve, bins, env, schema_db, prefix):
    s, _, d = post_vote(serve.port, 41, 4)
    assert s == 202
    assert get_json(serve.port, "/votes/41/4")[1]["status"] in ("unknown", "pending")
    consumer = subprocess.Popen(
        [bins.consumer, "--brokers", env["KAFKA_BOOTSTRAP_SERVERS"], "--topic", serve.topic,
         "--group", unique("g"), "--from-beginning", "--database-url", schema_db.url,
         "--redis-url", env["REDIS_URL"], "--key-prefix", prefix],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        doc = wait_for(lambda: (lambda r: r[1] if r[1]["status"] == "recorded" else None)(
            get_json(serve.port, "/votes/41/4")), timeout=60, what="vote recorded")
        assert doc["event_id"] == d["event_id"]
        assert get_json(serve.port, "/tallies")[1] == {
            "tallies": [{"candidate_id": 4, "votes": 1}], "total": 1, "candidates": 1}
    finally:
        consumer.send_signal(signal.SIGTERM)
        _, err = consumer.communicate(timeout=30)
        assert consumer.returncode == 0, err[-2000:]


def test_consumer_publishes_its_counters_per_group(bins, env, tmp_path, topic, schema_db, prefix):
    """A consumer adds its per-batch counts to <prefix>tadak:stats:<group>: /stats
    for --stats-group G == G's summary, and a replay of the same topic in another
    group never moves them (it used to add its 5 to the live page's numbers)."""
    group = unique("g")
    s = Serve(bins, env, tmp_path, topic, schema_db.url, env["REDIS_URL"], prefix,
              extra=("--stats-group", group))
    try:
        for i in range(4):
            assert post_vote(s.port, 51, 1)[0] == 202
        assert post_vote(s.port, 52, 2)[0] == 202

        def consume(g):
            p = subprocess.run(
                [bins.consumer, "--brokers", env["KAFKA_BOOTSTRAP_SERVERS"], "--topic", topic,
                 "--group", g, "--from-beginning", "--database-url", schema_db.url,
                 "--redis-url", env["REDIS_URL"], "--key-prefix", prefix, "--idle-exit", "2"],
                capture_output=True, text=True, timeout=120)
            assert p.returncode == 0, p.stderr[-2000:]
            return json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("{")][0])

        summary = consume(group)
        assert summary["consumed"] == 5 and summary["inserted"] == 2
        want = {"group": group, "accepted": 5} | {
            k: summary[k] for k in ("consumed", "inserted", "dup_redis", "dup_db", "dead_lettered")}
        assert get_json(s.port, "/stats") == (200, want)
        replay = consume(unique("replay"))
        assert replay["consumed"] == 5 and replay["inserted"] == 0
        assert get_json(s.port, "/stats") == (200, want)
    finally:
        assert s.stop() == 0
