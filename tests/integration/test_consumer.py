"""tadak-consumer against the real stack: one row per vote token, whatever
arrives (duplicates, bursts across partitions, replays, poison), and whatever
breaks (Redis wiped or unreachable, a lock held by another consumer).

Every test runs the consumer binary with its own topic, group, database and
Redis key prefix, `--from-beginning --idle-exit 3`, and reads the one JSON
summary line it prints at exit.
"""
import json
import os
import random
import signal
import socket
import subprocess
import threading
import urllib.request
import uuid
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from confluent_kafka import Consumer, TopicPartition

from conftest import CORPUS, consume_all, create_topic, produce, run, slow, unique, wait_for

IDLE = "3"
TIMEOUT = 120


def vote(user, candidate, event_id=None, token=None):
    d = {"user_id": user, "candidate_id": candidate}
    if event_id:
        d["event_id"] = event_id
    if token:
        d["token"] = token
    return json.dumps(d).encode()


def token(user, candidate):
    return f"vote_lock:{user}:{candidate}"


def consumer_args(bins, env, topic, db, prefix, group=None, redis_url=None, extra=(),
                  idle=IDLE):
    idle_args = ["--idle-exit", idle] if idle else []
    return [bins.consumer,
            "--brokers", env["KAFKA_BOOTSTRAP_SERVERS"],
            "--redis-url", redis_url or env["REDIS_URL"],
            "--database-url", db.url,
            "--topic", topic,
            "--group", group or f"g_{topic}",
            "--key-prefix", prefix,
            "--from-beginning", *idle_args, *extra]


def summary_of(stdout):
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    assert len(lines) == 1, f"expected one JSON summary line, got: {stdout!r}"
    s = json.loads(lines[0])
    assert set(s) == {"consumed", "inserted", "dup_redis", "dup_db", "dead_lettered", "retries"}
    # Every settled message is exactly one of the four outcomes.
    assert s["consumed"] == s["inserted"] + s["dup_redis"] + s["dup_db"] + s["dead_lettered"]
    return s


def consume(bins, env, topic, db, prefix, **kw):
    p = run(consumer_args(bins, env, topic, db, prefix, **kw), timeout=TIMEOUT)
    assert p.returncode == 0, f"consumer exited {p.returncode}:\n{p.stderr[-3000:]}"
    return summary_of(p.stdout), p.stderr


def start(bins, env, topic, db, prefix, **kw):
    return subprocess.Popen(consumer_args(bins, env, topic, db, prefix, **kw),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc):
    out, err = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, f"consumer exited {proc.returncode}:\n{err[-3000:]}"
    return summary_of(out), err


def tokens_in(db):
    return {r[0] for r in db.rows("select token from votes")}


# ---------------------------------------------------------------- 1. walking skeleton

def test_one_vote_one_row(bins, env, topic, db, prefix):
    produce(env, topic, [vote(7, 3)])
    s, _ = consume(bins, env, topic, db, prefix)
    assert s["consumed"] == 1 and s["inserted"] == 1
    rows = db.rows("select token, user_id, candidate_id, event_id::text, kafka_offset from votes")
    assert len(rows) == 1
    tok, user, cand, event_id, offset = rows[0]
    assert (tok, user, cand, offset) == (token(7, 3), 7, 3, 0)
    uuid.UUID(event_id)  # derived from topic/partition/offset: a valid UUID


def test_event_id_is_kept_and_derived_ids_are_stable(bins, env, topic, db, prefix):
    eid = str(uuid.uuid4())
    produce(env, topic, [vote(1, 1, event_id=eid, token=token(1, 1)), vote(2, 1)])
    s, _ = consume(bins, env, topic, db, prefix)
    assert s["inserted"] == 2
    rows = dict(db.rows("select token, event_id::text from votes"))
    assert rows[token(1, 1)] == eid
    derived = rows[token(2, 1)]
    assert derived != eid
    # Replaying with Redis forgotten and the table emptied derives the same id.
    db.rows("delete from votes returning 1")
    s, _ = consume(bins, env, topic, db, prefix + "again:", group=unique("replay"))
    assert dict(db.rows("select token, event_id::text from votes"))[token(2, 1)] == derived


