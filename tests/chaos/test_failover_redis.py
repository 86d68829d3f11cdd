"""Redis failover under Sentinel (issue #24).

A Redis of the suite's own with a replica and three Sentinels
(`TADAK_REDIS_SENTINEL=1 scripts/stack`, Redis services only, in
<TADAK_CHAOS_STACK_DIR>/sentinel so that tests/chaos/run's trap removes it
too; see tests/tools/redis_sentinel.py). Kafka and PostgreSQL are the
suite's private stack's.

  test_stack_replicates_and_fails_over: the stack part. A key set on the
    master reaches the replica; the three Sentinels name the same master;
    after SIGKILL of the master they name the replica, which says ROLE
    master; the old master started again comes back as a replica of the
    new one, not as a second, empty master; a Sentinel restarted while the
    replica is down starts and names the same master.

  test_redis_master_sigkill_sentinel_failover: the scenario. Two consumers
    and a `tadak-producer serve` reach Redis by the redis+sentinel:// URL;
    `tadak-producer load` streams votes with duplicates; the master is
    SIGKILLed mid-stream and Sentinel promotes the replica. Every
    acknowledged vote (the load's acks and the server's) has exactly one
    row; no consumer exits; done markers and locks written to the old
    master and not yet replicated are simply missing on the new one, so
    their duplicates reach PostgreSQL, whose ON CONFLICT decides (dup_db).
    A vote with an Idempotency-Key is answered 202 again once the producer
    has found the new master. Reported: failover_s (kill to the first
    consumer's "redis reachable again" on the new master), idem_s (kill to
    the first keyed 202), dup_db.
"""
import datetime as dt
import http.client
import json
import os
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from conftest import FULL, REPO, _load, pause, wait_for
from test_chaos import FINISH_S, JOIN_S, assert_clean_exit, free_port, http_ok, joined

rs = _load("tadak_redis_sentinel", REPO / "tests" / "tools" / "redis_sentinel.py")

FAILOVER_DEADLINE = 30  # s: down-after 1 s, then a vote and a promote
FAILOVER = dict(users=3000, dup=3, rate=300) if FULL else dict(users=1000, dup=3, rate=200)


@pytest.fixture(scope="module")
def sentinel_stack():
    given = os.environ.get("TADAK_CHAOS_STACK_DIR")
    state = Path(given) / "sentinel" if given else Path(tempfile.mkdtemp(prefix="tadak-sent-"))
    state.mkdir(parents=True, exist_ok=True)
    s = rs.SentinelStack(state)
    try:
        s.up()
        yield s
    finally:
        s.clean()
        if not given:
            shutil.rmtree(state, ignore_errors=True)


@pytest.mark.skipif(not FULL and os.environ.get("TADAK_SLOW") != "1",
                    reason="the failover scenario below covers it: make chaos / make test-slow")
def test_stack_replicates_and_fails_over(sentinel_stack):
    s = sentinel_stack
    old, new = s.master_service(), None
    assert old, f"the Sentinels do not agree on a master:\n{s.status()}"
    new = "redis-replica" if old == "redis" else "redis"
    assert s.url.startswith("redis+sentinel://") and s.url.endswith("/tadak/0"), s.url
    assert f"master        tadak at 127.0.0.1:{s.ports[old]} (3 of 3" in s.status(), s.status()

    key, value = f"failover:{uuid.uuid4().hex}", uuid.uuid4().hex
    s.client(old).set(key, value)
    wait_for(lambda: s.client(new).get(key) == value.encode(), 20, "the key on the replica")

    t0 = time.monotonic()
    s.kill(old)
    wait_for(lambda: s.agreed_master() == s.ports[new], FAILOVER_DEADLINE,
             "all three Sentinels to name the replica", interval=0.1)
    failover_s = time.monotonic() - t0
    assert s.role(new) == "master"
    assert s.client(new).get(key) == value.encode()
    print(f"\nscenario=sentinel_stack_failover failover_s={failover_s:.1f}")

    s.start(old)
    wait_for(lambda: s.role(old) == "slave", 20, "the old master to come back as a replica")
    wait_for(lambda: s.client(old).get(key) == value.encode(), 20, "the key on the old master")
    assert s.agreed_master() == s.ports[new]

    # A Sentinel restarted while the replica is down starts (it keeps its
    # id; it cannot learn of a replica that is not running).
    s.cmd("stop-service", "sentinel-2")
    s.kill(old)
    s.start("sentinels")
    assert s.master_port(2) == s.ports[new]
    s.restore()


