"""redis+sentinel:// (issue #24): the consumers' gate and the producer's
Idempotency-Key claims find the Redis master through Sentinel, and follow it
when Sentinel fails it over.

A master, a replica and three Sentinels of this module's own
(tests/tools/redis_sentinel.py: `TADAK_REDIS_SENTINEL=1 scripts/stack`,
Redis services only, in a temporary directory); Kafka and PostgreSQL are the
stack's. Each failover SIGKILLs the master; the next reconnect (at most one a
second) asks the Sentinels again and must land on the promoted replica.
"""
import importlib.util
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import produce, request, run, slow, wait_for
from test_consumer import consumer_args, finish_logged, start_logged, token, vote
from test_producer import Server

_spec = importlib.util.spec_from_file_location(
    "tadak_redis_sentinel", Path(__file__).resolve().parents[1] / "tools" / "redis_sentinel.py")
rs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rs)

# The slower variants run in `make test-slow` (conftest's slow), not in make test's 20 minutes.
FAILOVER_DEADLINE = 60  # s: Sentinel's ~2-3 s, a reconnect a second, a busy machine


def sentinel_stack(tmp_path_factory, name, tls=False):
    s = rs.SentinelStack(tmp_path_factory.mktemp(name), tls=tls)
    try:
        s.up()
        s.restore()
        yield s
    finally:
        s.clean()


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory):
    yield from sentinel_stack(tmp_path_factory, "sentinel")


@pytest.fixture(scope="module")
def tls_sentinels(tmp_path_factory):
    yield from sentinel_stack(tmp_path_factory, "sentinel-tls", tls=True)


@pytest.fixture
def failover(sentinels):
    """kill() SIGKILLs the current master and returns (old, new) services;
    afterwards the old master is started again (as a replica)."""
    sentinels.restore()

    def kill():
        old = sentinels.master_service()
        new = "redis-replica" if old == "redis" else "redis"
        sentinels.kill(old)
        return old, new
    yield kill
    sentinels.restore()


def test_a_url_without_a_known_master_is_refused_at_start(bins, env, topic, db, prefix,
                                                           sentinels):
    """--require-redis names why: every Sentinel asked, none knows the master."""
    url = sentinels.url.replace("/tadak/", "/nosuchmaster/")
    p = run(consumer_args(bins, env, topic, db, prefix, redis_url=url,
                          extra=("--require-redis",)), timeout=60)
    assert p.returncode == 1, p.stderr[-2000:]
    assert "does not know the master" in p.stderr, p.stderr[-2000:]
    assert p.stderr.count("Sentinel 127.0.0.1:") >= 3, p.stderr[-2000:]


def test_consumer_follows_the_master_across_a_failover(bins, env, topic, db, prefix, tmp_path,
                                                       sentinels, failover):
    produce(env, topic, [vote(n, 1) for n in range(1, 51)])
    proc = start_logged(bins, env, topic, db, prefix, tmp_path, redis_url=sentinels.url)
    try:
        wait_for(lambda: db.count() == 50, 60, "the first 50 votes")
        old, new = failover()
        # The gate reconnects when a batch needs it: one probe vote at a time
        # until the consumer says Redis is back, on the promoted replica.
        def back():
            return any("redis reachable again" in ln and f"port={sentinels.ports[new]}" in ln
                       for ln in proc.log.read_text().splitlines())
        n = 0
        while not back():
            n += 1
            assert n < FAILOVER_DEADLINE * 2, "the consumer never reached the new master:\n" + \
                proc.log.read_text()[-3000:]
            assert proc.poll() is None, proc.log.read_text()[-3000:]
            produce(env, topic, [vote(n, 2)])
            wait_for(lambda: db.count() == 50 + n, 30, "the probe vote")
        # Now the done markers are written to the new master.
        produce(env, topic, [vote(n + 1, 2)])
        wait_for(lambda: sentinels.client(new).get(prefix + token(n + 1, 2)) == b"1", 30,
                 "the done marker on the new master")
    finally:
        s, err = finish_logged(proc)
    assert db.count() == 50 + n + 1
    assert s["inserted"] == 50 + n + 1
    assert f"port={sentinels.ports[old]}" in err  # the outage named the old master


def probe_until(proc, db, topic, env, done, base, deadline):
    """One probe vote at a time (the gate reconnects when a batch needs it)
    until done(); the number of probes sent."""
    n, end = 0, time.monotonic() + deadline
    while not done():
        assert time.monotonic() < end, "timed out:\n" + proc.log.read_text()[-3000:]
        assert proc.poll() is None, proc.log.read_text()[-3000:]
        n += 1
        produce(env, topic, [vote(n, 2)])
        wait_for(lambda: db.count() == base + n, 30, "the probe vote")
    return n


