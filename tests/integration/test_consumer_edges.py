"""tadak-consumer at the edges of PostgreSQL: a user's own table that refuses
rows (a CHECK, a constraint trigger checked at COMMIT), one that cannot take
ON CONFLICT at all (a DEFERRABLE unique token), a failure on the second of
the two INSERT connections, an outage that outlives a rebalance under
--idle-exit, and Redis replies lost while the locks were being set.

Each test builds the table itself, as a team bringing its own schema would;
the consumer only adds its index to it.
"""
import signal
import threading
import time
from types import SimpleNamespace
from urllib.parse import urlsplit

import psycopg
import pytest
import redis as redis_lib
from confluent_kafka.admin import AdminClient

from conftest import consume_all, free_port, produce, run, wait_for
from test_consumer import (TIMEOUT, Proxy, consume, create_topic, finish_logged, in_log,
                           start_logged, summary_of, token, tokens_in, vote)
from test_consumer_group import scrape

# The columns tadak writes, as a team's own DDL would spell them.
COLUMNS = """
    id              bigserial PRIMARY KEY,
    token           text        NOT NULL {unique},
    user_id         bigint      NOT NULL,
    candidate_id    bigint      NOT NULL {check},
    event_id        uuid        NOT NULL,
    kafka_partition int,
    kafka_offset    bigint,
    created_at      timestamptz NOT NULL DEFAULT now()
"""


def own_table(db, unique="UNIQUE", check="", extra_sql=()):
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE votes (" + COLUMNS.format(unique=unique, check=check) + ")")
        for sql in extra_sql:
            conn.execute(sql)


def dead_letters(env, topic, n):
    return consume_all(env, f"{topic}.dlq", expected=n)


def exit_by_itself(proc, timeout=60):
    """Wait for a logged consumer to exit on its own (killed after timeout): its log."""
    try:
        wait_for(lambda: proc.poll() is not None, timeout, "the consumer to exit by itself")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=TIMEOUT)
        proc.fh.close()
    return proc.log.read_text()


def test_constraint_checked_at_commit_refuses_one_vote(bins, env, topic, db, prefix):
    """A DEFERRABLE INITIALLY DEFERRED constraint trigger refuses one token at
    COMMIT, after the INSERT itself succeeded: that batch is not settled as
    recorded; the refused vote is dead-lettered with its SQLSTATE, the 499
    others are rows, and the summary's `inserted` is the row count."""
    refused = token(250, 1)
    own_table(db, extra_sql=(
        "CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"IF NEW.token = '{refused}' THEN RAISE EXCEPTION 'token % is refused', NEW.token; "
        "END IF; RETURN NULL; END $$",
        "CREATE CONSTRAINT TRIGGER refuse_one AFTER INSERT ON votes "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_one()",
    ))
    produce(env, topic, [vote(n, 1) for n in range(1, 501)])

    s, err = consume(bins, env, topic, db, prefix)

    assert tokens_in(db) == {token(n, 1) for n in range(1, 501)} - {refused}
    assert s["inserted"] == db.count() == 499
    assert s["dead_lettered"] == 1 and s["consumed"] == 500
    [dl] = dead_letters(env, topic, 1)
    assert dl.headers["tadak-error"] == b"rejected_by_database"
    assert dl.headers["tadak-sqlstate"] == b"P0001"
    assert f"token {refused} is refused".encode() in dl.headers["tadak-detail"]
    assert dl.value == vote(250, 1)
    assert "postgresql unavailable" not in err


def test_check_violation_is_dead_lettered_and_the_rest_recorded(bins, env, topic, db, prefix,
                                                                tmp_path, redis_client):
    """CHECK (candidate_id < 1000): one vote for candidate 5000 among 300
    valid ones. The 300 are rows within 10 s; the refused one is a dead
    letter (SQLSTATE 23514) with the usual origin headers, counted in
    tadak_db_rejected_total; no partition is paused for it, and its lock is
    given back."""
    own_table(db, check="CHECK (candidate_id < 1000)")
    votes = [vote(n, 1 + n % 7) for n in range(1, 301)]
    votes.insert(137, vote(77, 5000))
    port = free_port()
    produce(env, topic, votes)
    started = time.monotonic()
    proc = start_logged(bins, env, topic, db, prefix, tmp_path,
                        extra=("--metrics", f"127.0.0.1:{port}"))
    try:
        wait_for(lambda: db.count() == 300, 10, "the 300 valid votes")
        assert time.monotonic() - started < 10
        wait_for(lambda: (t := scrape(port)) and
                 'tadak_db_rejected_total{sqlstate="23514"} 1' in t and
                 "tadak_consumer_dead_lettered_total 1" in t, 30, "the rejection counted")
    finally:
        s, err = finish_logged(proc)
    assert s["inserted"] == 300 and s["dead_lettered"] == 1
    assert "postgresql unavailable" not in err
    assert "partition paused" not in err
    [dl] = dead_letters(env, topic, 1)
    assert dl.headers["tadak-sqlstate"] == b"23514"
    assert b"votes_candidate_id_check" in dl.headers["tadak-detail"]
    assert dl.headers["tadak-source-topic"] == topic.encode()
    assert int(dl.headers["tadak-source-offset"]) >= 0
    assert dl.value == votes[137]
    # Not recorded, so neither marked done nor left locked by us.
    assert redis_client.get(prefix + token(77, 5000)) is None


