"""The first hour (#26): what a new user mistypes gets an answer that says
what was meant, and a file that cannot be read says why. Each test fails on
a build that only says "unknown option" / prints usage / drops the reason."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient

from conftest import REPO, free_port, produce, run, unique, wait_for
from test_consumer import consumer_args, vote
from test_consumer_group import scrape


def test_mistyped_long_options_name_the_meant_one(bins):
    cases = [
        ([bins.consumer, "--grup", "g"], "unknown option --grup (did you mean --group?"),
        ([bins.consumer, "--from-begining"],
         "unknown option --from-begining (did you mean --from-beginning?"),
        ([bins.producer, "load", "--candidate", "1-4"],
         "unknown option --candidate (did you mean --candidates?"),
        ([bins.producer, "serve", "--listn", "127.0.0.1:1"],
         "unknown option --listn (did you mean --listen?"),
    ]
    for args, want in cases:
        p = run(args, timeout=30)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert want in p.stderr, (args, p.stderr)
    p = run([bins.consumer, "--zzzz", "1"], timeout=30)
    assert p.returncode == 2 and "did you mean" not in p.stderr, p.stderr


def test_unknown_stack_command_says_which_and_what_was_meant():
    p = run([REPO / "scripts" / "stack", "stop"], timeout=30)
    assert p.returncode == 2
    assert 'unknown command "stop"' in p.stderr and "did you mean down" in p.stderr, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr  # one line, not the usage


def test_replay_of_a_missing_file_says_why(bins):
    p = run([bins.producer, "replay", "/nonexistent/acks.jsonl"], timeout=30)
    assert p.returncode != 0
    assert "cannot open /nonexistent/acks.jsonl: No such file or directory" in p.stderr, p.stderr


def test_cli_without_kafka_says_what_to_set_within_5_s(bins):
    """Run without the stack's environment, send used to take 31 s and end in
    {"acked":0,"failed":1}: now one line within 5 s names the address, the flag
    and the variable, and for the built-in default the stack's eval line."""
    env = {"KAFKA_BOOTSTRAP_SERVERS": ""}
    for args, default in (([], True), (["-b", "127.0.0.1:1"], False)):
        t0 = time.monotonic()
        p = run([bins.producer, "send", *args, "--user", "1", "--candidate", "1"], env=env,
                timeout=60)
        took = time.monotonic() - t0
        assert p.returncode == 1, (args, p.returncode, p.stderr[-2000:])
        assert took < 5 + 2, f"took {took:.1f} s"
        ours = [ln for ln in p.stderr.splitlines() if ln.startswith("tadak-producer send:")]
        assert len(ours) == 1, p.stderr[-2000:]
        addr = "127.0.0.1:9092" if default else "127.0.0.1:1"
        assert f"cannot reach Kafka at {addr}" in ours[0]
        assert "--brokers" in ours[0] and "KAFKA_BOOTSTRAP_SERVERS" in ours[0]
        assert ('eval "$(scripts/stack env)"' in ours[0]) == default, ours[0]


