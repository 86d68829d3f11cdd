"""tadak-consumer against a PostgreSQL that misbehaves without going away:
a lock that outlasts the statement timeout, a table dropped under it, a server
that turned read-only (a standby after a failover), two consumers inserting
the same tokens in opposite orders, and one consumer's two INSERTs at once.

Each test asserts what the store's failure classes promise: a TRANSIENT failure
is held and retried (reconnecting when only a new session can help), a
PERMANENT one stops the consumer with a message that says why, and rows go in
in one global token order, so concurrent batches never deadlock.
"""
import time

import psycopg

from conftest import free_port, produce, unique, wait_for
from test_consumer import (TIMEOUT, committed, create_topic, finish_logged, in_log,
                           start_logged, summary_of, token, tokens_in, vote)


def test_statement_timeout_holds_and_recovers(bins, env, topic, db, prefix, tmp_path):
    produce(env, topic, [vote(n, 1) for n in range(1, 101)])
    proc = start_logged(bins, env, topic, db, prefix, tmp_path,
                        extra=("--statement-timeout-ms", "1000",
                               "-X", "max.poll.interval.ms=8000"))
    try:
        wait_for(lambda: db.count() == 100, 60, "the first 100 votes")
        with psycopg.connect(db.url, autocommit=True) as conn:
            conn.execute("begin")
            conn.execute("lock table votes in access exclusive mode")
            locked_at = time.monotonic()
            produce(env, topic, [vote(n, 2) for n in range(1, 201)])
            wait_for(in_log(proc, "statement timeout"), 30, "the INSERT to time out")

            # The scenario: a lock held longer than max.poll.interval.ms. A
            # consumer blocked in its INSERT would be evicted from the group.
            def held_long_enough():
                assert proc.poll() is None, proc.log.read_text()[-3000:]
                return time.monotonic() - locked_at >= 10

            wait_for(held_long_enough, 30, "10 s under the lock", interval=0.2)
            assert conn.execute("select count(*) from votes").fetchone()[0] == 100
            conn.execute("rollback")
        wait_for(lambda: db.count() == 300, 60, "every vote")
        during = proc.log.read_text()  # before SIGTERM, whose leaving revokes partitions
    finally:
        s, _ = finish_logged(proc)
    assert tokens_in(db) == {token(n, 1) for n in range(1, 101)} | \
        {token(n, 2) for n in range(1, 201)}
    # (not "max.poll": the DLQ producer warns that -X max.poll.interval.ms is not for it)
    for evicted in ("MAX_POLL", "maximum poll interval", "partitions revoked"):
        assert evicted not in during, f"the consumer left its group: {evicted!r} in its log"
    assert s["consumed"] == 300 and s["inserted"] == 300 and s["retries"] > 0


def test_table_dropped_is_a_clear_fatal_exit(bins, env, topic, db, prefix, tmp_path):
    produce(env, topic, [vote(n, 1) for n in range(1, 51)])
    proc = start_logged(bins, env, topic, db, prefix, tmp_path)
    try:
        wait_for(lambda: db.count() == 50, 60, "the first 50 votes")
        with psycopg.connect(db.url, autocommit=True) as conn:
            conn.execute("drop table votes")
        produce(env, topic, [vote(n, 2) for n in range(1, 51)])
        wait_for(lambda: proc.poll() is not None, 30, "the consumer to exit by itself")
    finally:
        if proc.poll() is None:
            proc.kill()
        out, _ = proc.communicate(timeout=TIMEOUT)
        proc.fh.close()
    err = proc.log.read_text()
    assert proc.returncode == 1, f"consumer exited {proc.returncode}:\n{err[-3000:]}"
    for crash in ("AddressSanitizer", "runtime error:", "LeakSanitizer"):
        assert crash not in err, err[-3000:]  # ASan exits 1 too
    # log.c escapes the quotes of PostgreSQL's message inside error="...".
    assert 'relation \\"votes\\" does not exist' in err, err[-3000:]
    assert "retrying cannot help" in err, err[-3000:]
    assert summary_of(out)["inserted"] == 50


def test_read_only_server_reconnects(bins, env, topic, db, prefix, tmp_path):
    admin = db.admin_url
    produce(env, topic, [vote(n, 1) for n in range(1, 51)])
    # debug: a failure after the first of an outage is logged at debug level.
    proc = start_logged(bins, env, topic, db, prefix, tmp_path, extra=("--log-level", "debug"))
    try:
        wait_for(lambda: db.count() == 50, 60, "the first 50 votes")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'alter database "{db.name}" set default_transaction_read_only = on')
            killed = conn.execute("select pg_terminate_backend(pid) from pg_stat_activity "
                                  "where datname = %s and application_name = 'tadak-consumer'",
                                  (db.name,)).fetchall()
        assert killed, "the consumer's session was not found"
        produce(env, topic, [vote(n, 2) for n in range(1, 51)])
        wait_for(in_log(proc, "read-only"), 30, "the consumer to meet the read-only server")
        assert db.count() == 50
        # No terminate this time: only a consumer that drops its read-only
        # session after the error can write again.
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'alter database "{db.name}" set default_transaction_read_only = off')
        wait_for(lambda: db.count() == 100, 30, "every vote")
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'alter database "{db.name}" reset default_transaction_read_only')
        s, _ = finish_logged(proc)
    assert tokens_in(db) == {token(n, c) for n in range(1, 51) for c in (1, 2)}
    assert s["consumed"] == 100 and s["inserted"] == 100 and s["retries"] > 0