@slow
def test_consumer_leaves_a_master_demoted_while_it_runs(bins, env, topic, db, prefix, tmp_path,
                                                        sentinels, failover):
    """An operator's REPLICAOF demotes the master but leaves it running and
    its clients connected: their writes get READONLY. The consumer drops that
    connection and asks the Sentinels again until they name the new master
    (they take a master that calls itself a replica for down: ~30 s here).
    Before, it stayed on the demoted node for good, PostgreSQL alone deciding."""
    produce(env, topic, [vote(n, 1) for n in range(1, 51)])
    proc = start_logged(bins, env, topic, db, prefix, tmp_path, redis_url=sentinels.url)
    try:
        wait_for(lambda: db.count() == 50, 60, "the first 50 votes")
        old = sentinels.master_service()
        new = "redis-replica" if old == "redis" else "redis"
        sentinels.client(new).execute_command("REPLICAOF", "NO", "ONE")
        sentinels.client(old).execute_command("REPLICAOF", "127.0.0.1", str(sentinels.ports[new]))

        def on_new():
            return any("redis reachable again" in ln and f"port={sentinels.ports[new]}" in ln
                       for ln in proc.log.read_text().splitlines())
        n = probe_until(proc, db, topic, env, on_new, 50, 120)
        produce(env, topic, [vote(n + 1, 2)])
        wait_for(lambda: sentinels.client(new).get(prefix + token(n + 1, 2)) == b"1", 30,
                 "the done marker on the new master")
    finally:
        s, err = finish_logged(proc)
    assert any("redis unavailable" in ln and "READONLY" in ln for ln in err.splitlines()), \
        err[-3000:]
    assert s["inserted"] == 50 + n + 1


def test_producer_idempotency_key_follows_the_master(bins, env, tmp_path, prefix, sentinels,
                                                      failover):
    s = Server(bins, env, tmp_path, f"t_sentinel_{uuid.uuid4().hex[:10]}",
               ["--redis-url", sentinels.url, "--key-prefix", prefix,
                "--idempotency-timeout-ms", "500"])
    user = [1000]

    def keyed_vote(key):
        user[0] += 1
        return s.vote({"user_id": user[0], "candidate_id": 1},
                      headers={"Idempotency-Key": key})[0]
    try:
        wait_for(lambda: keyed_vote(uuid.uuid4().hex) == 202, 30, "a first keyed 202")
        old, new = failover()
        key = None

        def answered():
            nonlocal key
            key = uuid.uuid4().hex
            return keyed_vote(key) == 202
        wait_for(answered, FAILOVER_DEADLINE, "a keyed 202 after the failover", interval=0.2)
        # The claim is on the new master; the same key again is the same answer.
        assert sentinels.client(new).keys(f"{prefix}idem:*{key}")
        status, _, body = s.vote({"user_id": user[0], "candidate_id": 1},
                                 headers={"Idempotency-Key": key})
        assert status == 202, body
        # /stats reads Redis through the same URL: answered, not 503.
        wait_for(lambda: request(s.port, "GET", "/stats")[0] == 200, FAILOVER_DEADLINE,
                 "/stats after the failover")
    finally:
        assert s.stop() == 0, s.log.read_text()[-3000:]


@slow
def test_consumer_follows_the_master_over_tls(bins, env, topic, db, prefix, tmp_path,
                                              tls_sentinels):
    """rediss+sentinel://: TLS to the Sentinels and to the master they name,
    each certificate checked against its own address."""
    t = tls_sentinels
    assert t.url.startswith("rediss+sentinel://") and "?tls_ca=" in t.url, t.url
    produce(env, topic, [vote(n, 1) for n in range(1, 21)])
    proc = start_logged(bins, env, topic, db, prefix, tmp_path, redis_url=t.url)
    try:
        wait_for(lambda: db.count() == 20, 60, "the first 20 votes")
        old = t.master_service()
        new = "redis-replica" if old == "redis" else "redis"
        assert t.client(old).get(prefix + token(20, 1)) == b"1"
        t.kill(old)

        def on_new():
            return any("redis reachable again" in ln and f"port={t.ports[new]}" in ln
                       for ln in proc.log.read_text().splitlines())
        n = probe_until(proc, db, topic, env, on_new, 20, FAILOVER_DEADLINE)
    finally:
        s, err = finish_logged(proc)
        t.restore()
    assert s["inserted"] == 20 + n


def test_a_sentinel_whose_certificate_is_not_trusted_is_refused_at_start(
        bins, env, topic, db, prefix, tmp_path, tls_sentinels):
    """A CA that did not sign the Sentinels' certificates: a setting to fix,
    named at start (the Sentinel's address, never a password)."""
    other = tmp_path / "other-ca"
    other.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=other", "-keyout", str(other / "ca.key"), "-out",
                    str(other / "ca.pem")], check=True, capture_output=True)
    url = tls_sentinels.url.split("?", 1)[0].replace("rediss+sentinel://",
                                                      "rediss+sentinel://:s3cret@")
    url += f"?tls_ca={other / 'ca.pem'}"
    p = run(consumer_args(bins, env, topic, db, prefix, redis_url=url), timeout=60)
    assert p.returncode == 1, p.stderr[-2000:]
    assert "the TLS certificate of redis 127.0.0.1:" in p.stderr, p.stderr[-2000:]
    assert "is refused" in p.stderr and "s3cret" not in p.stderr, p.stderr[-2000:]
