"""tadak-consumer's start-up at the edges of PostgreSQL (issue #21, item 6).

A consumer started while PostgreSQL is unreachable or while `votes` is locked
(a migration, an operator's LOCK TABLE) waits, with backoff, and then records
every vote; with --idle-exit, --join-timeout-s bounds that wait (exit 3, as
for a missing topic). When `votes` exists it is verified from the catalogs,
never altered: no DDL, so no lock on it. What no wait can cure - a database
that does not exist, a table without a UNIQUE on token ON CONFLICT can use,
or with a DEFERRABLE one - ends the start at once, non-zero, with a message
that names the table and the fix. The tables here are the users' own, not
ones tadak created.
"""
import re
import signal
import subprocess
import time
from types import SimpleNamespace
from urllib.parse import urlsplit

import psycopg
import pytest

from conftest import REPO, produce, run, wait_for
from test_consumer import (Proxy, consumer_args, summary_of, token, tokens_in,
                           vote)

# A table of the users' own: extra columns with defaults, our six columns,
# and the UNIQUE on token given as `unique` (no index on candidate_id).
OWN_TABLE = """
create table votes (
    id        bigint generated always as identity primary key,
    token     text not null {unique},
    user_id   bigint not null,
    candidate_id bigint not null,
    event_id  uuid not null,
    kafka_partition int,
    kafka_offset bigint,
    note      text not null default 'imported',
    created_at timestamptz not null default now()
)"""


def proxied(db, proxy):
    u = urlsplit(db.url)
    return SimpleNamespace(url=u._replace(netloc=f"{u.username}@127.0.0.1:{proxy.port}").geturl())


def started(bins, env, topic, db, prefix, tmp_path, extra=()):
    """A consumer with --idle-exit, its log in a file the test can watch."""
    log = tmp_path / "consumer.log"
    fh = open(log, "w")
    proc = subprocess.Popen(consumer_args(bins, env, topic, db, prefix, extra=extra),
                            stdout=subprocess.PIPE, stderr=fh, text=True)
    proc.log, proc.fh = log, fh
    return proc


def ended(proc, timeout=120):
    out, _ = proc.communicate(timeout=timeout)
    proc.fh.close()
    return proc.returncode, out, proc.log.read_text()


def hold_outage(proc, marker, since, seconds):
    """Once the consumer logs marker, keep the outage going until `seconds`
    after `since` (the scenario's length), the consumer alive throughout."""
    wait_for(lambda: marker in proc.log.read_text() or proc.poll() is not None, 60,
             f"the consumer to log {marker!r}")
    while time.monotonic() - since < seconds:
        assert proc.poll() is None, proc.log.read_text()[-3000:]
        time.sleep(0.5)


def test_start_waits_for_a_locked_votes_table(bins, env, topic, db, prefix, tmp_path):
    """`votes` held by LOCK TABLE for 20 s (past the 4 s statement timeout):
    the old start ran CREATE INDEX IF NOT EXISTS, timed out and exited 1."""
    assert run([bins.consumer, "migrate", "--database-url", db.url]).returncode == 0
    produce(env, topic, [vote(n, 1) for n in range(1, 301)])
    with psycopg.connect(db.url) as lock:
        lock.execute("lock table votes in access exclusive mode")
        locked_at = time.monotonic()
        proc = started(bins, env, topic, db, prefix, tmp_path)
        try:
            # Past start-up (no DDL), its batches wait on the lock like an outage.
            hold_outage(proc, "postgresql unavailable", locked_at, 20)
        finally:
            lock.rollback()
    rc, out, err = ended(proc)
    assert rc == 0, err[-3000:]
    s = summary_of(out)
    assert s["inserted"] == 300 and db.count() == 300
    assert tokens_in(db) == {token(n, 1) for n in range(1, 301)}


def test_start_waits_for_postgresql(bins, env, topic, db, prefix, tmp_path):
    """PostgreSQL unreachable for the first 10 s (connections refused): the
    consumer waits, logs it once, and records everything once it is back."""
    u = urlsplit(db.url)
    proxy = Proxy(u.hostname, u.port)
    proxy.stop()
    stopped_at = time.monotonic()
    produce(env, topic, [vote(n, 2) for n in range(1, 201)])
    proc = started(bins, env, topic, proxied(db, proxy), prefix, tmp_path)
    try:
        hold_outage(proc, "waiting for PostgreSQL", stopped_at, 10)
    finally:
        proxy.start()
    rc, out, err = ended(proc)
    proxy.stop()
    assert rc == 0, err[-3000:]
    assert summary_of(out)["inserted"] == 200 and db.count() == 200
    assert err.count("waiting for PostgreSQL") == 1  # once, then every 30 s
    assert "PostgreSQL ready" in err


def test_start_wait_is_bounded_by_join_timeout(bins, env, topic, db, prefix, tmp_path):
    u = urlsplit(db.url)
    proxy = Proxy(u.hostname, u.port)
    proxy.stop()
    p = run(consumer_args(bins, env, topic, proxied(db, proxy), prefix,
                          extra=["--join-timeout-s", "3"]), timeout=60)
    assert p.returncode == 3, p.stderr[-3000:]
    assert "PostgreSQL not ready, giving up" in p.stderr
    assert p.stdout == ""


