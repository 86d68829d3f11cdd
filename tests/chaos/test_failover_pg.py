"""PostgreSQL fails over: a streaming standby, promoted (issue #24).

Runs on a private stack with pg-standby (conftest.py: ha_stack); every test
starts from a new primary and a new standby (fresh_pg).

  stack: the standby streams (a row written on the primary appears on it),
         refuses writes until `scripts/stack promote pg-standby`, then takes
         them, and the multi-host URL `scripts/stack env` prints reaches it;
         TADAK_PG_SYNC=1 holds a commit until the standby has it.
  sync failover: the primary SIGKILLed mid-stream, the standby promoted 3 s
         later, synchronous replication: every acknowledged vote is one row
         on the new primary, the consumer never exits; recovery_s is the
         time from the kill to the first row on the new primary.
  async failover: the same with asynchronous replication and a standby that
         has fallen behind (cut off from the primary while votes keep being
         recorded): the votes recorded in that window are lost, the scenario
         line says how many, and the consumer says so in one error line.
  another database: a failover that lands on a server which is not the
         database the consumer started on (here a copy given an identity of
         its own) stops the consumer before it writes a row there.
  status reads: GET /votes/{u}/{c} and /tallies through the promote answer
         200, or 503 with Retry-After while no primary takes writes, never
         hang; reads_unavailable_s is how long a client saw 503s.
"""
import subprocess
import sys
import datetime as dt
import threading
import time

import psycopg
import pytest

from conftest import FULL, MODE, REPO, Scenario, full_only, itest, pause, verifier, wait_for

FAILOVER = dict(users=3000, dup=3, rate=300) if FULL else dict(users=1000, dup=3, rate=200)
PROMOTE_AFTER_S = 3
JOIN_S = 90
FINISH_S = 600


class HAScenario(Scenario):
    """A Scenario whose database is reached through the multi-host URL."""

    def __init__(self, name, stack, bins, tmp):
        super().__init__(name, stack, bins, tmp)
        self.db.url = stack.url(self.db.name)

    def new_primary_url(self):
        return self.stack.url(self.db.name, self.stack.ports["pg-standby"])


@pytest.fixture
def ha_scenario(request, ha_stack, bins, tmp_path):
    """make(sync): a new primary and standby, then the scenario on them."""
    made = []

    def make(sync):
        ha_stack.fresh_pg(sync=sync)
        made.append(HAScenario(request.node.originalname.removeprefix("test_"), ha_stack, bins,
                               tmp_path))
        return made[-1]
    yield make
    for s in made:
        s.close()


def one(url, sql, params=None):
    """The first row of sql's answer (None for a statement without one)."""
    with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchone() if cur.description else None


def test_stack_standby_streams_and_promotes(ha_stack):
    s = ha_stack
    s.fresh_pg(sync=False)
    primary, standby = s.url("tadak", s.ports["pg"]), s.url("tadak", s.ports["pg-standby"])
    env = s.cmd("env").stdout
    assert f"DATABASE_URL={s.url('tadak')}" in env, env

    one(primary, "create table stack_t (token text primary key)")
    one(primary, "insert into stack_t values ('before')")
    wait_for(lambda: _has(standby, "before"), 30, "the row on the standby")
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        one(standby, "insert into stack_t values ('refused')")
    assert one(s.url("tadak"), "select inet_server_port()")[0] == s.ports["pg"]

    s.kill("pg")
    s.cmd("promote", "pg-standby")
    assert "primary (promoted)" in s.status()["pg-standby"]
    one(standby, "insert into stack_t values ('after')")
    # The multi-host URL skips the dead primary and lands on the promoted one.
    port, n = one(s.url("tadak"), "select inet_server_port(), count(*) from stack_t")
    assert (port, n) == (s.ports["pg-standby"], 2)


def _has(url, token):
    try:
        return one(url, "select count(*) from stack_t where token = %s", (token,))[0] == 1
    except psycopg.Error:
        return False