def keyed_vote(port, user, key):
    body = json.dumps({"user_id": user, "candidate_id": 1}).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/votes", body, {"Content-Type": "application/json",
                                              "Idempotency-Key": key})
        resp = conn.getresponse()
        return resp.status, resp.read()
    except OSError:
        return None, b""
    finally:
        conn.close()


def reachable_again_at(proc, port):
    """Wall-clock time of proc's first "redis reachable again" on port, or None."""
    for ln in proc.text().splitlines():
        if "redis reachable again" in ln and f" port={port}" in ln:
            m = re.match(r"ts=(\S+)Z ", ln)
            return dt.datetime.fromisoformat(m.group(1)).replace(
                tzinfo=dt.timezone.utc).timestamp() if m else None
    return None


def test_redis_master_sigkill_sentinel_failover(scenario, sentinel_stack):
    s, z, r = scenario, FAILOVER, sentinel_stack
    r.restore()
    s.create_topic()
    acks, srv_acks, port = s.tmp / "acks.jsonl", s.tmp / "serve.acks", free_port()
    srv = s.spawn("serve", [s.bins.producer, "serve", "--listen", f"127.0.0.1:{port}",
                            "--topic", s.topic, "--brokers", s.env["KAFKA_BOOTSTRAP_SERVERS"],
                            "--ack-log", srv_acks, "--redis-url", r.url, "--key-prefix", s.prefix,
                            "--idempotency-timeout-ms", "500"])
    wait_for(lambda: http_ok(port) or not srv.alive(), 30, "serve /healthz")
    user, keyed_ok = 50_000_000, 0  # the load's users are 1..users

    def keyed_202():
        nonlocal user, keyed_ok
        user += 1
        ok = keyed_vote(port, user, f"k{user}")[0] == 202
        keyed_ok += ok
        return ok
    wait_for(keyed_202, 30, "a first keyed 202")
    consumers = [s.consumer(redis_url=r.url) for _ in range(2)]
    for c in consumers:
        wait_for(joined(c), JOIN_S, "the consumer to join")
    load = s.load(z["users"], z["dup"], z["rate"], acks)
    wait_for(lambda: s.rows() > z["users"] // 10, 120, "rows before the failover")
    pause(s.rng, 0.3, 2.0)
    old = r.master_service()
    new = "redis-replica" if old == "redis" else "redis"
    killed_at = time.time()
    r.kill(old)
    wait_for(keyed_202, 60, "a keyed 202 after the failover", interval=0.1)
    idem_s = time.time() - killed_at
    wait_for(lambda: all(reachable_again_at(c, r.ports[new]) for c in consumers), 60,
             "both consumers on the new master", interval=0.2)
    failover_s = min(reachable_again_at(c, r.ports[new]) for c in consumers) - killed_at
    assert all(c.alive() for c in consumers), [c.text()[-2000:] for c in consumers]
    assert load.wait(300) == 0, load.text()[-2000:]
    s.wait_rows(z["users"] + keyed_ok, FINISH_S)
    assert_clean_exit(srv)  # its ack log is complete now
    for c in consumers:
        assert_clean_exit(c)
    dup_db = sum((c.summary() or {}).get("dup_db", 0) for c in consumers)
    v = s.verify(acks, srv_acks)
    s.report(sum(1 for p in (acks, srv_acks) for ln in p.read_text().splitlines() if ln), v,
             f"failover_s={failover_s:.1f} idem_s={idem_s:.1f} dup_db={dup_db}")
    assert v["rows"] == z["users"] + keyed_ok
    r.restore()
