"""tadak-consumer and the Redis side of the gate, against the real stack:
locks of dead owners are taken over (and those of live ones are not), a
restart under the same --instance-id takes its predecessor's locks, a
running consumer keeps its alive key and retires it at exit, two databases
cannot share one key prefix, and a Redis connection cut again and again
neither kills the consumer nor loses or splits its stats.

Owner liveness (common/gate.h): every consumer keeps
<prefix>tadak:alive:<id> = <owner>, id = its instance id, or its owner
without one. A foreign "P <owner> <event>" lock is taken over when that alive
key does not name <owner>.
"""
import random
import re
import threading
import time
import urllib.request
import uuid
from urllib.parse import urlsplit

import pytest

from conftest import fresh_database, free_port, produce, run, slow, unique, wait_for
from test_consumer import (Proxy, committed, consume, consumer_args, finish_logged, in_log,
                           start_logged, token, tokens_in, vote)

ALIVE = "tadak:alive:"
STATS = "tadak:stats:"  # + the consumer group
OUTCOMES = ("inserted", "dup_redis", "dup_db", "dead_lettered")


def owner_of(proc):
    """The owner the running consumer logged at start."""
    wait_for(in_log(proc, "consumer started"), 60, "the consumer to start")
    m = re.search(r'consumer started.* owner=(\S+)', proc.log.read_text())
    assert m, proc.log.read_text()[-2000:]
    return m.group(1)


def metric(port, name):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    m = re.search(rf"^{name} (\d+)$", text, re.M)
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------- takeover

def test_dead_owner_lock_is_taken_over(bins, env, topic, db, prefix, redis_client):
    key = prefix + token(1, 1)
    dead = "deadhost:1:abcd1234"
    assert redis_client.get(prefix + ALIVE + dead) is None  # nobody keeps that owner alive
    redis_client.set(key, f"P {dead} {uuid.uuid4()}", px=60000)
    produce(env, topic, [vote(1, 1)])
    t0 = time.monotonic()
    s, err = consume(bins, env, topic, db, prefix)
    # Taken on first sight, not after the 60 s lock TTL: no lock-held retry at all.
    assert time.monotonic() - t0 < 30
    assert s["inserted"] == 1 and s["retries"] == 0
    assert db.count(f"token = '{token(1, 1)}'") == 1
    assert "took over locks of dead owners" in err and "count=1" in err
    assert redis_client.get(key) == b"1"


def test_live_owner_lock_still_waits(bins, env, topic, db, prefix, redis_client, tmp_path):
    key = prefix + token(1, 1)
    live = "livehost:1:abcd1234"
    lock = f"P {live} {uuid.uuid4()}"
    redis_client.set(prefix + ALIVE + live, live, px=60000)  # the owner lives through the test
    redis_client.set(key, lock, px=60000)
    # All on one partition, the locked vote first: once the others are in,
    # the consumer has certainly seen the locked one.
    others = [vote(u, 1) for u in range(2, 22)]
    produce(env, topic, [vote(1, 1)] + others, keys=[b"one-partition"] * 21)
    port = free_port()
    proc = start_logged(bins, env, topic, db, prefix, tmp_path,
                        extra=("--metrics", f"127.0.0.1:{port}"))
    try:
        me = owner_of(proc)
        # It announces itself: an alive key naming its own owner.
        assert redis_client.get(prefix + ALIVE + me) == me.encode()
        wait_for(lambda: db.count() >= 20, 60, "the 20 unlocked votes")
        wait_for(lambda: (metric(port, "tadak_consumer_retries_total") or 0) >= 4, 30,
                 "a few lock-held retries")
        assert db.count(f"token = '{token(1, 1)}'") == 0, "inserted while its live owner held it"
        assert redis_client.get(key) == lock.encode()  # nobody took it from the owner
        redis_client.delete(key)  # the owner gave it up
        wait_for(lambda: db.count(f"token = '{token(1, 1)}'") == 1, 30, "the vote once free")
    finally:
        s, err = finish_logged(proc)
    assert s["inserted"] == 21 and s["retries"] >= 4
    assert "took over" not in err
    assert redis_client.get(key) == b"1"