def _insert_in_thread(url, token):
    """INSERT on a connection of its own; returns (thread, result dict)."""
    out = {}
    conn = psycopg.connect(url, autocommit=True, connect_timeout=5)
    out["pid"] = conn.info.backend_pid

    def run():
        try:
            conn.execute("insert into stack_t values (%s)", (token,))
            out["done"] = time.monotonic()
        except psycopg.Error as e:
            out["error"] = e
        finally:
            conn.close()
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


def test_stack_sync_commit_waits_for_the_standby(ha_stack):
    s = ha_stack
    s.fresh_pg(sync=True)
    primary = s.url("tadak", s.ports["pg"])
    one(primary, "create table stack_t (token text primary key)")
    s.stop("pg-standby")

    # statement_timeout does not bound this wait: PostgreSQL disarms it
    # before the commit, so the test watches the backend instead.
    t, out = _insert_in_thread(primary, "held")
    wait_for(lambda: one(primary, "select wait_event from pg_stat_activity where pid = %s",
                         (out["pid"],))[0] == "SyncRep", 30, "the commit to wait in SyncRep")
    assert t.is_alive() and "done" not in out
    assert not _has(primary, "held"), "a commit the standby lacks is visible"

    s.start("pg-standby")
    t.join(30)
    assert "done" in out and not out.get("error"), out
    assert _has(primary, "held")
    assert _has(s.url("tadak", s.ports["pg-standby"]), "held")


def test_stack_async_commit_does_not_wait(ha_stack):
    s = ha_stack
    s.fresh_pg(sync=False)
    primary = s.url("tadak", s.ports["pg"])
    one(primary, "create table stack_t (token text primary key)")
    s.stop("pg-standby")
    t, out = _insert_in_thread(primary, "alone")
    t.join(30)
    assert "done" in out and not out.get("error"), out
    assert _has(primary, "alone")


def first_row_after(url, t):
    """Seconds from t (epoch) to the first row created after it."""
    with psycopg.connect(url, autocommit=True) as conn:
        first = conn.execute("select min(created_at) from votes where created_at > %s",
                             (dt.datetime.fromtimestamp(t, dt.timezone.utc),)).fetchone()[0]
    return None if first is None else first.timestamp() - t


def kill_and_promote(s, c, before_kill=None):
    """SIGKILL the primary mid-stream, promote the standby 3 s later; when it died (epoch)."""
    wait_for(lambda: "partitions assigned" in c.text() or not c.alive(), JOIN_S,
             "the consumer to join")
    wait_for(lambda: s.rows() > 0, 60, "the first rows")
    pause(s.rng, 0.5, 3.0)
    if before_kill:
        before_kill()
    s.stack.kill("pg")
    # Taken once the primary is gone: rows committed while the kill command
    # ran would otherwise count as the new primary's.
    killed_at = time.time()
    time.sleep(PROMOTE_AFTER_S)  # the failover's delay itself, as a tool like Patroni's
    assert c.alive(), "the consumer must wait out the failover, not exit"
    s.stack.cmd("promote", "pg-standby")
    assert c.alive()
    return killed_at


@full_only  # the async failover runs in make test; the stack's sync commit is tested there too
def test_failover_sync(ha_scenario):
    s, z = ha_scenario(sync=True), FAILOVER
    s.create_topic()
    acks = s.tmp / "acks.jsonl"
    load = s.load(z["users"], z["dup"], z["rate"], acks)
    c = s.consumer(idle_exit=8)
    killed_at = kill_and_promote(s, c)
    assert load.wait(300) == 0, load.text()[-2000:]
    rc = c.wait(FINISH_S)
    new = s.new_primary_url()
    # A promoted standby is the same database: the identity the consumer
    # claimed its Redis prefix for still holds, so it never stopped.
    assert "no longer names our database" not in c.text()
    recovery = first_row_after(new, killed_at)
    v = verifier.verify([str(acks)], new)
    s.report(sum(1 for _ in open(acks)), v,
             f"mode=sync recovery_s={recovery:.1f}" if recovery is not None else "mode=sync")
    assert rc == 0, c.text()[-3000:]
    assert recovery is not None, "no row reached the new primary after the kill"
    assert v["rows"] == z["users"]
    log = c.text()
    assert "postgresql unavailable" in log and "postgresql reachable again" in log
    # The consumer looked for the rows it had recorded on the old primary: all there.
    assert "timeline changed, the rows recorded before it are there" in log, log[-3000:]
    assert "missing on the new primary" not in log