def test_deferrable_unique_token_is_a_clear_exit(bins, env, topic, db, prefix, tmp_path):
    """ON CONFLICT cannot use a DEFERRABLE unique constraint (55000): the
    consumer stops with a message naming the constraint's table and the fix
    instead of retrying for ever."""
    own_table(db, unique="UNIQUE DEFERRABLE INITIALLY IMMEDIATE")
    produce(env, topic, [vote(n, 1) for n in range(1, 11)])
    proc = start_logged(bins, env, topic, db, prefix, tmp_path, extra=("--idle-exit", "3"))
    err = exit_by_itself(proc)
    assert proc.returncode not in (0, None), err[-3000:]
    for crash in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert crash not in err, err[-3000:]
    assert "DEFERRABLE" in err and "votes" in err, err[-3000:]
    assert db.count() == 0


def test_schema_error_on_the_second_connection_stops_at_once(bins, env, topic, db, prefix,
                                                             tmp_path):
    """Only new sessions lose the table (the database's search_path changes
    under a running consumer): the first INSERT connection keeps working,
    the second, opened later, meets 42P01. That failure is judged on the
    connection that failed: a clear exit 1 at the first one, not an outage
    retried for ever because the other connection's last call succeeded."""
    produce(env, topic, [vote(1, 1)])
    proc = start_logged(bins, env, topic, db, prefix, tmp_path,
                        extra=("--batch-size", "20", "--inserts-in-flight", "2"))
    try:
        wait_for(lambda: db.count() == 1, 60, "the first vote")
        with psycopg.connect(db.admin_url, autocommit=True) as conn:
            conn.execute(f'ALTER DATABASE "{db.name}" SET search_path = nothing_here')
        produce(env, topic, [vote(n, 2) for n in range(1, 3001)])
    finally:
        err = exit_by_itself(proc)
    assert proc.returncode == 1, err[-3000:]
    assert 'relation \\"votes\\" does not exist' in err, err[-3000:]
    assert "retrying cannot help" in err
    assert "postgresql unavailable" not in err, err[-3000:]


def group_members(admin, group):
    """The members the broker counts in a group right now."""
    return admin.describe_consumer_groups([group])[group].result(timeout=10).members


