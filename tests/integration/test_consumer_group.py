"""tadak-consumer and its group: where a new group starts, waiting for a topic
that does not exist yet, pausing that survives rebalances, a dead-letter topic
that cannot take poison, and giving up clearly when no assignment comes.

Each test fails on a consumer that starts at "latest", exits on a missing
topic, leaves partitions paused after a rebalance, retries a broken DLQ by
flushing inside its round, or counts idle time before it has partitions.
"""
import signal
import subprocess
import time
import urllib.request
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource

from conftest import create_topic, free_port, produce, run, unique, wait_for
from test_consumer import (TIMEOUT, Proxy, consumer_args, summary_of, token,
                           tokens_in, vote)


def without_start_flag(args):
    return [a for a in args if a != "--from-beginning"]


def crashed_member(args, log, db, rows):
    """A member that joined and recorded its `rows` votes, then was SIGKILLed:
    the group keeps it until its session ends."""
    m = Logged(args, log)
    wait_for(lambda: "partitions assigned" in m.text(), 60, "the first member to join")
    wait_for(lambda: db.count() == rows, 60, "its votes")
    m.proc.send_signal(signal.SIGKILL)
    m.proc.wait(30)
    m.fh.close()
    return m


class Logged:
    """A consumer whose stderr goes to its own file (several run at once)."""

    def __init__(self, args, path):
        self.path = path
        self.fh = open(path, "w")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.fh, text=True)

    def text(self):
        return self.path.read_text()

    def count(self, needle):
        return self.text().count(needle)

    def alive(self):
        return self.proc.poll() is None

    def finish(self, expect=0):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        out, _ = self.proc.communicate(timeout=TIMEOUT)
        self.fh.close()
        assert self.proc.returncode == expect, \
            f"consumer exited {self.proc.returncode}:\n{self.text()[-3000:]}"
        return summary_of(out), self.text()


def produce_to(env, topic, partition, values):
    p = Producer({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"], "acks": "all",
                  "enable.idempotence": True})
    errors = []
    for v in values:
        p.produce(topic, value=v, partition=partition,
                  on_delivery=lambda err, _m: errors.append(err) if err else None)
    assert p.flush(30) == 0 and not errors, errors[:3]