def test_restart_same_instance_takes_own_locks(bins, env, topic, db, prefix, redis_client):
    key = prefix + token(1, 1)
    old = "inst-a@host:1:abcd1234"  # a predecessor under instance id inst-a, just died
    alive = prefix + ALIVE + "inst-a"
    redis_client.set(alive, old, px=60000)
    redis_client.set(key, f"P {old} {uuid.uuid4()}", px=60000)
    produce(env, topic, [vote(1, 1)])
    t0 = time.monotonic()
    s, err = consume(bins, env, topic, db, prefix, extra=("--instance-id", "inst-a"))
    assert time.monotonic() - t0 < 30  # not after the 60 s TTL of either key
    assert s["inserted"] == 1 and s["retries"] == 0
    assert "took over locks of dead owners" in err
    assert redis_client.get(key) == b"1"
    # The successor took the alive key over (and may have retired it at exit).
    now = redis_client.get(alive)
    assert now is None or (now.startswith(b"inst-a@") and now != old.encode())


def test_alive_key_heartbeat_and_retire(bins, env, topic, db, prefix, redis_client, tmp_path):
    produce(env, topic, [vote(1, 1)])
    proc = start_logged(bins, env, topic, db, prefix, tmp_path)
    try:
        me = owner_of(proc)
        alive = prefix + ALIVE + me
        wait_for(lambda: redis_client.get(alive) == me.encode(), 10, "the alive key")
        t0 = time.monotonic()
        # Alive past its 5 s TTL: the consumer refreshes it while it runs.
        wait_for(lambda: time.monotonic() - t0 > 6.5 and redis_client.get(alive) == me.encode(),
                 12, "the alive key to outlive its TTL")
        assert 0 < redis_client.pttl(alive) <= 5000
    finally:
        s, _ = finish_logged(proc)
    assert s["inserted"] == 1
    assert redis_client.get(alive) is None  # a clean exit retires it at once


# ---------------------------------------------------------------- namespace

@pytest.fixture
def db2(env):
    yield from fresh_database(env, "tadak_test2")


def test_two_databases_one_redis_prefix(bins, env, topic, db, db2, prefix, redis_client):
    votes = [vote(u, 1) for u in range(1, 21)]
    produce(env, topic, votes)
    s, _ = consume(bins, env, topic, db, prefix)
    assert s["inserted"] == 20
    # Another environment, the same votes, the same Redis and key prefix.
    topic2, group2 = unique("t_two_db"), unique("g_two_db")
    produce(env, topic2, votes)
    p = run(consumer_args(bins, env, topic2, db2, prefix, group=group2), timeout=120)
    assert p.returncode == 1, p.stderr[-3000:]
    assert "key prefix" in p.stderr and prefix in p.stderr, p.stderr[-3000:]
    assert "already holds markers of database" in p.stderr and "--key-prefix" in p.stderr
    assert p.stdout == ""  # refused before consuming anything: no summary
    assert db2.count() == 0
    # Nothing of topic2 was settled (as a duplicate) or committed: with a
    # prefix of its own, the same group records every vote.
    prefix2 = unique("tk2") + ":"
    try:
        s2, _ = consume(bins, env, topic2, db2, prefix2, group=group2)
        assert s2["consumed"] == 20 and s2["inserted"] == 20 and s2["dup_redis"] == 0
        assert tokens_in(db2) == {token(u, 1) for u in range(1, 21)}
    finally:
        keys = list(redis_client.scan_iter(match=prefix2 + "*", count=1000))
        if keys:
            redis_client.delete(*keys)
    assert db.count() == 20


# ---------------------------------------------------------------- connection cuts

