"""Shared fixtures for tadak's integration tests.

The tests run against the real local stack (scripts/stack up): a Kafka broker,
Redis and PostgreSQL on loopback. Each test gets its own topic, database and
Redis key prefix, so tests never see each other's data and never touch
anything they did not create.
"""
import http.client
import os
import re
import shlex
import socket
import subprocess
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import redis as redis_lib
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "corpus" / "json-test-suite" / "test_parsing"

# Tests make test leaves to make test-slow to stay under 20 minutes (each names what
# covers its case in make test).
slow = pytest.mark.skipif(os.environ.get("TADAK_SLOW") != "1",
                          reason="slow: make test-slow (TADAK_SLOW=1)")


def wait_for(cond, timeout=30.0, what="condition", interval=0.05):
    """Poll cond() until it returns a truthy value or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def port_free(port):
    """Nothing bound to 127.0.0.1:port and nothing listening on it."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) != 0


def stack_env():
    out = subprocess.run([str(REPO / "scripts" / "stack"), "env"], check=True,
                         capture_output=True, text=True).stdout
    env = {}
    for word in shlex.split(out):
        if "=" in word:
            k, v = word.split("=", 1)
            env[k] = v
    return env


@pytest.fixture(scope="session")
def env():
    return stack_env()


class Bins:
    def __init__(self):
        d = Path(os.environ.get("TADAK_BIN_DIR", REPO / "build"))
        if not d.is_absolute():
            d = REPO / d
        self.dir = d
        self.producer = str(d / "tadak-producer")
        self.consumer = str(d / "tadak-consumer")

    def help_options(self, program, *command):
        """The option lines of `program command --help` (after "Options:")."""
        exe = self.producer if program == "tadak-producer" else self.consumer
        p = subprocess.run([exe, *command, "--help"], capture_output=True, text=True, timeout=30)
        assert p.returncode == 0, p.stderr
        lines = p.stdout.split("Options:", 1)[1].splitlines()
        assert len(lines) >= 3, p.stdout
        return lines


@pytest.fixture(scope="session")
def bins():
    return Bins()


def unique(prefix):
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "own_topic: the test creates its topic itself (partitions, config)")


def create_topic(env, name, config=None, partitions=6):
    """The stack's broker creates no topic on first use (as a deployment's should not)."""
    admin = AdminClient({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"]})
    admin.create_topics([NewTopic(name, partitions, 1, config=config or {})])[name].result(30)


_created = set()


def ensure_topic(env, name):
    """create_topic unless it exists: for helpers handed any topic name."""
    if name in _created:
        return
    admin = AdminClient({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"]})
    if name not in admin.list_topics(timeout=30).topics:
        try:
            admin.create_topics([NewTopic(name, 6, 1)])[name].result(30)
        except KafkaException as e:
            if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    _created.add(name)


def new_topic(env, stem):
    """A fresh topic name, created (6 partitions)."""
    name = unique(stem)
    create_topic(env, name)
    return name


@pytest.fixture
def topic(request, env):
    """A topic of the test's own, created with 6 partitions (not with own_topic)."""
    name = unique("t_" + re.sub(r"[^A-Za-z0-9._-]", "_", request.node.name)[:40])
    if not request.node.get_closest_marker("own_topic"):
        create_topic(env, name)
    return name


class Database:
    def __init__(self, admin_url, name):
        self.name = name
        self.admin_url = admin_url
        base = admin_url.rsplit("/", 1)[0]
        self.url = f"{base}/{name}"

    def rows(self, sql, params=None):
        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()

    def count(self, where="true", params=None):
        try:
            return self.rows(f"select count(*) from votes where {where}", params)[0][0]
        except psycopg.errors.UndefinedTable:
            return 0


def fresh_database(env, stem):
    """A database of its own for one test (a generator for a fixture: yield from)."""
    name = unique(stem)
    admin = env["DATABASE_URL"]
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    yield Database(admin, name)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def db(env):
    yield from fresh_database(env, "tadak_test")


@pytest.fixture
def redis_client(env):
    r = redis_lib.Redis.from_url(env["REDIS_URL"])
    yield r
    r.close()


@pytest.fixture
def prefix(redis_client):
    p = unique("tk") + ":"
    yield p
    keys = list(redis_client.scan_iter(match=p + "*", count=1000))
    for i in range(0, len(keys), 500):
        redis_client.delete(*keys[i:i + 500])


def produce(env, topic, values, keys=None, headers=None):
    """Produce raw values (bytes/str) and wait until every one is acknowledged."""
    ensure_topic(env, topic)
    p = Producer({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"],
                  "enable.idempotence": True, "acks": "all",
                  "linger.ms": 5, "message.max.bytes": 4 * 1024 * 1024})
    errors = []

    def report(err, _msg):
        if err is not None:
            errors.append(err)

    for i, v in enumerate(values):
        k = keys[i] if keys is not None else None
        while True:
            try:
                p.produce(topic, value=v, key=k, on_delivery=report)
                break
            except BufferError:
                p.poll(0.1)
        p.poll(0)
    remaining = p.flush(60)
    assert remaining == 0, f"{remaining} messages not delivered"
    assert not errors, f"delivery errors: {errors[:3]}"


class Message:
    def __init__(self, m):
        self.value = m.value()
        self.key = m.key()
        self.headers = dict((k, v) for k, v in (m.headers() or []))
        self.partition = m.partition()
        self.offset = m.offset()


def consume_all(env, topic, expected=None, timeout=30.0):
    """Read the topic from the beginning. With expected, wait until that many
    messages arrived; without, stop after the topic has been idle for a moment."""
    c = Consumer({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"],
                  "group.id": unique("verify"), "auto.offset.reset": "earliest",
                  "enable.auto.commit": False})
    c.subscribe([topic])
    out = []
    deadline = time.monotonic() + timeout
    idle_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            if expected is not None and len(out) >= expected:
                break
            m = c.poll(0.2)
            if m is None:
                if expected is None and out and time.monotonic() - idle_since > 2.0:
                    break
                continue
            if m.error():
                continue
            out.append(Message(m))
            idle_since = time.monotonic()
    finally:
        c.close()
    if expected is not None:
        assert len(out) >= expected, f"got {len(out)} of {expected} messages from {topic}"
    return out


def run(args, env=None, timeout=120, input=None, check=False):
    full = dict(os.environ)
    if env:
        full.update(env)
    return subprocess.run([str(a) for a in args], env=full, capture_output=True, text=True,
                          timeout=timeout, input=input, check=check)


def free_port():
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(port, method, path, body=None, headers=None, timeout=15):
    """One HTTP request on a fresh connection -> (status, lower-cased headers, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def wait_serving(proc, port, log, timeout=20):
    """Until `tadak-producer serve` answers /healthz; fail at once if it exited."""
    def healthy():
        assert proc.poll() is None, f"serve exited: {log.read_text()}"
        try:
            return request(port, "GET", "/healthz", timeout=2)[0] == 200
        except OSError:
            return False
    wait_for(healthy, timeout=timeout, what="serve /healthz")