def committed_by_partition(env, topic, group, partitions=6):
    c = Consumer({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"], "group.id": group})
    try:
        tps = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        c.close()


# ---------------------------------------------------------------- where a new group starts

def test_new_group_starts_at_the_earliest_vote(bins, env, topic, db, prefix):
    """Votes acknowledged before the group existed are read without any flag."""
    produce(env, topic, [vote(n, 4) for n in range(1, 1001)])
    p = run(without_start_flag(consumer_args(bins, env, topic, db, prefix)), timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr[-3000:]
    s = summary_of(p.stdout)
    assert s["consumed"] == 1000 and s["inserted"] == 1000
    assert db.count() == 1000
    assert "start_at=earliest" in p.stderr


def test_start_at_latest_skips_what_came_before(bins, env, topic, db, prefix):
    """The opt-in other behaviour, and its cost: earlier votes are never read."""
    produce(env, topic, [vote(n, 4) for n in range(1, 51)])
    args = without_start_flag(consumer_args(bins, env, topic, db, prefix,
                                            extra=("--start-at", "latest")))
    p = run(args, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr[-3000:]
    assert summary_of(p.stdout)["consumed"] == 0 and db.count() == 0
    bad = run([bins.consumer, "--start-at", "middle"], timeout=30)
    assert bad.returncode == 2 and "--start-at" in bad.stderr
    helptext = run([bins.consumer, "--help"], timeout=30).stdout
    assert "--start-at" in helptext and "never recorded" in helptext


# ---------------------------------------------------------------- a topic that is not there yet

@pytest.mark.own_topic
def test_consumer_waits_for_its_topic(bins, env, topic, db, prefix, tmp_path):
    c = Logged(without_start_flag(consumer_args(bins, env, topic, db, prefix, idle=None)),
               tmp_path / "c.log")
    try:
        wait_for(lambda: "waiting for the topic to exist" in c.text() or not c.alive(), 30,
                 "the consumer to wait for the topic")
        assert c.alive(), c.text()[-2000:]
        produce(env, topic, [vote(n, 5) for n in range(1, 101)])  # creates the topic
        wait_for(lambda: db.count() == 100, 90, "the votes produced after the topic appeared")
    finally:
        s, log = c.finish()
    assert s["inserted"] == 100
    assert log.count("waiting for the topic to exist") == 1  # once, then every 30 s


def test_missing_topic_with_idle_exit_gives_up_with_its_own_status(bins, env, db, prefix):
    t0 = time.monotonic()
    p = run(consumer_args(bins, env, unique("t_missing"), db, prefix,
                          extra=("--join-timeout-s", "3")), timeout=TIMEOUT)
    assert p.returncode == 3, (p.returncode, p.stderr[-2000:])
    assert "topic never appeared" in p.stderr
    assert "nothing to consume" not in p.stderr
    assert time.monotonic() - t0 < 30


def test_no_assignment_is_not_idle_and_never_aborts(bins, env, topic, db, prefix, tmp_path):
    """A member that died with a long session holds the group: a newcomer with
    --idle-exit waits for an assignment, not for "idle", then says it never
    joined (status 3) and closes without aborting in the assignor. A classic
    group (--group-protocol classic: with KIP-848 the session is the
    broker's), with the cooperative-sticky assignor, which librdkafka before
    2.3.0 aborted in when a consumer closed before its first assignment."""
    produce(env, topic, [vote(n, 6) for n in range(1, 11)])
    group = f"g_{topic}"
    classic = ("--group-protocol", "classic")
    crashed_member(consumer_args(bins, env, topic, db, prefix, idle=None,
                                 extra=(*classic, "--session-timeout-ms", "60000")),
                   tmp_path / "h.log", db, 10)
    p = run(consumer_args(bins, env, topic, db, prefix, group=group, idle="1",
                          extra=(*classic, "--join-timeout-s", "4")), timeout=TIMEOUT)
    assert p.returncode == 3, (p.returncode, p.stderr[-3000:])
    assert "never joined the group" in p.stderr
    assert "nothing to consume" not in p.stderr and "Assertion" not in p.stderr


def test_restart_under_the_id_of_a_crashed_member_takes_its_place(bins, env, topic, db, prefix,
                                                                   tmp_path):
    """A static member (--instance-id) is SIGKILLed and restarted at once, as
    a supervisor does. The KIP-848 protocol keeps the dead member until its
    session ends (group.consumer.session.timeout.ms, 6 s on the stack) and
    refuses the id until then with a fatal UNRELEASED_INSTANCE_ID: the new
    process must wait and take the place, not exit. A second process under an
    id a live member holds gives up after --join-timeout-s, naming the cause."""
    produce(env, topic, [vote(n, 7) for n in range(1, 11)])
    ident = ("--instance-id", "c1")
    crashed_member(consumer_args(bins, env, topic, db, prefix, idle=None, extra=ident),
                   tmp_path / "first.log", db, 10)
    t0 = time.monotonic()
    again = Logged(consumer_args(bins, env, topic, db, prefix, idle=None, extra=ident),
                   tmp_path / "again.log")
    try:
        wait_for(lambda: "partitions assigned" in again.text() or not again.alive(), 60,
                 "the restarted member's partitions")
        took = time.monotonic() - t0
        assert again.alive(), again.text()[-3000:]
        assert "held by a member that has not left" in again.text()
        assert took < 6 + 5, f"took its place after {took:.1f} s"
        produce(env, topic, [vote(n, 8) for n in range(1, 11)])
        wait_for(lambda: db.count() == 20, 60, "the votes after the restart")

        p = run(consumer_args(bins, env, topic, db, prefix, idle=None,
                              extra=(*ident, "--join-timeout-s", "3")), timeout=TIMEOUT)
        assert p.returncode == 1, (p.returncode, p.stderr[-3000:])
        assert "held by another member of the group, giving up" in p.stderr
        assert again.alive() and "partitions revoked" not in again.text()
    finally:
        s, _ = again.finish()
    assert s["inserted"] == 10


# ---------------------------------------------------------------- pause state across rebalances

def test_postgresql_outage_across_rebalances(bins, env, topic, db, prefix, tmp_path):
    """PostgreSQL down and A paused; B joins, taking partitions (and with them
    rows A held); PostgreSQL back: A must notice although the rows it held
    may all be gone; B leaves: the partitions A gets back, paused by A before
    they were revoked, must be fetched again. Every vote is recorded."""
    u = urlsplit(db.url)
    proxy = Proxy(u.hostname, u.port)
    proxied = SimpleNamespace(url=u._replace(netloc=f"{u.username}@127.0.0.1:{proxy.port}")
                              .geturl())
    group = f"g_{topic}"
    produce(env, topic, [vote(n, 1) for n in range(1, 61)])
    a = Logged(consumer_args(bins, env, topic, proxied, prefix, idle=None), tmp_path / "a.log")
    b = None
    try:
        wait_for(lambda: db.count() == 60, 60, "the first votes")
        proxy.stop()
        produce(env, topic, [vote(n, 2) for n in range(1, 61)])
        wait_for(lambda: "postgresql unavailable" in a.text(), 60, "A to notice the outage")

        b = Logged(consumer_args(bins, env, topic, db, prefix, group=group, idle=None),
                   tmp_path / "b.log")
        wait_for(lambda: "partitions assigned" in b.text(), 60, "B to join")
        wait_for(lambda: a.count("partitions assigned") >= 2, 60, "A's share after B joined")
        proxy.start()
        wait_for(lambda: "postgresql reachable again" in a.text(), 60,
                 "A to see PostgreSQL back (its held rows may have gone to B)")
        b.finish()
        b = None
        wait_for(lambda: a.count("partitions assigned") >= 3, 60, "A to get B's partitions")
        produce(env, topic, [vote(n, 3) for n in range(1, 61)])
        wait_for(lambda: db.count() == 180, 60, "every vote, on every partition")
    finally:
        if proxy.listener._closed:
            proxy.start()
        if b:
            b.finish()
        s, log = a.finish()
    assert tokens_in(db) == {token(n, c) for n in range(1, 61) for c in (1, 2, 3)}


# ---------------------------------------------------------------- the dead-letter topic

def test_dlq_topic_that_cannot_exist_stops_the_consumer(bins, env, topic, db, prefix):
    produce(env, topic, [vote(1, 1)])
    t0 = time.monotonic()
    p = run(consumer_args(bins, env, topic, db, prefix, extra=("--dlq-topic", "no/such:topic")),
            timeout=30)
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    assert time.monotonic() - t0 < 10
    assert "dead-letter topic unusable" in p.stderr and "no/such:topic" in p.stderr
    assert db.count() == 0  # it stopped before reading anything


def scrape(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            return r.read().decode()
    except OSError:
        return ""


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_failing_dlq_holds_one_partition_and_counts(bins, env, topic, db, prefix, tmp_path):
    """The DLQ refuses a dead letter (too large even when cut): the poison's
    partition holds its offset and pauses once enough waits behind it, the
    other partitions flow, the failures are counted and logged once (not per
    retry); when the DLQ takes it, the partition completes."""
    dlq = f"{topic}.dlq"
    create_topic(env, dlq, partitions=1, config={"max.message.bytes": "600"})
    produce_to(env, topic, 0, [b"x" * 3000])  # poison at partition 0, offset 0
    produce_to(env, topic, 0, [vote(n, 1) for n in range(1, 201)])
    for part in range(1, 6):
        produce_to(env, topic, part, [vote(n, 10 + part) for n in range(1, 101)])
    port = free_port()
    c = Logged(consumer_args(bins, env, topic, db, prefix, idle=None,
                             extra=("--batch-size", "20", "--metrics", f"127.0.0.1:{port}")),
               tmp_path / "c.log")
    try:
        wait_for(lambda: db.count("candidate_id > 10") == 500, 60, "the other partitions")
        wait_for(lambda: metric(scrape(port), "tadak_dlq_failures_total") >= 3, 60,
                 "the DLQ failures to be counted")
        wait_for(lambda: "partition paused behind an unsettled message" in c.text(), 30,
                 "partition 0 to pause behind its poison")
        assert db.count("candidate_id = 1") < 200  # paused: memory stays bounded
        assert committed_by_partition(env, topic, f"g_{topic}")[0] <= 0  # never skipped
        assert c.count("dead-letter topic failing") == 1
        assert c.alive()

        admin = AdminClient({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"]})
        res = ConfigResource("topic", dlq, set_config={"max.message.bytes": "1048588"})
        for f in admin.alter_configs([res]).values():
            f.result(30)
        wait_for(lambda: db.count() == 700, 90, "partition 0 after the DLQ took the poison")
        wait_for(lambda: committed_by_partition(env, topic, f"g_{topic}")[0] == 201, 30,
                 "partition 0's offset past the poison")
    finally:
        s, log = c.finish()
    assert s["dead_lettered"] == 1 and s["inserted"] == 700
    assert "invalid message dead-lettered" in log