class StatsCutProxy(Proxy):
    """A Proxy that cuts Redis where a stats burst is in flight. arm(): the
    next chunk the consumer sends with <prefix>tadak:stats in it starts a
    partition - that chunk is swallowed (the burst is never applied), or with
    lose_reply forwarded and everything after it swallowed both ways (applied,
    its reply never comes back); cut() then closes every connection."""

    MARK = STATS.encode()

    def __init__(self, host, port):
        self.armed = self.lose_reply = self.swallow = False
        self.hit = threading.Event()
        super().__init__(host, port)

    def arm(self, lose_reply):
        self.hit.clear()
        self.lose_reply = lose_reply
        self.armed = True

    def forward(self, dst, data, to_upstream):
        if to_upstream and self.armed and self.MARK in data:
            self.armed = False
            if self.lose_reply:
                dst.sendall(data)
            self.swallow = True
            self.hit.set()
            return
        if not self.swallow:
            dst.sendall(data)

    def cut(self):
        self.stop()
        self.swallow = False


def stats_hash(redis_client, prefix, group):
    return {k.decode(): int(v) for k, v in redis_client.hgetall(prefix + STATS + group).items()}


@slow  # make test: the chaos suite's test_redis_sigkill_repeatedly, and test_consumer's Redis outage
def test_redis_cut_repeatedly_keeps_consumer_and_stats(bins, env, topic, db, prefix, tmp_path,
                                                        redis_client):
    rnd = random.Random(20260)
    distinct = [(u, rnd.randint(1, 4)) for u in range(1, 8001)]
    msgs = [vote(u, c) for u, c in distinct] + [vote(u, c) for u, c in rnd.choices(distinct,
                                                                                  k=12000)]
    rnd.shuffle(msgs)
    slices = [msgs[i:i + 1000] for i in range(0, len(msgs), 1000)]
    cut_after = set(rnd.sample(range(len(slices) - 1), 8))
    u = urlsplit(env["REDIS_URL"])
    proxy = StatsCutProxy(u.hostname, u.port)
    url = f"redis://127.0.0.1:{proxy.port}{u.path}"
    proc = None
    try:
        for i, part in enumerate(slices):
            cut = i in cut_after
            if cut:  # the scenario: a cut at a random moment, on a stats burst in flight
                time.sleep(rnd.uniform(0.1, 0.5))
                proxy.arm(lose_reply=rnd.random() < 0.5)
            produce(env, topic, part)
            if proc is None:  # the topic exists before the consumer subscribes
                proc = start_logged(bins, env, topic, db, prefix, tmp_path, redis_url=url)
            if not cut:
                continue
            wait_for(lambda: proxy.hit.is_set() or proc.poll() is not None, 20,
                     "a stats burst to cut")
            time.sleep(rnd.uniform(0.05, 0.3))  # how long the partition lasts
            proxy.cut()
            time.sleep(rnd.uniform(0.05, 0.3))  # how long Redis stays unreachable
            proxy.start()
            assert proc.poll() is None, f"consumer died ({proc.returncode}) on a cut"
        wait_for(lambda: committed(env, topic, f"g_{topic}") == len(msgs) or
                 proc.poll() is not None, 60, "every vote settled and committed")
        assert proc.poll() is None, f"consumer died ({proc.returncode})"
    finally:
        proxy.start() if proxy.listener._closed else None
        if proc is not None:
            s, err = finish_logged(proc)
    assert err.count("redis reachable again") >= 8  # every cut was an outage, and it ended
    assert s["consumed"] == len(msgs)
    assert db.count() == len(distinct)
    assert tokens_in(db) == {token(u, c) for u, c in distinct}
    # Bursts are all-or-nothing and none is lost: the fields agree, and nothing
    # is missing (a burst whose reply was cut after Redis applied it counts twice).
    h = wait_for(lambda: (h := stats_hash(redis_client, prefix, f"g_{topic}")).get("consumed", 0) >=
                 s["consumed"] and h, 10, "the stats to catch up")
    assert h["consumed"] == sum(h.get(k, 0) for k in OUTCOMES), h
    assert h["inserted"] >= s["inserted"], (h, s)
