"""Fixtures of the chaos suite (tests/chaos).

Every chaos scenario breaks things on purpose -- SIGKILLs consumers, wipes
and stops Redis, stops PostgreSQL, restarts the Kafka broker -- so the suite
never uses the shared stack: the session fixture `stack` starts a PRIVATE
Kafka + Redis + PostgreSQL (`scripts/stack up` with TADAK_STACK_DIR in a
fresh temporary directory and free ports in 21000-28999) and removes it at
the end (`scripts/stack clean`, also when a test fails).

  TADAK_CHAOS=reduced|full   size of every scenario (default reduced: CI)
  TADAK_CHAOS_SEED=N         the seed; printed first, so any run is repeatable
  TADAK_CHAOS_STACK_DIR=D    state directory of the private stack (tests/chaos/run
                             sets it so that its trap can clean up after a kill)

Each scenario prints one line
  scenario=NAME acked=N rows=N missing=N duplicates=N crashes=N seed=N
(acked: votes acknowledged, 202 or CLI ack; rows: rows in the scenario's
database; crashes: tadak processes that died by something other than our own
SIGKILL, or whose log holds a sanitizer report) and fails on any missing,
duplicate or crash.
"""
import importlib.util
import json
import os
import random
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import psycopg
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

REPO = Path(__file__).resolve().parents[2]
STACK = REPO / "scripts" / "stack"


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# The integration suite's helpers (wait_for, produce, consume_all, Database,
# Bins, CORPUS) and the verifier, without registering their fixtures here.
itest = _load("tadak_itest_conftest", REPO / "tests" / "integration" / "conftest.py")
verifier = _load("tadak_verify", REPO / "tests" / "tools" / "verify.py")
wait_for, produce, consume_all, unique, port_free = (itest.wait_for, itest.produce,
                                                     itest.consume_all, itest.unique,
                                                     itest.port_free)
CORPUS = itest.CORPUS

MODE = os.environ.get("TADAK_CHAOS", "reduced")
if MODE not in ("reduced", "full"):
    raise pytest.UsageError(f"TADAK_CHAOS must be reduced or full, not {MODE!r}")
FULL = MODE == "full"
# Scenarios make test leaves to make chaos to stay under 20 minutes (each names what
# covers it in the reduced set).
full_only = pytest.mark.skipif(not FULL, reason="full set only (make chaos): make test's "
                               "20 minutes")
SEED = int(os.environ.get("TADAK_CHAOS_SEED") or random.SystemRandom().randrange(1, 2**31))

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                     "ERROR: UndefinedBehaviorSanitizer", "AddressSanitizer:DEADLYSIGNAL")

os.environ.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
os.environ.setdefault("LSAN_OPTIONS",
                      f"suppressions={REPO}/tests/lsan.supp:print_suppressions=0")
os.environ.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")


def pytest_report_header(config):
    return f"chaos: mode={MODE} seed={SEED} (TADAK_CHAOS, TADAK_CHAOS_SEED)"