def test_stack_down_stops_what_the_demo_started(tmp_path):
    """make demo leaves its producer and consumer running; `scripts/stack down`
    used to leave them too (ports 8000 and 9100 held, logs filling with
    connection errors). Only a pid that is still a tadak process is stopped."""
    demo = tmp_path / "demo"
    demo.mkdir()
    ours = subprocess.Popen(["bash", "-c", "exec -a tadak-producer sleep 120"])
    other = subprocess.Popen(["sleep", "120"])
    try:
        (demo / "producer.pid").write_text(f"{ours.pid}\n")
        (demo / "consumer.pid").write_text(f"{other.pid}\n")  # a pid reused by another program
        wait_for(lambda: "tadak-producer" in Path(f"/proc/{ours.pid}/cmdline").read_text(), 10,
                 "the stand-in to exec")
        p = run([REPO / "scripts" / "stack", "down"], env={"TADAK_STACK_DIR": str(tmp_path)},
                timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        assert ours.wait(20) == -signal.SIGTERM
        assert other.poll() is None, "a process that is not the demo's was stopped"
        assert "stopping the demo's producer" in p.stdout
        assert not list(demo.glob("*.pid"))
    finally:
        for proc in (ours, other):
            proc.kill()
            proc.wait()


def test_consumer_without_redis_says_so_and_shows_it(bins, env, topic, db, prefix, tmp_path):
    """A wrong REDIS_URL was one warning line: the consumer ran on, deduping in
    PostgreSQL only, with nothing to show for it. Now /metrics says
    tadak_consumer_redis_up 0, and --require-redis makes it exit 1 at start,
    naming the address."""
    nowhere = "redis://127.0.0.1:1/0"
    p = run(consumer_args(bins, env, topic, db, prefix, redis_url=nowhere,
                          extra=("--require-redis",)), timeout=60)
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    assert "cannot reach Redis, and --require-redis is set" in p.stderr
    assert "address=127.0.0.1:1" in p.stderr and "REDIS_URL" in p.stderr

    port = free_port()
    produce(env, topic, [vote(n, 2) for n in range(1, 6)])
    c = subprocess.Popen(consumer_args(bins, env, topic, db, prefix, redis_url=nowhere, idle=None,
                                       extra=("--metrics", f"127.0.0.1:{port}")),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: db.count() == 5, 60, "the votes, deduped by PostgreSQL alone")
        wait_for(lambda: "tadak_consumer_redis_up 0" in scrape(port), 10, "redis_up 0")
    finally:
        c.send_signal(signal.SIGTERM)
        _, err = c.communicate(timeout=60)
    assert c.returncode == 0, err[-2000:]
    assert "redis unavailable" in err and "host=127.0.0.1 port=1" in err



def test_verify_errors_are_one_line_without_the_password(tmp_path):
    verify = REPO / "tests" / "tools" / "verify.py"
    acks = tmp_path / "acks.jsonl"
    acks.write_text('{"token":"vote_lock:1:1"}\n')
    p = run([sys.executable, verify, "--acks", acks,
             "--database-url", "postgresql://u:s3cret@127.0.0.1:1/nodb"], timeout=60)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stderr.startswith("verify: database 127.0.0.1:1/nodb"), p.stderr
    assert "Traceback" not in p.stderr and "s3cret" not in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1, p.stderr

    p = run([sys.executable, verify, "--acks", tmp_path / "none.jsonl",
             "--database-url", "postgresql://u@127.0.0.1:1/nodb"], timeout=60)
    assert p.returncode == 2 and "No such file or directory" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr

    # A python without the project's packages (-S: no site-packages) says what to run.
    p = run([sys.executable, "-S", verify, "--acks", acks], timeout=60)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "needs the psycopg package" in p.stderr and "Traceback" not in p.stderr


def first_line_with(proc_err_path, needle):
    for ln in proc_err_path.read_text().splitlines():
        if needle in ln:
            return ln
    return None


def test_consumer_says_what_it_waits_for_and_what_sets_it(bins, env, topic, db, prefix,
                                                          tmp_path):
    """Without Kafka: "cannot reach Kafka" with the address and the flag, not
    "waiting for the topic to exist". A mistyped topic: its first line names
    the topics there are. Without PostgreSQL: the flag and the variable."""
    produce(env, topic, [vote(1, 1)])  # a topic that exists, to be listed
    cases = [
        (dict(extra=("--brokers", "127.0.0.1:1")), "cannot reach Kafka, waiting",
         ["brokers=127.0.0.1:1", "--brokers or KAFKA_BOOTSTRAP_SERVERS"]),
        (dict(topic=topic + "x"), "waiting for the topic to exist", [topic]),
        (dict(db_url="postgresql://tadak@127.0.0.1:1/none"), "waiting for PostgreSQL",
         ["--database-url or DATABASE_URL", "port 1"]),
    ]
    for kw, needle, wants in cases:
        args = consumer_args(bins, env, kw.get("topic", topic), db, prefix, idle=None,
                             extra=kw.get("extra", ()))
        if "db_url" in kw:
            args[args.index("--database-url") + 1] = kw["db_url"]
        log = tmp_path / "c.log"
        with open(log, "w") as fh:
            c = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=fh)
            try:
                line = wait_for(lambda: first_line_with(log, needle), 10, needle)
            finally:
                c.send_signal(signal.SIGTERM)
                rc = c.wait(30)
        assert rc == 0, log.read_text()[-2000:]
        for w in wants:
            assert w in line, (w, line)


# ---------------------------------------------------------------- topics on purpose