@pytest.mark.own_topic
def test_idle_exit_waits_out_an_outage_across_a_lost_assignment(bins, env, topic, db, prefix,
                                                                tmp_path):
    """--idle-exit 3 with PostgreSQL down and messages held, then the group
    takes every partition away (the member is fenced: stopped past its
    session) and hands them back: nothing is held any more and the
    partitions stay paused with lag left, which is not "nothing to
    consume". Still running 6 s later; PostgreSQL back, every vote
    recorded, then the idle exit (0)."""
    create_topic(env, topic, partitions=2)
    u = urlsplit(db.url)
    proxy = Proxy(u.hostname, u.port)
    proxied = SimpleNamespace(url=u._replace(netloc=f"{u.username}@127.0.0.1:{proxy.port}")
                              .geturl())
    group = f"g_{topic}"
    admin = AdminClient({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"]})
    produce(env, topic, [vote(n, 1) for n in range(1, 101)])
    proc = start_logged(bins, env, topic, proxied, prefix, tmp_path, extra=("--idle-exit", "3"))
    try:
        wait_for(lambda: db.count() == 100, 60, "the first 100 votes")
        proxy.stop()
        produce(env, topic, [vote(n, 2) for n in range(1, 101)])
        wait_for(in_log(proc, "postgresql unavailable"), 30, "the outage to be noticed")
        proc.send_signal(signal.SIGSTOP)
        try:
            wait_for(lambda: not group_members(admin, group), 60,
                     "the broker to fence the stopped member", interval=0.5)
        finally:
            proc.send_signal(signal.SIGCONT)
        wait_for(in_log(proc, "lost=1"), 60, "the consumer to see its assignment lost")
        wait_for(lambda: proc.log.read_text().count("partitions assigned") >= 2, 60,
                 "the partitions back")
        back_at = time.monotonic()

        def still_running_6s():
            assert proc.poll() is None, proc.log.read_text()[-3000:]
            return time.monotonic() - back_at >= 6

        wait_for(still_running_6s, 30, "6 s with the partitions back", interval=0.2)
        proxy.start()
        wait_for(lambda: db.count() == 200, 60, "every vote")
        wait_for(lambda: proc.poll() is not None, 60, "the idle exit")
        out, _ = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.communicate(timeout=TIMEOUT)
        proc.fh.close()
        proxy.stop()
    assert proc.returncode == 0, proc.log.read_text()[-3000:]
    assert tokens_in(db) == {token(n, c) for n in range(1, 101) for c in (1, 2)}
    summary_of(out)


class MutingProxy(Proxy):
    """A TCP forwarder to Redis whose replies can be muted: while muted, the
    consumer's commands still reach Redis and run, but no answer comes back
    (a reply lost on the network). New connections work the same way.
    mute_from(*markers) mutes from the first command chunk holding every
    marker on."""

    def __init__(self, host, port):
        self.muted = threading.Event()
        self.trigger = None
        super().__init__(host, port)

    def mute_from(self, *markers):
        self.trigger = markers

    def forward(self, dst, data, to_upstream):
        if to_upstream and self.trigger and all(m in data for m in self.trigger):
            self.muted.set()
            self.trigger = None
        if to_upstream or not self.muted.is_set():
            dst.sendall(data)


def test_locks_of_lost_replies_become_done_markers(bins, env, topic, db, prefix, tmp_path,
                                                   redis_client):
    """Redis runs the lock commands but its replies are lost: the consumer
    falls back to PostgreSQL and records the votes, though Redis now holds
    our "P" locks for them. Once Redis answers again those tokens must be
    marked done, not left locked for the lock TTL (60 s here) on every other
    consumer."""
    u = urlsplit(env["REDIS_URL"])
    proxy = MutingProxy(u.hostname, u.port)
    redis_url = u._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()
    votes = [vote(n, 3) for n in range(1, 51)]
    keys = [prefix + token(n, 3) for n in range(1, 51)]
    proc = start_logged(bins, env, topic, db, prefix, tmp_path, redis_url=redis_url,
                        extra=("--lock-ttl-ms", "60000"))
    try:
        produce(env, topic, [vote(1000, 1)])
        wait_for(lambda: db.count() == 1, 60, "the consumer to be running")
        # From the lock commands on (SET <vote key> ... NX GET), no reply comes
        # back. Not from any NX: the identity heartbeat is a SET ... NX GET too,
        # and muting on it would take Redis away before the votes arrive.
        proxy.mute_from(b"vote_lock:", b"\r\nNX\r\n")
        produce(env, topic, votes)
        wait_for(lambda: db.count() == 51, 60, "the votes recorded without Redis")
        locked = [v for v in redis_client.mget(keys) if v and v.startswith(b"P ")]
        assert locked, "the lock commands did not reach Redis: the scenario did not happen"
        proxy.muted.clear()
        wait_for(lambda: all(v == b"1" for v in redis_client.mget(keys)), 20,
                 "every recorded token marked done")
    finally:
        s, err = finish_logged(proc)
        proxy.stop()
    assert s["inserted"] == 51
    assert redis_client.pttl(keys[0]) > 60000  # the dedupe window's TTL, not the lock's


def test_settings_the_guarantee_depends_on_are_refused(bins, env):
    """-X or TADAK_KAFKA_* may not turn on librdkafka's own offset store (it
    would let auto-commit pass unrecorded votes), pick an assignor, ask for
    partition EOF events, or set auto.offset.reset behind --start-at: exit 2
    naming the key, before anything is consumed."""
    base = [bins.consumer, "--brokers", env["KAFKA_BOOTSTRAP_SERVERS"], "--idle-exit", "1"]
    cases = [
        (["-X", "enable.auto.offset.store=true"], {}, "enable.auto.offset.store"),
        (["-X", "partition.assignment.strategy=roundrobin"], {}, "partition.assignment.strategy"),
        (["-X", "enable.partition.eof=true"], {}, "enable.partition.eof"),
        (["-X", "auto.offset.reset=latest"], {}, "--start-at"),
        ([], {"TADAK_KAFKA_ENABLE_AUTO_OFFSET_STORE": "True"}, "TADAK_KAFKA_ENABLE_AUTO_OFFSET_STORE"),
    ]
    for args, extra_env, named in cases:
        p = run(base + args, env=extra_env, timeout=30)
        assert p.returncode == 2, (args, extra_env, p.returncode, p.stderr[-2000:])
        assert named in p.stderr, (args, p.stderr[-2000:])
        assert "not allowed" in p.stderr
