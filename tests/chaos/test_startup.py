"""A consumer started while its PostgreSQL is really stopped (issue #21, item 6).

The integration suite refuses connections through a proxy of its own; here
the private stack's PostgreSQL server itself is stopped (`scripts/stack
stop-service pg`) before the consumer starts, votes are acknowledged while it
is down, and it comes back after the outage. Before, the consumer exited 1 at
once ("cannot apply the schema"); now it waits, logs it once, and the same
process records every acknowledged vote and exits 0 by itself (--idle-exit).
"""
import time

from conftest import FULL, full_only, wait_for

FINISH_S = 600  # as in test_chaos.py: the pipeline catches up (sanitizer build, 2 cores)

START = dict(users=3000, dup=3, rate=300, outage=10) if FULL else \
    dict(users=1000, dup=3, rate=200, outage=10)


@full_only  # make test: test_consumer_startup's test_start_waits_for_postgresql
def test_consumer_started_while_postgresql_stopped(scenario):
    s, z = scenario, START
    s.create_topic()
    acks = s.tmp / "acks.jsonl"
    s.stack.stop("pg")
    stopped_at = time.monotonic()
    try:
        c = s.consumer(idle_exit=8)
        wait_for(lambda: "waiting for PostgreSQL" in c.text() or not c.alive(), 60,
                 "the consumer to wait for PostgreSQL")
        load = s.load(z["users"], z["dup"], z["rate"], acks)
        while time.monotonic() - stopped_at < z["outage"]:  # the outage itself
            assert c.alive(), c.text()[-3000:]
            time.sleep(0.5)
    finally:
        s.stack.start("pg")
    assert load.wait(300) == 0, load.text()[-2000:]
    rc = c.wait(FINISH_S)
    v = s.verify_acks(acks, f"outage_s={z['outage']}")
    assert rc == 0, c.text()[-3000:]
    log = c.text()
    assert log.count("waiting for PostgreSQL") == 1 and "PostgreSQL ready" in log
    assert v["rows"] == z["users"]
    summary = c.summary()
    assert summary and summary["consumed"] == z["users"] * z["dup"]
