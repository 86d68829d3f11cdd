"""PostgreSQL fails over: a streaming standby, promoted (issue #24).

Runs on a private stack with pg-standby (conftest.py: ha_stack); every test
starts from a new primary and a new standby (fresh_pg).

  stack: the standby streams (a row written on the primary appears on it),
         refuses writes until `scripts/stack promote pg-standby`, then takes
         them, and the multi-host URL `scripts/stack env` prints reaches it;
         TADAK_PG_SYNC=1 holds a commit until the standby has it.
"""
import threading
import time

import psycopg
import pytest

from conftest import wait_for


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