def test_migrate_only_applies_schema(bins, env, db):
    procs = [subprocess.Popen([bins.consumer, "migrate", "--database-url", db.url],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert out == ""
    assert db.count() == 0  # the table exists (count() returns 0 for a missing one too)
    assert db.rows("select to_regclass('votes')::text")[0][0] == "votes"


def test_tadak_producer_send_to_row(bins, env, topic, db, prefix):
    if not os.path.exists(bins.producer):
        pytest.skip("tadak-producer is not built")
    helptext = run([bins.producer, "--help"], timeout=30)
    if "send" not in helptext.stdout + helptext.stderr:
        pytest.skip("tadak-producer has no send command yet")
    p = run([bins.producer, "send", "--brokers", env["KAFKA_BOOTSTRAP_SERVERS"],
             "--topic", topic, "--user", "100", "--candidate", "1"], timeout=60)
    assert p.returncode == 0, p.stderr
    s, _ = consume(bins, env, topic, db, prefix)
    assert s["inserted"] == 1
    assert db.rows("select token, user_id, candidate_id from votes") == [(token(100, 1), 100, 1)]


# ---------------------------------------------------------------- 2-5. dedupe

def test_five_copies_one_row(bins, env, topic, db, prefix):
    produce(env, topic, [vote(42, 9)] * 5, keys=[token(42, 9)] * 5)
    s, _ = consume(bins, env, topic, db, prefix)
    assert s["consumed"] == 5
    assert s["inserted"] == 1
    assert s["dup_redis"] + s["dup_db"] == 4
    assert db.count() == 1


def test_burst_three_consumers(bins, env, topic, db, prefix):
    users, clicks = 1000, 5
    rnd = random.Random(1234)
    msgs = []
    for u in range(1, users + 1):
        c = rnd.randint(1, 4)
        for _ in range(clicks):
            # Without a key a copy lands on any partition: duplicates meet in
            # different consumers, only Redis and PostgreSQL can stop them.
            keyed = rnd.random() < 0.5
            msgs.append((vote(u, c), token(u, c).encode() if keyed else None))
    rnd.shuffle(msgs)
    produce(env, topic, [m[0] for m in msgs], keys=[m[1] for m in msgs])
    group = unique("burst")
    procs = [start(bins, env, topic, db, prefix, group=group) for _ in range(3)]
    sums = [finish(p)[0] for p in procs]
    assert sum(s["consumed"] for s in sums) == users * clicks
    assert sum(s["inserted"] for s in sums) == users
    assert db.count() == users
    assert len(tokens_in(db)) == users
    assert db.rows("select count(distinct user_id) from votes")[0][0] == users


def test_same_vote_after_it_is_recorded(bins, env, topic, db, prefix):
    group = unique("g")
    produce(env, topic, [vote(5, 5)])
    s, _ = consume(bins, env, topic, db, prefix, group=group)
    assert s["inserted"] == 1
    # A retry hours later, with a new event id: still the same vote.
    produce(env, topic, [vote(5, 5, event_id=str(uuid.uuid4()))])
    s, _ = consume(bins, env, topic, db, prefix, group=group)
    assert s["consumed"] == 1  # the group resumed after the first message
    assert s["inserted"] == 0 and s["dup_redis"] == 1
    assert db.count() == 1


def test_replay_into_fresh_group_inserts_nothing(bins, env, topic, db, prefix):
    produce(env, topic, [vote(u, 1) for u in range(1, 51)])
    s, _ = consume(bins, env, topic, db, prefix)
    assert s["inserted"] == 50
    s, _ = consume(bins, env, topic, db, prefix, group=unique("replay"))
    assert s["consumed"] == 50
    assert s["inserted"] == 0 and s["dup_redis"] == 50
    assert db.count() == 50


# ---------------------------------------------------------------- 6. Redis wiped / down

@slow  # make test: the chaos suite's test_redis_wiped_and_unreachable
def test_redis_wiped_then_unreachable(bins, env, topic, db, prefix, redis_client):
    first = [(u, 2) for u in range(1, 101)]
    produce(env, topic, [vote(u, c) for u, c in first for _ in range(2)])
    s, _ = consume(bins, env, topic, db, prefix)
    assert s["inserted"] == 100
    assert len(list(redis_client.scan_iter(match=prefix + "vote_lock:*"))) == 100

    # Wiped (only our own keys: the Redis is shared): PostgreSQL still says no.
    redis_client.delete(*redis_client.scan_iter(match=prefix + "*"))
    s, _ = consume(bins, env, topic, db, prefix, group=unique("wiped"))
    assert s["consumed"] == 200 and s["inserted"] == 0
    assert s["dup_db"] >= 100
    assert db.count() == 100

    # Unreachable: the consumer warns, carries on, PostgreSQL alone dedupes.
    dead = "redis://127.0.0.1:1/0"
    s, err = consume(bins, env, topic, db, prefix, group=unique("noredis"), redis_url=dead)
    assert "redis unavailable" in err
    assert s["consumed"] == 200 and s["inserted"] == 0 and s["dup_redis"] == 0
    group = unique("noredis2")
    consume(bins, env, topic, db, prefix, group=group, redis_url=dead)
    second = [(u, 3) for u in range(1, 51)]
    produce(env, topic, [vote(u, c) for u, c in second for _ in range(3)])
    s, err = consume(bins, env, topic, db, prefix, group=group, redis_url=dead)
    assert s["consumed"] == 150 and s["inserted"] == 50 and s["dup_db"] == 100
    assert tokens_in(db) == {token(u, c) for u, c in first + second}
    assert err.count("redis unavailable") == 1  # once per outage, not per batch


# ---------------------------------------------------------------- 7. lock held elsewhere

def test_lock_held_by_another_owner(bins, env, topic, db, prefix, redis_client):
    key = prefix + token(1, 1)
    # A live owner: its alive key is there (a lock of a dead one is taken over).
    redis_client.set(prefix + "tadak:alive:other-owner", "other-owner", px=60000)
    redis_client.set(key, "P other-owner x", px=60000)
    # All on one partition, the locked vote first: once the others are in,
    # the consumer has certainly seen the locked one.
    others = [vote(u, 1) for u in range(2, 22)]
    produce(env, topic, [vote(1, 1)] + others, keys=[b"one-partition"] * 21)
    proc = start(bins, env, topic, db, prefix)
    try:
        wait_for(lambda: db.count() >= 20, 60, "the 20 unlocked votes")
        assert db.count(f"token = '{token(1, 1)}'") == 0, "inserted while locked elsewhere"
        assert redis_client.pttl(key) > 0  # so the check above ran while the lock was held
        assert redis_client.get(key) == b"P other-owner x"  # and nobody took it from the owner
        redis_client.pexpire(key, 1)  # the other owner died: its lock expires
    finally:
        s, _ = finish(proc)
    assert db.count(f"token = '{token(1, 1)}'") == 1
    assert db.count() == 21
    assert s["inserted"] == 21 and s["retries"] > 0
    assert redis_client.get(key) == b"1"


def test_other_owner_finishing_makes_a_duplicate(bins, env, topic, db, prefix, redis_client):
    key = prefix + token(3, 1)
    # A live owner: its alive key is there (a lock of a dead one is taken over).
    redis_client.set(prefix + "tadak:alive:other-owner", "other-owner", px=60000)
    redis_client.set(key, "P other-owner x", px=60000)
    produce(env, topic, [vote(3, 1), vote(4, 1)], keys=[b"k", b"k"])
    proc = start(bins, env, topic, db, prefix)
    try:
        wait_for(lambda: db.count() >= 1, 60, "the unlocked vote")
        redis_client.set(key, "1", px=60000)  # the other owner recorded it
    finally:
        s, _ = finish(proc)
    assert s["inserted"] == 1 and s["dup_redis"] == 1 and s["retries"] > 0
    assert db.count(f"token = '{token(3, 1)}'") == 0  # the other owner's row, not ours


# ---------------------------------------------------------------- 8. poison

@pytest.mark.own_topic
def test_poison_is_dead_lettered(bins, env, topic, db, prefix):
    files = sorted(CORPUS.glob("*.json"))
    assert len(files) == 318
    rnd = random.Random(99)
    bad = [(f.read_bytes(), "corpus") for f in files]
    bad += [(bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 64))), "garbage")
            for _ in range(20)]
    bad += [
        (b"", "empty_body"),
        (None, "empty_body"),
        (b'{"user_id":"1","candidate_id":2}', "wrong_type"),
        (b'{"user_id":0,"candidate_id":2}', "out_of_range"),
        (b'{"user_id":1,"candidate_id":9223372036854775808}', "out_of_range"),
        (b'{"user_id":1}', "missing_field"),
        (b'[1,2]', "not_an_object"),
        (b'{"user_id":1,"candidate_id":2,"token":"vote_lock:1:3"}', "token_mismatch"),
        (b'{"user_id":1,"candidate_id":2,"event_id":"nope"}', "invalid_event_id"),
        (b'{"user_id":1,"candidate_id":2,"pad":"' + b"x" * (1024 * 1024) + b'"}', "too_large"),
    ]
    good = [vote(u, 8) for u in range(1, 61)]
    msgs = [(v, "good") for v in good] + bad
    rnd.shuffle(msgs)
    # The broker's default limit is ~1 MiB: this topic takes the oversize value.
    create_topic(env, topic, {"max.message.bytes": str(4 * 1024 * 1024)})
    produce(env, topic, [m[0] for m in msgs])

    s, err = consume(bins, env, topic, db, prefix)
    assert s["dead_lettered"] == len(bad)
    assert s["inserted"] == len(good)
    assert db.count() == len(good)
    assert err.count("invalid message dead-lettered") == len(bad)

    source = {(m.partition, m.offset): m.value
              for m in consume_all(env, topic, expected=len(msgs))}
    dlq = consume_all(env, f"{topic}.dlq", expected=len(bad))
    assert len(dlq) == len(bad)
    names = {"empty_body", "too_large", "invalid_json", "not_an_object", "missing_field",
             "wrong_type", "out_of_range", "invalid_event_id", "token_mismatch"}
    expected_kinds = {}
    for v, kind in bad:
        expected_kinds[v or b""] = kind
    seen = set()
    for m in dlq:
        h = m.headers
        assert h["tadak-source-topic"] == topic.encode()
        where = (int(h["tadak-source-partition"]), int(h["tadak-source-offset"]))
        assert where not in seen
        seen.add(where)
        original = source[where] or b""
        assert h["tadak-error"].decode() in names
        assert h["tadak-detail"]
        if "tadak-original-size" in h:
            assert int(h["tadak-original-size"]) == len(original) > 1024 * 1024
            assert (m.value or b"") == original[:1024]
        else:
            assert (m.value or b"") == original
        kind = expected_kinds[original]
        if kind not in ("corpus", "garbage"):
            assert h["tadak-error"].decode() == kind, (original[:80], h)