def test_reverse_order_no_deadlock(bins, env, db, prefix, tmp_path):
    """Topic A holds tokens 1..N ascending, topic B the same tokens descending.
    An uncommitted row of the test's, token T from the middle, stops both
    consumers inside the batch that holds T: A has inserted the tokens below
    T, B those above. Once it is rolled back, consumers that send rows in
    their arrival order each wait for the other's rows (40P01, every time);
    in one global order, one of them waits until the other commits."""
    n, t = 20000, 10250  # mid-batch: full batches of 500 would end at 10000 in both topics
    redis_url = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens: every row reaches PG
    topics = {unique("t_asc"): range(1, n + 1), unique("t_desc"): range(n, 0, -1)}
    procs = []
    blocker = None
    try:
        for name in topics:
            create_topic(env, name, partitions=1)
            (tmp_path / name).mkdir()
            procs.append(start_logged(bins, env, name, db, prefix, tmp_path / name,
                                      redis_url=redis_url, extra=("--batch-size", "500")))
        # Joined means migrated: the table exists and nothing will lock it whole.
        for proc in procs:
            wait_for(in_log(proc, "partitions assigned"), 30, "both consumers to join")
        blocker = psycopg.connect(db.url)
        blocker.execute("insert into votes (token, user_id, candidate_id, event_id) "
                        "values (%s, %s, 1, gen_random_uuid())", (token(t, 1), t))
        for name, users in topics.items():
            produce(env, name, [vote(u, 1) for u in users])
        wait_for(lambda: db.rows("select count(*) from pg_stat_activity where datname = %s "
                                 "and application_name = 'tadak-consumer' "
                                 "and wait_event_type = 'Lock'", (db.name,))[0][0] == 2,
                 30, "both consumers to wait inside their batch")
        blocker.rollback()
        for name in topics:
            wait_for(lambda: committed(env, name, f"g_{name}") == n, 60, f"{name} consumed")
    finally:
        if blocker is not None:
            blocker.close()
        ends = [finish_logged(proc) for proc in procs]
    for _, err in ends:
        assert "deadlock" not in err, err[-3000:]
    (a, _), (b, _) = ends
    assert db.count() == n
    assert a["consumed"] == n and b["consumed"] == n
    assert a["inserted"] + b["inserted"] == n


def test_two_inserts_run_at_once(bins, env, topic, db, prefix, tmp_path):
    """--inserts-in-flight 2 (the default): PostgreSQL runs two batches at once,
    each on its own connection, and the in-flight rule still gives one row per
    token when copies of a token land in consecutive batches."""
    from conftest import run
    p = run([bins.consumer, "migrate", "--database-url", db.url])
    assert p.returncode == 0, p.stderr
    with psycopg.connect(db.url, autocommit=True) as conn:
        # Every INSERT statement lasts a second: batches overlap if they can.
        conn.execute("create function slow_insert() returns trigger language plpgsql as "
                     "$$ begin perform pg_sleep(1); return null; end $$")
        conn.execute("create trigger slow after insert on votes for each statement "
                     "execute function slow_insert()")
    votes = [vote(n, 1) for n in range(1, 2001)]
    produce(env, topic, votes + votes)  # each token twice, 2,000 messages apart
    proc = start_logged(bins, env, topic, db, prefix, tmp_path,
                        extra=("--batch-size", "250", "--statement-timeout-ms", "10000"))
    inserting = ("select count(*) from pg_stat_activity where datname = current_database() "
                 "and application_name = 'tadak-consumer' and state = 'active' "
                 "and query like 'INSERT INTO votes%'")
    try:
        with psycopg.connect(db.url, autocommit=True) as conn:
            wait_for(lambda: conn.execute(inserting).fetchone()[0] >= 2, 60,
                     "two INSERTs running at once", interval=0.05)
        wait_for(lambda: db.count() == 2000, 120, "every vote")
        wait_for(lambda: committed(env, topic, f"g_{topic}") == 4000, 60, "every copy settled")
    finally:
        s, _ = finish_logged(proc)
    assert tokens_in(db) == {token(n, 1) for n in range(1, 2001)}
    assert s["consumed"] == 4000 and s["inserted"] == 2000
    assert s["dup_redis"] + s["dup_db"] == 2000