def topics_of(env):
    admin = AdminClient({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"]})
    return admin.list_topics(timeout=30).topics


def test_stack_broker_creates_no_topic_on_first_use(env):
    """A producer's first message to a name the broker does not know used to
    create a 6-partition topic of that name; the stack's own topics exist."""
    name = unique("t_typo")
    errors = []
    p = Producer({"bootstrap.servers": env["KAFKA_BOOTSTRAP_SERVERS"],
                  "allow.auto.create.topics": True, "message.timeout.ms": 3000})
    p.produce(name, b"{}", on_delivery=lambda err, msg: errors.append(err))
    p.flush(30)
    assert len(errors) == 1 and errors[0] is not None, errors
    have = topics_of(env)
    assert name not in have
    assert "votes" in have and "votes.dlq" in have


def test_send_to_a_missing_topic_fails_fast_naming_the_nearest(bins, env, topic):
    """`send --topic votse` answered {"sent":1,"acked":1} and created votse:
    now one line within 5 s names it and, first, the topic most like it."""
    # Two neighbouring letters swapped: two that differ (the name ends in
    # random hex, whose last two digits are the same one time in 16).
    i = next(i for i in range(len(topic) - 1, 0, -1) if topic[i] != topic[i - 1])
    typo = topic[:i - 1] + topic[i] + topic[i - 1] + topic[i + 1:]
    assert typo != topic
    for cmd in (["send", "--user", "1", "--candidate", "1"], ["load", "--users", "3"]):
        t0 = time.monotonic()
        p = run([bins.producer, *cmd, "--topic", typo, "-b", env["KAFKA_BOOTSTRAP_SERVERS"]],
                timeout=60)
        took = time.monotonic() - t0
        assert p.returncode == 1, (cmd, p.returncode, p.stdout, p.stderr[-2000:])
        assert took < 5 + 2, f"{cmd[0]} took {took:.1f} s"
        ours = [ln for ln in p.stderr.splitlines() if ln.startswith(f"tadak-producer {cmd[0]}:")]
        assert len(ours) == 1, p.stderr[-2000:]
        assert f"topic {typo} does not exist" in ours[0], ours[0]
        assert f"(existing: {topic}," in ours[0], ours[0]  # the nearest first
        assert f"tadak-consumer topics --topic {typo}" in ours[0], ours[0]
    assert typo not in topics_of(env)


def test_serve_refuses_a_missing_topic(bins, env, topic, tmp_path):
    typo = topic + "x"
    t0 = time.monotonic()
    p = run([bins.producer, "serve", "--listen", f"127.0.0.1:{free_port()}", "--topic", typo,
             "-b", env["KAFKA_BOOTSTRAP_SERVERS"]], timeout=60)
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    assert time.monotonic() - t0 < 10
    assert f"topic {typo} does not exist" in p.stderr and topic in p.stderr, p.stderr[-2000:]
    assert typo not in topics_of(env)


def test_topics_command_creates_both_topics_once(bins, env):
    name = unique("t_made")
    args = [bins.consumer, "topics", "--brokers", env["KAFKA_BOOTSTRAP_SERVERS"], "--topic", name,
            "--partitions", "3"]
    p = run(args, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.splitlines() == [f"created {name} partitions=3",
                                     f"created {name}.dlq partitions=3"], p.stdout
    have = topics_of(env)
    assert len(have[name].partitions) == 3 and len(have[name + ".dlq"].partitions) == 3
    p = run([*args[:-1], "12"], timeout=60)  # again: nothing changes
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.splitlines() == [f"exists  {name} partitions=3",
                                     f"exists  {name}.dlq partitions=3"], p.stdout
    assert len(topics_of(env)[name].partitions) == 3


def test_topics_command_without_kafka_says_what_to_set(bins):
    t0 = time.monotonic()
    p = run([bins.consumer, "topics", "--brokers", "127.0.0.1:1"], timeout=60)
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert time.monotonic() - t0 < 5 + 2
    assert p.stderr.strip().splitlines() == [
        "tadak-consumer topics: cannot reach Kafka at 127.0.0.1:1 within 5.0 s "
        "(--brokers or KAFKA_BOOTSTRAP_SERVERS)"], p.stderr


def test_serve_on_a_taken_port_says_so_once(bins, env, topic):
    """libmicrohttpd's own "Failed to bind to port 0" came first, then ours."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        p = run([bins.producer, "serve", "--listen", f"127.0.0.1:{port}", "--topic", topic,
                 "-b", env["KAFKA_BOOTSTRAP_SERVERS"]], timeout=60)
    assert p.returncode == 1, (p.returncode, p.stderr[-2000:])
    lines = [ln for ln in p.stderr.splitlines() if "bind" in ln or "listen" in ln]
    assert len(lines) == 1, lines
    assert lines[0].endswith('level=error msg="cannot start" error="cannot listen on '
                             f'127.0.0.1:{port}: Address already in use"'), lines


def readme_block(heading):
    """The first ```sh block under a README heading, as a user would paste it."""
    text = (REPO / "README.md").read_text()
    rest = text[text.index(heading):]
    start = rest.index("```sh\n") + len("```sh\n")
    return rest[start:rest.index("```", start)]


def test_readme_verify_block_runs_twice(bins, env):
    """The block recreates its database; the second run used to stop at the
    consumer, because Redis still held the first database's markers under the
    same --key-prefix ("give each database its own --key-prefix")."""
    block = readme_block("### Verifying a run").replace("build/", str(Path(bins.producer).parent) + "/")
    for n in (1, 2):
        p = subprocess.run(["bash", "-ec", block], env=dict(os.environ, **env), cwd=REPO,
                           capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, (n, p.stdout[-2000:], p.stderr[-3000:])
        result = json.loads(p.stdout.strip().splitlines()[-1])
        assert result["missing"] == 0 and result["duplicates"] == 0, (n, result)
        assert result["rows"] == result["tokens"] == 20000, (n, result)
