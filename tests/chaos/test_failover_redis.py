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
    new one, not as a second, empty master.
"""
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from conftest import REPO, _load, wait_for

rs = _load("tadak_redis_sentinel", REPO / "tests" / "tools" / "redis_sentinel.py")

FAILOVER_DEADLINE = 30  # s: down-after 1 s, then a vote and a promote


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