def cut_standby_off(s, rows):
    """The standby stops receiving WAL (no primary_conninfo: its WAL receiver
    ends) until `rows` more votes are recorded: a standby behind by that
    much, as one across a slow or broken link is. A replay delay or a paused
    replay makes no such window: promotion replays all WAL received first."""
    standby = s.stack.url("postgres", s.stack.ports["pg-standby"])
    with psycopg.connect(standby, autocommit=True) as conn:
        conn.execute("alter system set primary_conninfo = ''")
        conn.execute("select pg_reload_conf()")
        wait_for(lambda: conn.execute("select count(*) from pg_stat_wal_receiver").fetchone()[0]
                 == 0, 30, "the standby's WAL receiver to stop")
    at = s.rows()
    wait_for(lambda: s.rows() >= at + rows, 60, f"{rows} votes recorded past the standby")


def test_failover_async(ha_scenario):
    s, z = ha_scenario(sync=False), FAILOVER
    s.create_topic()
    acks = s.tmp / "acks.jsonl"
    load = s.load(z["users"], z["dup"], z["rate"], acks)
    c = s.consumer(idle_exit=8)
    killed_at = kill_and_promote(s, c, before_kill=lambda: cut_standby_off(s, 100))
    assert load.wait(300) == 0, load.text()[-2000:]
    rc = c.wait(FINISH_S)
    new = s.new_primary_url()
    recovery = first_row_after(new, killed_at)
    v = verifier.verify([str(acks)], new)
    s.report(sum(1 for _ in open(acks)), v,
             "mode=async" + (f" recovery_s={recovery:.1f}" if recovery is not None else ""),
             allow_missing=True)
    assert rc == 0, c.text()[-3000:]
    # What asynchronous replication costs: the window's votes, acknowledged and gone.
    assert v["missing"] >= 100, v
    lines = [ln for ln in c.text().splitlines()
             if 'msg="rows recorded before the failover are missing on the new primary"' in ln]
    assert lines, "the consumer did not say that recorded rows are gone:\n" + c.text()[-3000:]
    assert "level=error" in lines[0] and "timeline_before=1 timeline_after=2" in lines[0], lines
    assert int(lines[0].split("missing=")[1].split()[0]) > 0, lines
    assert "use synchronous replication" in lines[0]


def test_failover_to_another_database_stops_the_consumer(ha_scenario):
    s = ha_scenario(sync=False)
    other = s.new_primary_url()
    # The standby becomes a database of its own before the consumer starts:
    # promoted (the same cluster's system identifier) and migrated there
    # (an id of its own in tadak_identity), as a restored copy would be.
    wait_for(lambda: one(s.stack.url("postgres", s.stack.ports["pg-standby"]),
                         "select count(*) from pg_database where datname = %s",
                         (s.db.name,))[0] == 1, 30, "the database on the standby")
    s.stack.cmd("promote", "pg-standby")
    m = subprocess.run([str(s.bins.consumer), "migrate", "--database-url", other],
                       capture_output=True, text=True, timeout=60)
    assert m.returncode == 0, m.stderr
    s.create_topic()
    first = s.load(200, 1, 100, s.tmp / "acks1.jsonl")
    c = s.consumer()
    wait_for(lambda: "partitions assigned" in c.text() or not c.alive(), JOIN_S,
             "the consumer to join")
    wait_for(lambda: one(s.stack.url(s.db.name, s.stack.ports["pg"]),
                         "select count(*) from votes")[0] > 0, 60, "the first rows")
    assert first.wait(120) == 0
    s.stack.kill("pg")
    # New votes (another seed), which the consumer must write: it reconnects.
    s.spawn("load", [s.bins.producer, "load", "--brokers", s.env["KAFKA_BOOTSTRAP_SERVERS"],
                     "--topic", s.topic, "--users", 200, "--dup-factor", 1, "--rate", 100,
                     "--seed", s.seed + 1, "--ack-log", s.tmp / "acks2.jsonl"])
    wait_for(lambda: not c.alive(), 120, "the consumer to stop")
    log = c.text()
    assert c.p.returncode != 0, log[-3000:]
    assert "DATABASE_URL now leads to another database" in log, log[-3000:]
    assert one(other, "select count(*) from votes")[0] == 0, "rows written to the other database"