def test_sigterm_while_waiting_for_postgresql_exits_0(bins, env, topic, db, prefix, tmp_path):
    u = urlsplit(db.url)
    proxy = Proxy(u.hostname, u.port)
    proxy.stop()
    proc = started(bins, env, topic, proxied(db, proxy), prefix, tmp_path)
    wait_for(lambda: "waiting for PostgreSQL" in proc.log.read_text() or proc.poll() is not None,
             60, "the consumer to wait for PostgreSQL")
    proc.send_signal(signal.SIGTERM)
    rc, out, err = ended(proc, timeout=10)  # the backoff naps watch for the signal
    assert rc == 0 and out == "", err[-3000:]


def own_table(db, unique):
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute(OWN_TABLE.format(unique=unique))


@pytest.mark.parametrize("unique", ["unique deferrable initially immediate",
                                    "unique deferrable initially deferred"])
def test_deferrable_unique_on_token_is_refused(bins, env, topic, db, prefix, unique):
    """ON CONFLICT cannot use a DEFERRABLE unique (55000); the old consumer
    started and retried its first batch forever."""
    own_table(db, unique)
    produce(env, topic, [vote(1, 1)])
    p = run(consumer_args(bins, env, topic, db, prefix), timeout=60)
    assert p.returncode == 1, p.stderr[-3000:]
    assert "table votes does not fit" in p.stderr and "DEFERRABLE" in p.stderr
    assert "votes_token_key" in p.stderr and "ADD UNIQUE (token)" in p.stderr
    assert p.stdout == "" and db.count() == 0


def test_table_without_unique_on_token_is_refused(bins, env, topic, db, prefix):
    """Refused at start, before consuming: the old consumer started and would
    exit only at the first vote's INSERT (42P10)."""
    own_table(db, "")
    p = run(consumer_args(bins, env, topic, db, prefix), timeout=60)
    assert p.returncode == 1, p.stderr[-3000:]
    assert "table votes does not fit" in p.stderr and "no UNIQUE constraint on (token)" in p.stderr
    assert "ALTER TABLE votes ADD UNIQUE (token)" in p.stderr
    # A partial or expression index is no arbiter for ON CONFLICT (token) either.
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("create unique index votes_lower on votes (lower(token))")
        conn.execute("create unique index votes_some on votes (token) where user_id > 0")
    p = run(consumer_args(bins, env, topic, db, prefix), timeout=60)
    assert p.returncode == 1 and "no UNIQUE constraint on (token)" in p.stderr, p.stderr[-3000:]


def test_existing_table_is_verified_not_altered(bins, env, topic, db, prefix):
    """No DDL on a table that exists: the old start created votes_candidate_idx
    on every start (CREATE INDEX IF NOT EXISTS takes a SHARE lock)."""
    own_table(db, "unique")
    produce(env, topic, [vote(n, 3) for n in range(1, 21)])
    p = run(consumer_args(bins, env, topic, db, prefix), timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    assert summary_of(p.stdout)["inserted"] == 20 and db.count() == 20
    indexes = {r[0] for r in db.rows("select indexname from pg_indexes where tablename = 'votes'")}
    assert "votes_candidate_idx" not in indexes
    assert db.rows("select count(*) from votes where note = 'imported'")[0][0] == 20


def test_missing_columns_and_database_are_refused(bins, env, topic, db, prefix):
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("create table votes (token text primary key, user_id bigint)")
    p = run(consumer_args(bins, env, topic, db, prefix), timeout=60)
    assert p.returncode == 1, p.stderr[-3000:]
    assert "lacks column(s) candidate_id,event_id,kafka_offset,kafka_partition" in p.stderr
    gone = SimpleNamespace(url=db.url + "_nonexistent")
    p = run(consumer_args(bins, env, topic, gone, prefix), timeout=60)
    assert p.returncode == 1, p.stderr[-3000:]
    assert "does not exist" in p.stderr and "SQLSTATE 3D000" in p.stderr
    assert "createdb" in p.stderr


def store_verify_sql():
    """verify_sql of common/store.c, as the consumer sends it for the vote
    (its parameters written in: the table, the columns it writes, no types)."""
    src = (REPO / "common" / "store.c").read_text()
    body = src[src.index("static const char verify_sql[] ="):]
    body = body[:body.index(";\n")]
    sql = "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', body))
    params = {"$1": "'votes'", "$3": "'{}'", "$4": "'{}'",
              "$2": "'{token,user_id,candidate_id,event_id,kafka_partition,kafka_offset}'"}
    return re.sub(r"\$[1-4]", lambda m: params[m.group(0)], sql)


def test_a_table_committed_during_the_check_is_not_a_table_without_columns(db):
    """Two consumers starting on a fresh database: one applies the schema
    while the other reads the catalogs. The name lookup sees the newest
    catalog, the column list the statement's snapshot: the old check saw a
    table lacking all six columns and exited 1 ("does not fit"), as the chaos
    suite's simultaneous starts did. A snapshot taken before the CREATE
    (REPEATABLE READ) holds that moment still."""
    sql = store_verify_sql()
    with psycopg.connect(db.url) as before, psycopg.connect(db.url, autocommit=True) as other:
        before.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        before.execute("select 1")  # the snapshot
        other.execute(OWN_TABLE.format(unique="unique"))
        exists, missing = before.execute(sql).fetchone()[:2]
        assert not (exists and missing), f"exists={exists} but lacks {missing}"
        before.rollback()
        exists, missing = before.execute(sql).fetchone()[:2]
        assert exists and missing == "", (exists, missing)