# ---------------------------------------------------------------- outages (through our own proxy)

class Proxy:
    """A TCP forwarder this test owns: stop() is an outage of the service
    behind it (open connections cut, new ones refused) without touching the
    shared server; start() ends the outage on the same port."""

    def __init__(self, host, port):
        self.upstream = (host, port)
        self.port = None
        self.lock = threading.Lock()
        self.socks = []
        self.listener = None
        self.start()

    def start(self):
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", self.port or 0))
        ls.listen(64)
        self.port = ls.getsockname()[1]
        self.listener = ls
        threading.Thread(target=self._accept, args=(ls,), daemon=True).start()

    def _accept(self, ls):
        while True:
            try:
                client, _ = ls.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.socks += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src, dst):
        try:
            to_upstream = dst.getpeername()[1] == self.upstream[1]
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self.forward(dst, data, to_upstream)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def forward(self, dst, data, to_upstream):
        """Pass one chunk on; subclasses may hold or drop it."""
        dst.sendall(data)

    def stop(self):
        try:
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        except OSError:
            pass
        self.listener.close()
        with self.lock:
            socks, self.socks = self.socks, []
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def start_logged(bins, env, topic, db, prefix, tmp_path, **kw):
    """A consumer without --idle-exit (phases of a test may be seconds apart),
    its log in a file the test can watch; finish_logged() stops it."""
    log = tmp_path / "consumer.log"
    fh = open(log, "w")
    proc = subprocess.Popen(consumer_args(bins, env, topic, db, prefix, idle=None, **kw),
                            stdout=subprocess.PIPE, stderr=fh, text=True)
    proc.log, proc.fh = log, fh
    return proc