class Reader:
    """Loops over the status reads, one request at a time, each with a deadline."""

    PATHS = ("/votes/1/2", "/tallies")

    def __init__(self, port):
        self.port, self.answers, self.stop = port, [], threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            for path in self.PATHS:
                t0 = time.monotonic()
                try:
                    st, hdrs, _ = itest.request(self.port, "GET", path, timeout=5)
                    self.answers.append((t0, path, st, hdrs.get("retry-after"),
                                         time.monotonic() - t0))
                except OSError as e:  # a hang (timeout) or a refused connection
                    self.answers.append((t0, path, repr(e), None, time.monotonic() - t0))
            time.sleep(0.05)  # request pacing, not synchronisation

    def seen(self, status, path=None, since=0.0):
        return [a for a in self.answers
                if a[2] == status and a[0] >= since and (path is None or a[1] == path)]


def test_status_reads_during_promote(ha_scenario):
    s = ha_scenario(sync=True)
    m = subprocess.run([str(s.bins.consumer), "migrate", "--database-url", s.db.url],
                       capture_output=True, text=True, timeout=60)
    assert m.returncode == 0, m.stderr
    # The vote read is of a recorded row (200), committed on both servers.
    one(s.db.url, "insert into votes (token, user_id, candidate_id, event_id) "
                  "values ('vote_lock:1:2', 1, 2, gen_random_uuid())")
    s.create_topic()
    port = itest.free_port()
    serve = s.spawn("serve", [s.bins.producer, "serve", "--listen", f"127.0.0.1:{port}",
                              "--topic", s.topic, "--brokers", s.env["KAFKA_BOOTSTRAP_SERVERS"],
                              "--database-url", s.db.url, "--redis-url", s.env["REDIS_URL"],
                              "--key-prefix", s.prefix])
    itest.wait_serving(serve.p, port, serve.log)
    r = Reader(port)
    try:
        wait_for(lambda: all(r.seen(200, p) for p in Reader.PATHS), 30, "200s before the kill")
        killed = time.monotonic()
        s.stack.kill("pg")
        wait_for(lambda: r.seen(503, since=killed), 30, "a 503 while no primary takes writes")
        time.sleep(PROMOTE_AFTER_S)  # the failover's delay itself
        s.stack.cmd("promote", "pg-standby")
        promoted = time.monotonic()
        wait_for(lambda: all(r.seen(200, p, since=promoted) for p in Reader.PATHS), 30,
                 "200s from the new primary")
    finally:
        r.stop.set()
        r.thread.join(30)
    odd = [a for a in r.answers if a[2] not in (200, 503)]
    assert not odd, f"answers other than 200/503 (a hang is a timeout): {odd[:5]}"
    no_retry = [a for a in r.answers if a[2] == 503 and not a[3]]
    assert not no_retry, f"503s without Retry-After: {no_retry[:5]}"
    slowest = max(a[4] for a in r.answers)
    # From the first 503 to the first 200 after the last one; and from the
    # promote to the first 200 of each read.
    n503 = r.seen(503, since=killed)
    last_503 = max(a[0] for a in n503)
    unavailable = min(a[0] for a in r.seen(200, since=last_503)) - n503[0][0]
    after = max(min(a[0] for a in r.seen(200, p, since=promoted)) - promoted for p in Reader.PATHS)
    line = (f"scenario=status_reads_during_promote requests={len(r.answers)} n503={len(n503)} "
            f"reads_unavailable_s={unavailable:.1f} ok_after_promote_s={after:.2f} "
            f"slowest_request_s={slowest:.2f} promote_after_s={PROMOTE_AFTER_S}")
    sys.__stdout__.write("\n" + line + "\n")
    out = REPO / "tests" / "out"
    out.mkdir(parents=True, exist_ok=True)
    with open(out / f"chaos-{MODE}.txt", "a") as f:
        f.write(line + "\n")
    assert serve.alive(), serve.text()[-3000:]
    assert not s.crashes(), s.crashes()