def raise_fd_limit(want=65536):
    """Connection floods need more descriptors than the usual soft limit of
    1024; children (the server under test) inherit the raised limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---------------------------------------------------------------- the private stack


def pick_ports():
    """Four consecutive free ports: Kafka, its controller, Redis, PostgreSQL."""
    rnd = random.SystemRandom()  # not the chaos seed: ports are not the scenario
    for _ in range(200):
        base = rnd.randrange(21000, 28996)
        if all(port_free(base + i) for i in range(4)):
            return base, base + 2, base + 3
    raise RuntimeError("no four consecutive free ports in 21000-28999")


class Stack:
    """A private scripts/stack instance: its own state directory and ports."""

    def __init__(self, state_dir, kafka_port, redis_port, pg_port):
        self.dir = Path(state_dir)
        self.ports = {"kafka": kafka_port, "redis": redis_port, "pg": pg_port}
        self.env = {
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{kafka_port}",
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "DATABASE_URL": f"postgresql://tadak@127.0.0.1:{pg_port}/tadak",
        }

    def _stack_env(self):
        e = dict(os.environ)
        e.update(TADAK_STACK_DIR=str(self.dir), TADAK_KAFKA_PORT=str(self.ports["kafka"]),
                 TADAK_REDIS_PORT=str(self.ports["redis"]), TADAK_PG_PORT=str(self.ports["pg"]),
                 TADAK_REDIS_TLS="1" if self.tls else "0")
        return e

    tls = False

    def redis_tls(self, on):
        """Restart the stack's Redis TLS-only (on) or plain; the URL to use."""
        self.stop("redis")
        self.tls = on
        self.start("redis")
        return self.redis_url()

    def redis_url(self):
        line = self.cmd("env").stdout
        return line.split("REDIS_URL=", 1)[1].split()[0]

    def cmd(self, *args, timeout=300, check=True):
        p = subprocess.run([str(STACK), *args], env=self._stack_env(), capture_output=True,
                           text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise AssertionError(f"scripts/stack {' '.join(args)} failed ({p.returncode}):\n"
                                 f"{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
        return p

    def stop(self, svc):
        self.cmd("stop-service", svc)

    def start(self, svc):
        self.cmd("start-service", svc)

    def kill(self, svc):
        self.cmd("kill", svc)
        # Gone means its port no longer answers (the kernel closes a killed
        # process' sockets only once all of its threads have exited).
        wait_for(lambda: port_free(self.ports[svc]), 30, f"{svc}'s port to close")

    def wipe_redis(self):
        """The stack runs Redis with `save ""` and no AOF, so a restarted Redis
        is empty; delete any dump anyway, in case that ever changes."""
        for name in ("dump.rdb", "appendonly.aof"):
            p = self.dir / "redis" / name
            if p.exists():
                p.unlink()
        shutil.rmtree(self.dir / "redis" / "appendonlydir", ignore_errors=True)


@pytest.fixture(scope="session")
def stack():
    raise_fd_limit()
    given = os.environ.get("TADAK_CHAOS_STACK_DIR")
    state = Path(given) if given else Path(tempfile.mkdtemp(prefix="tadak-chaos-"))
    state.mkdir(parents=True, exist_ok=True)
    s = Stack(state, *pick_ports())
    try:
        s.cmd("up", timeout=300)
        yield s
    finally:
        s.cmd("clean", timeout=180, check=False)
        if not given:
            shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def bins():
    b = itest.Bins()
    for path in (b.producer, b.consumer):
        assert os.access(path, os.X_OK), f"{path} not built (make SANITIZE=1 all)"
    return b


# ---------------------------------------------------------------- processes

class Proc:
    """A tadak process this scenario started; its output goes to files."""

    def __init__(self, name, args, logdir, env=None):
        self.name = name
        self.args = [str(a) for a in args]
        self.out = logdir / f"{name}.out"
        self.log = logdir / f"{name}.log"
        self._out = open(self.out, "wb")
        self._log = open(self.log, "wb")
        full = dict(os.environ)
        full.update(env or {})
        self.p = subprocess.Popen(self.args, stdout=self._out, stderr=self._log, env=full)
        self.killed = False  # by our own SIGKILL

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def text(self):
        return self.log.read_text(errors="replace")

    def stdout(self):
        return self.out.read_text(errors="replace")

    def sigkill(self):
        if self.alive():
            self.killed = True
            self.p.send_signal(signal.SIGKILL)
        self.wait(30)

    def terminate(self, timeout=90):
        """SIGTERM and wait for the exit status (a clean shutdown is asked for)."""
        if self.alive():
            self.p.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout):
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.killed = False  # a hang is a failure, not our kill
            self.p.send_signal(signal.SIGKILL)
            self.p.wait(30)
            raise AssertionError(f"{self.name} did not exit within {timeout}s:\n"
                                 f"{self.text()[-2000:]}")
        finally:
            self._out.flush()
            self._log.flush()
        return rc

    def close(self):
        if self.alive():  # leftovers at teardown: not counted as crashes
            self.killed = True
            self.p.send_signal(signal.SIGKILL)
            self.p.wait(30)
        self._out.close()
        self._log.close()

    def crash_reason(self):
        """Why this process counts as a crash, or None."""
        text = self.text()
        for m in SANITIZER_MARKERS:
            if m in text:
                i = text.index(m)
                return f"sanitizer report: {text[max(0, i - 200):i + 1500]}"
        rc = self.p.poll()
        if rc is None or rc == 0:
            return None
        if self.killed and rc == -signal.SIGKILL:
            return None
        return f"exit status {rc}: {text[-2000:]}"

    def summary(self):
        lines = [ln for ln in self.stdout().splitlines() if ln.startswith("{")]
        return json.loads(lines[-1]) if lines else None


# ---------------------------------------------------------------- one scenario

def count_lines(path):
    try:
        with open(path, "rb") as f:
            return sum(1 for ln in f if ln.strip())
    except FileNotFoundError:
        return 0


class Scenario:
    """One scenario's world: topic, database, Redis prefix, seeded random
    source, the processes it started; report() prints its one line."""

    def __init__(self, name, stack, bins, tmp):
        self.name = name
        self.stack = stack
        self.env = stack.env
        self.bins = bins
        self.tmp = tmp
        self.seed = (SEED ^ zlib.crc32(name.encode())) & 0x7FFFFFFF
        self.rng = random.Random(self.seed)
        self.topic = unique(f"chaos_{name}")
        self.group = f"g_{self.topic}"
        self.prefix = unique("ck") + ":"
        self.db = itest.Database(stack.env["DATABASE_URL"], unique("chaos"))
        with psycopg.connect(self.db.admin_url, autocommit=True) as conn:
            conn.execute(f'create database "{self.db.name}"')
        self.procs = []
        self.n = 0

    # -- processes
    def spawn(self, kind, args, env=None):
        self.n += 1
        p = Proc(f"{self.n:03d}-{kind}", args, self.tmp, env)
        self.procs.append(p)
        return p

    def consumer(self, idle_exit=None, extra=(), redis_url=None):
        args = [self.bins.consumer, "--brokers", self.env["KAFKA_BOOTSTRAP_SERVERS"],
                "--redis-url", redis_url or self.env["REDIS_URL"], "--database-url", self.db.url,
                "--topic", self.topic, "--group", self.group, "--key-prefix", self.prefix,
                # A SIGKILLed member holds its partitions until its session
                # expires: the consumer's default, 6 s (the broker's minimum).
                *(("--idle-exit", str(idle_exit)) if idle_exit else ()), *extra]
        return self.spawn("consumer", args)

    def load(self, users, dup, rate, ack_log):
        args = [self.bins.producer, "load", "--brokers", self.env["KAFKA_BOOTSTRAP_SERVERS"],
                "--topic", self.topic, "--users", users, "--dup-factor", dup, "--rate", rate,
                "--seed", self.seed, "--ack-log", ack_log]
        return self.spawn("load", args)

    def create_topic(self, topic=None, partitions=6, config=None):
        topic = topic or self.topic
        admin = AdminClient({"bootstrap.servers": self.env["KAFKA_BOOTSTRAP_SERVERS"]})
        fs = admin.create_topics([NewTopic(topic, partitions, 1, config=config or {})])
        fs[topic].result(60)
        wait_for(lambda: topic in admin.list_topics(timeout=5).topics and
                 len(admin.list_topics(timeout=5).topics[topic].partitions) == partitions,
                 60, f"topic {topic}")

    # -- the database, also while PostgreSQL is down
    def rows(self):
        try:
            return self.db.count()
        except psycopg.OperationalError:
            return -1

    def wait_rows(self, n, timeout, what="rows"):
        wait_for(lambda: self.rows() >= n, timeout, f"{n} {what}", interval=0.25)

    def crashes(self):
        return [(p.name, r) for p in self.procs if (r := p.crash_reason())]

    def recorded(self, tokens):
        """How many of these tokens have a row (-1 while PostgreSQL is down)."""
        try:
            with psycopg.connect(self.db.url, autocommit=True) as conn:
                return conn.execute("select count(*) from votes where token = any(%s)",
                                    (list(tokens),)).fetchone()[0]
        except psycopg.Error:
            return -1

    def verify(self, *ack_paths):
        return verifier.verify([str(p) for p in ack_paths], self.db.url)

    def verify_acks(self, acks, extra=""):
        """Verify one acks file against the table and report it (see report)."""
        v = self.verify(acks)
        self.report(count_lines(acks), v, extra)
        return v

    def report(self, acked, v, extra="", allow_missing=False):
        """Print the scenario's line, then fail on missing/duplicates/crashes
        (allow_missing: a scenario that measures a loss, and asserts it)."""
        crashes = self.crashes()
        line = (f"scenario={self.name} acked={acked} rows={v['rows']} missing={v['missing']} "
                f"duplicates={v['duplicates']} crashes={len(crashes)} seed={self.seed}"
                + (f" {extra}" if extra else ""))
        sys.__stdout__.write("\n" + line + "\n")
        sys.__stdout__.flush()
        out = REPO / "tests" / "out"
        out.mkdir(parents=True, exist_ok=True)
        with open(out / f"chaos-{MODE}.txt", "a") as f:
            f.write(line + "\n")
        assert allow_missing or not v["missing"], \
            f"acknowledged votes without a row: {v['examples']}"
        assert not v["duplicates"], f"tokens with several rows: {v['examples']}"
        assert not v["mismatched"], f"rows whose ids disagree with the token: {v['examples']}"
        assert not crashes, "processes crashed:\n" + "\n".join(f"{n}: {r}" for n, r in crashes)
        return line

    def close(self):
        for p in self.procs:
            p.close()
        try:
            with psycopg.connect(self.db.admin_url, autocommit=True) as conn:
                conn.execute(f'drop database if exists "{self.db.name}" with (force)')
        except psycopg.Error:
            pass


@pytest.fixture
def scenario(request, stack, bins, tmp_path):
    name = request.node.originalname.removeprefix("test_")
    s = Scenario(name, stack, bins, tmp_path)
    yield s
    s.close()
    # Whatever a scenario did to the services, the next one starts with all up.
    for svc in ("kafka", "redis", "pg"):
        stack.start(svc)


def pause(rng, lo, hi):
    """Chaos timing: a seeded random delay before the next fault. This is the
    scenario (a fault at a random moment), never synchronisation."""
    time.sleep(rng.uniform(lo, hi))


# ---------------------------------------------------------------- a three-node cluster
#
# The cluster scenarios (test_cluster.py) run on a second private stack:
# `TADAK_KAFKA_BROKERS=3 scripts/stack up` in <TADAK_CHAOS_STACK_DIR>/cluster
# (so tests/chaos/run's trap removes it too), on eight consecutive free ports:
# kafka-N on base+2(N-1) with its controller on the next port, Redis on
# base+6, PostgreSQL on base+7.

CLUSTER_NODES = ("kafka-1", "kafka-2", "kafka-3")


def pick_cluster_ports():
    rnd = random.SystemRandom()
    for _ in range(200):
        base = rnd.randrange(21000, 28992)
        if all(port_free(base + i) for i in range(8)):
            return base, base + 6, base + 7
    raise RuntimeError("no eight consecutive free ports in 21000-28999")


class ClusterStack(Stack):
    """A private three-node scripts/stack: services kafka-1..3, redis, pg."""

    def __init__(self, state_dir, kafka_port, redis_port, pg_port):
        super().__init__(state_dir, kafka_port, redis_port, pg_port)
        for i, node in enumerate(CLUSTER_NODES):
            self.ports[node] = kafka_port + 2 * i
        self.env["KAFKA_BOOTSTRAP_SERVERS"] = ",".join(
            f"127.0.0.1:{self.ports[n]}" for n in CLUSTER_NODES)

    def _stack_env(self):
        e = super()._stack_env()
        e["TADAK_KAFKA_BROKERS"] = str(len(CLUSTER_NODES))
        return e

    def status(self):
        """scripts/stack status as {name: line}; the quorum line under "quorum"."""
        out = self.cmd("status", check=False).stdout
        return {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}

    def quorum_leader(self):
        """The node that is the active controller ("kafka-N"), or None."""
        words = self.status().get("quorum", "").split()
        return words[2] if len(words) > 2 and words[1] == "leader" else None


class ClusterScenario(Scenario):
    """A Scenario whose topics live on all three nodes (replication factor 3,
    min.insync.replicas=2, as the README tells production to create them)."""

    def admin(self):
        return AdminClient({"bootstrap.servers": self.env["KAFKA_BOOTSTRAP_SERVERS"],
                            "log_level": 0})

    def create_topic(self, topic=None, partitions=6, config=None):
        topic = topic or self.topic
        admin = self.admin()
        cfg = {"min.insync.replicas": "2", **(config or {})}
        admin.create_topics([NewTopic(topic, partitions, 3, config=cfg)])[topic].result(60)
        wait_for(lambda: (p := self.partitions(topic)) and len(p) == partitions and
                 all(len(isr) == 3 for _, isr in p.values()), 60, f"topic {topic} on 3 nodes")

    def partitions(self, topic=None):
        """{partition: (leader node id, [in-sync replica ids])}, {} when no
        broker answered (a metadata request can hit the node just killed)."""
        topic = topic or self.topic
        try:
            md = self.admin().list_topics(topic, timeout=3).topics[topic]
        except Exception:  # KafkaException, a timeout: not answered this time
            return {}
        if md.error is not None:
            return {}
        return {p.id: (p.leader, list(p.isrs)) for p in md.partitions.values()}


@pytest.fixture(scope="session")
def cluster():
    raise_fd_limit()
    given = os.environ.get("TADAK_CHAOS_STACK_DIR")
    state = Path(given) / "cluster" if given else Path(tempfile.mkdtemp(prefix="tadak-cluster-"))
    state.mkdir(parents=True, exist_ok=True)
    s = ClusterStack(state, *pick_cluster_ports())

    # The nodes run in sessions of their own, so a SIGTERM to the test run
    # would orphan three JVMs: turn it into an interrupt, which runs teardown.
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        s.cmd("up", timeout=400)
        yield s
    finally:
        t0 = time.monotonic()
        p = s.cmd("clean", timeout=240, check=False)
        if time.monotonic() - t0 > 20:  # a node that would not stop: say which
            sys.__stderr__.write(f"\ncluster: clean took {time.monotonic() - t0:.0f} s:\n"
                                 f"{p.stdout}{p.stderr}\n")
        signal.signal(signal.SIGTERM, previous)
        if not given:
            shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def cluster_scenario(request, cluster, bins, tmp_path):
    # Whatever an earlier scenario killed, this one starts with every node up
    # (restarted here rather than after each scenario: the last one's dead
    # node is not worth a restart just before the cluster is removed).
    for svc in ("kafka", "redis", "pg"):
        cluster.start(svc)
    name = request.node.originalname.removeprefix("test_")
    s = ClusterScenario(name, cluster, bins, tmp_path)
    yield s
    s.close()


# ---------------------------------------------------------------- PostgreSQL with a standby
#
# The failover scenarios (test_failover_pg.py) use the private stack's Kafka
# and Redis and a PostgreSQL pair of their own: `TADAK_PG_STANDBY=1
# scripts/stack start-service pg` and `pg-standby` in
# <TADAK_CHAOS_STACK_DIR>/pg-ha (so tests/chaos/run's trap removes it too),
# on two consecutive free ports (pg-standby on PostgreSQL's port + 1, as
# scripts/stack puts it). A scenario that promotes the standby leaves two
# diverged clusters behind, so every scenario starts from fresh_pg(): a new
# primary and a new copy of it.

def pick_pg_pair_ports():
    rnd = random.SystemRandom()
    for _ in range(200):
        base = rnd.randrange(21000, 28998)
        if all(port_free(base + i) for i in range(2)):
            return base
    raise RuntimeError("no two consecutive free ports in 21000-28999")


class HAStack(Stack):
    """A private PostgreSQL primary and pg-standby; Kafka and Redis are `base`'s.
    sync: TADAK_PG_SYNC."""

    sync = False

    def __init__(self, state_dir, base, pg_port):
        super().__init__(state_dir, base.ports["kafka"], base.ports["redis"], pg_port)
        self.ports["pg-standby"] = pg_port + 1
        self.env = dict(base.env, DATABASE_URL=self.url("tadak"))

    def _stack_env(self):
        e = super()._stack_env()
        e.update(TADAK_PG_STANDBY="1", TADAK_PG_SYNC="1" if self.sync else "0")
        return e

    def url(self, db, port=None):
        """The multi-host URL of database db, or one server's (port)."""
        if port:
            return f"postgresql://tadak@127.0.0.1:{port}/{db}"
        return (f"postgresql://tadak@127.0.0.1:{self.ports['pg']},127.0.0.1:"
                f"{self.ports['pg-standby']}/{db}?target_session_attrs=read-write")

    def status(self):
        out = self.cmd("status", check=False).stdout
        return {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}

    def fresh_pg(self, sync):
        """A new primary (synchronous replication or not) and a new standby of it."""
        for svc in ("pg-standby", "pg"):
            self.stop(svc)
        for name in ("pg", "pg-standby"):
            d = self.dir / name
            if d.is_symlink():
                shutil.rmtree(d.resolve(), ignore_errors=True)
                d.unlink()
            else:
                shutil.rmtree(d, ignore_errors=True)
        self.sync = sync
        self.start("pg")
        self.start("pg-standby")
        wait_for(lambda: "standby, streaming" in self.status().get("pg-standby", ""), 30,
                 "pg-standby to stream")


@pytest.fixture(scope="module")
def ha_stack(stack):
    given = os.environ.get("TADAK_CHAOS_STACK_DIR")
    state = Path(given) / "pg-ha" if given else Path(tempfile.mkdtemp(prefix="tadak-pgha-"))
    state.mkdir(parents=True, exist_ok=True)
    s = HAStack(state, stack, pick_pg_pair_ports())
    try:
        yield s
    finally:
        s.cmd("clean", timeout=180, check=False)
        if not given:
            shutil.rmtree(state, ignore_errors=True)