def finish_logged(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=TIMEOUT)
    proc.fh.close()
    err = proc.log.read_text()
    assert proc.returncode == 0, f"consumer exited {proc.returncode}:\n{err[-3000:]}"
    return summary_of(out), err


def committed(env, topic, group):
    """Sum of the group's committed offsets over the topic's partitions."""
    c = Consumer({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"], "group.id": group})
    try:
        md = c.list_topics(topic, timeout=10).topics[topic]
        parts = [TopicPartition(topic, p) for p in md.partitions]
        return sum(max(tp.offset, 0) for tp in c.committed(parts, timeout=10))
    finally:
        c.close()


def in_log(proc, text):
    return lambda: text in proc.log.read_text()


def test_postgresql_outage_pauses_and_resumes(bins, env, topic, db, prefix, tmp_path):
    u = urlsplit(db.url)
    proxy = Proxy(u.hostname, u.port)
    proxied = SimpleNamespace(url=u._replace(netloc=f"{u.username}@127.0.0.1:{proxy.port}")
                              .geturl())
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def paused():
        """tadak_consumer_paused_partitions on /metrics, None before it answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                text = r.read().decode()
        except OSError:
            return None
        line = [ln for ln in text.splitlines()
                if ln.startswith("tadak_consumer_paused_partitions ")]
        return int(line[0].split()[1]) if line else None

    produce(env, topic, [vote(n, 1) for n in range(1, 201)])
    proc = start_logged(bins, env, topic, proxied, prefix, tmp_path,
                        extra=("--metrics", f"127.0.0.1:{port}"))
    try:
        wait_for(lambda: db.count() == 200, 60, "the first 200 votes")
        wait_for(lambda: paused() == 0, 30, "every partition fetching")
        proxy.stop()
        produce(env, topic, [vote(n, 2) for n in range(1, 301) for _ in range(2)])
        wait_for(in_log(proc, "postgresql unavailable"), 60, "the consumer to notice")
        # The outage pauses all 6 partitions of the topic (polling goes on).
        wait_for(lambda: paused() == 6, 30, "every partition paused during the outage")
        assert proc.poll() is None, "the consumer must wait out the outage, not exit"
        proxy.start()
        wait_for(in_log(proc, "postgresql reachable again"), 60, "the consumer to resume")
        wait_for(lambda: paused() == 0, 30, "every partition resumed after the outage")
        wait_for(lambda: db.count() == 500, 60, "every vote")
        wait_for(lambda: committed(env, topic, f"g_{topic}") == 800, 30, "offsets committed")
    finally:
        proxy.start() if proxy.listener._closed else None
        s, err = finish_logged(proc)
    assert db.count() == 500
    assert tokens_in(db) == {token(n, 1) for n in range(1, 201)} | \
        {token(n, 2) for n in range(1, 301)}
    assert s["consumed"] == 800 and s["inserted"] == 500 and s["retries"] > 0
    assert err.count("postgresql unavailable") == 1
    # Offsets were committed for everything: the group has nothing left to read.
    s, _ = consume(bins, env, topic, db, prefix)
    assert s["consumed"] == 0


def test_redis_outage_mid_run(bins, env, topic, db, prefix, tmp_path, redis_client):
    u = urlsplit(env["REDIS_URL"])
    proxy = Proxy(u.hostname, u.port)
    url = f"redis://127.0.0.1:{proxy.port}{u.path}"
    produce(env, topic, [vote(n, 1) for n in range(1, 101)])
    proc = start_logged(bins, env, topic, db, prefix, tmp_path, redis_url=url)
    sent = 100
    try:
        wait_for(lambda: db.count() == 100, 60, "the first 100 votes")
        proxy.stop()
        produce(env, topic, [vote(n, 2) for n in range(1, 101) for _ in range(3)])
        sent += 300
        wait_for(lambda: db.count() == 200, 60, "votes recorded without Redis")
        assert "redis unavailable" in proc.log.read_text()
        proxy.start()
        # The gate reconnects when a batch needs it (at most once a second).
        n = 0
        while "redis reachable again" not in proc.log.read_text():
            n += 1
            assert n < 100, "the consumer never reconnected to Redis"
            produce(env, topic, [vote(n, 3)])
            sent += 1
            wait_for(lambda: db.count() == 200 + n, 30, "the probe vote")
        produce(env, topic, [vote(m, 3) for m in range(1, n + 1)])  # now stopped by Redis
        sent += n
        wait_for(lambda: committed(env, topic, f"g_{topic}") == sent, 30, "offsets committed")
    finally:
        proxy.start() if proxy.listener._closed else None
        s, err = finish_logged(proc)
    assert db.count() == 200 + n
    assert s["consumed"] == sent and s["inserted"] == 200 + n
    assert s["dup_redis"] >= 1  # the last copies met done markers again
    assert err.count("redis unavailable") == 1
    assert redis_client.get(prefix + token(n, 3)) == b"1"


# ---------------------------------------------------------------- shutdown, errors, metrics

def test_sigterm_finishes_and_commits(bins, env, topic, db, prefix, tmp_path):
    produce(env, topic, [vote(n, 1) for n in range(1, 1001)])
    args = [a for a in consumer_args(bins, env, topic, db, prefix) if a not in ("--idle-exit",
                                                                                 IDLE)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: db.count() >= 1, 60, "the first batch")
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-3000:]
    s = summary_of(out)
    assert s["inserted"] == db.count()
    # What this run settled was committed: the same group continues after it.
    s2, _ = consume(bins, env, topic, db, prefix)
    assert s["consumed"] + s2["consumed"] == 1000
    assert db.count() == 1000


def test_bad_usage(bins):
    p = run([bins.consumer, "--batch-size", "0"], timeout=30)
    assert p.returncode == 2 and "batch-size" in p.stderr
    p = run([bins.consumer, "frobnicate"], timeout=30)
    assert p.returncode == 2 and "frobnicate" in p.stderr
    p = run([bins.consumer, "--help"], timeout=30)
    assert p.returncode == 0 and "--idle-exit" in p.stdout and "TADAK_KEY_PREFIX" in p.stdout


def test_kafka_settings_from_the_environment(bins, env, topic, db, prefix):
    """TADAK_KAFKA_<KEY> reaches the consumer's librdkafka as it does the
    producer's (secrets stay off the command line); a refused value is
    named, never echoed."""
    p = run(consumer_args(bins, env, topic, db, prefix),
            env={"TADAK_KAFKA_SESSION_TIMEOUT_MS": "hunter2"}, timeout=60)
    assert p.returncode != 0 and "TADAK_KAFKA_SESSION_TIMEOUT_MS" in p.stderr, p.stderr[-2000:]
    assert "hunter2" not in p.stderr + p.stdout
    produce(env, topic, [vote(1, 1)])
    p = run(consumer_args(bins, env, topic, db, prefix, extra=("--log-level", "debug")),
            env={"TADAK_KAFKA_DEBUG": "cgrp"}, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr[-2000:]
    group_debug = [ln for ln in p.stderr.splitlines()
                   if 'msg="librdkafka"' in ln and f"g_{topic}" in ln]
    assert group_debug, p.stderr[-2000:]  # librdkafka's own group debug lines: the setting took
    assert summary_of(p.stdout)["inserted"] == 1


def test_metrics(bins, env, topic, db, prefix, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    produce(env, topic, [vote(n, 1) for n in range(1, 11)] * 2 + [b"junk"])
    proc = start_logged(bins, env, topic, db, prefix, tmp_path,
                        extra=("--metrics", f"127.0.0.1:{port}"))

    def scrape():
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                return r.read().decode()
        except OSError:
            return ""

    try:
        text = wait_for(lambda: (t := scrape()) and "tadak_consumer_consumed_total 21" in t
                        and 'tadak_consumer_lag{partition="0"} 0' in t and t, 60, "metrics")
    finally:
        s, _ = finish_logged(proc)
    assert "tadak_consumer_inserted_total 10" in text
    assert "tadak_consumer_dead_lettered_total 1" in text
    assert "tadak_consumer_batch_seconds_bucket" in text
    assert s["consumed"] == 21
