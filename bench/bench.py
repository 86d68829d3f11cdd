"""bench.py - `make bench`: tadak's throughput, latency and memory against the
ceilings of the services it runs on, all measured in the same run.

Every figure is set beside a ceiling measured minutes apart on the same
machine, because the absolute numbers depend on the machine (and on whatever
else runs on it); the ratios are what the targets are about.

  ceilings   PostgreSQL  pgbench: the consumer's INSERT ... ON CONFLICT DO
                         NOTHING RETURNING token, 500 rows a statement, into a
                         scratch table shaped like votes; rows/s = tps x 500,
                         1 client (and 2 for the 2-consumer points)
             Redis       redis-benchmark -P 100: SET key value NX PX ttl GET,
                         the gate's lock command, on random keys
             Kafka       bench/kcount.c (C, librdkafka defaults but a 1 ms
                         fetch queue back-off, as the consumer's): read the
                         1M topic from the beginning, only count
             Kafka write tadak-producer load's own rate while preloading
  workloads  (a) 1M unique votes, (b) 1M events with 90% duplicates
             (100k voters x 10 copies), (c) 5M unique votes (growth check);
             each preloaded once per run into its own topic
  consumer   1 process, then 2 (same group), each run with a fresh group,
             database and Redis key prefix; events/s from the first message
             consumed to the last (polling --metrics every 50 ms), batch
             latency p50/p99 from the batch histogram, peak RSS (VmHWM),
             Redis bytes per token, dup_redis vs dup_db from the exit summary
  HTTP       wrk + bench/post.lua against tadak-producer serve; at 64
             connections also with the frontend edge on: identity (RS256
             and HS256 JWTs made here, one per voter) and a rate limit per
             address high enough to refuse nothing (its cost, not its 429s),
             each beside the plain server measured in the same rounds

Each point is measured --runs times (default 3): median and min-max.
Results: bench/results/<date>.md, latest.md, latest.json and latest.png.

Redis: everything the benchmark writes goes to database BENCH_REDIS_DB
(default 12), which it empties between runs; the services themselves are
left running.
"""
import argparse
import contextlib
import datetime as dt
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import psycopg
import redis as redis_lib

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BIN = Path(os.environ.get("BENCH_BIN_DIR", ROOT / "build"))
KCOUNT = ROOT / "build" / "bench" / "kcount"
REDIS_DB = int(os.environ.get("BENCH_REDIS_DB", "12"))
PG_BATCH = 500

SCRATCH_SQL = """
CREATE TABLE scratch (
    id bigserial PRIMARY KEY, token text NOT NULL UNIQUE, user_id bigint NOT NULL,
    candidate_id bigint NOT NULL, event_id uuid NOT NULL, kafka_partition int,
    kafka_offset bigint, created_at timestamptz NOT NULL DEFAULT now());
CREATE INDEX ON scratch (candidate_id);
"""
# The consumer's statement, rows made server-side instead of parsed from arrays.
PGBENCH_SCRIPT = """\\set r random(1, 1000000000000)
INSERT INTO scratch (token, user_id, candidate_id, event_id, kafka_partition, kafka_offset) \
SELECT 'vote_lock:' || (:r::bigint + g) || ':' || (1 + g % 5), :r::bigint + g, 1 + g % 5, \
gen_random_uuid(), :client_id, g FROM generate_series(1, 500) g \
ON CONFLICT (token) DO NOTHING RETURNING token;
"""


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(f"error: {msg}")
    sys.exit(1)


def summary(values):
    """median, min, max of a list of numbers (None when empty)."""
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "runs": len(values)}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mib(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


class Stack:
    """The services of scripts/stack, as the three URLs it exports."""

    def __init__(self):
        subprocess.run([str(ROOT / "scripts" / "stack"), "up"], check=True,
                       stdout=sys.stderr)
        out = subprocess.run([str(ROOT / "scripts" / "stack"), "env"], check=True,
                             capture_output=True, text=True).stdout
        env = dict(w.split("=", 1) for w in shlex.split(out) if "=" in w)
        self.brokers = env["KAFKA_BOOTSTRAP_SERVERS"]
        self.pg_url = env["DATABASE_URL"]
        r = urllib.parse.urlparse(env["REDIS_URL"])
        self.redis_host, self.redis_port = r.hostname, r.port or 6379
        self.redis_url = f"redis://{self.redis_host}:{self.redis_port}/{REDIS_DB}"
        self.redis = redis_lib.Redis(host=self.redis_host, port=self.redis_port, db=REDIS_DB)
        p = urllib.parse.urlparse(self.pg_url)
        self.pg = {"host": p.hostname, "port": str(p.port or 5432),
                   "user": p.username or "postgres"}

    def db_url(self, name):
        p = urllib.parse.urlparse(self.pg_url)
        return urllib.parse.urlunparse(p._replace(path="/" + name))

    def create_db(self, name, sql=None):
        with psycopg.connect(self.pg_url, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}"')
            c.execute(f'CREATE DATABASE "{name}"')
        if sql:
            with psycopg.connect(self.db_url(name), autocommit=True) as c:
                c.execute(sql)
        return self.db_url(name)

    def drop_db(self, name):
        with psycopg.connect(self.pg_url, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def used_memory(self):
        return int(self.redis.info("memory")["used_memory"])

    def flush_redis(self):
        self.redis.flushdb(asynchronous=False)


# ------------------------------------------------------------ ceilings

def pg_ceiling(stack, dbname, clients, seconds, script=PGBENCH_SCRIPT):
    url = stack.create_db(dbname, SCRATCH_SQL)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            ["pgbench", "-n", "-M", "extended", "-f", f.name, "-T", str(seconds),
             "-c", str(clients), "-j", str(clients), "-h", stack.pg["host"],
             "-p", stack.pg["port"], "-U", stack.pg["user"], dbname],
            check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(f.name)
        stack.drop_db(dbname)
    m = re.search(r"tps = ([\d.]+) \(without initial connection time\)", out)
    if not m:
        die(f"cannot read pgbench's tps:\n{out}")
    del url
    return float(m.group(1)) * PG_BATCH


def redis_ceiling(stack, requests):
    value = "P benchhost:12345:abcdef01 " + str(uuid.uuid4())
    out = subprocess.run(
        ["redis-benchmark", "-h", stack.redis_host, "-p", str(stack.redis_port),
         "--dbnum", str(REDIS_DB), "-P", "100", "-n", str(requests), "-r", str(requests),
         "-q", "SET", "ceiling:vote_lock:__rand_int__:3", value, "NX", "PX", "30000", "GET"],
        check=True, capture_output=True, text=True).stdout
    stack.flush_redis()
    m = re.findall(r"([\d.]+) requests per second", out)
    if not m:
        die(f"cannot read redis-benchmark's rate:\n{out}")
    return float(m[-1])


def kafka_ceiling(stack, topic, n):
    # librdkafka's defaults but for the fetch queue's back-off: its default (1 s
    # once the queue is full) made the ceiling swing between runs (406k-683k/s
    # on one day); the consumer backs off 1 ms.
    out = subprocess.run([str(KCOUNT), stack.brokers, topic, str(n),
                          "-X", "fetch.queue.backoff.ms=1"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)["per_s"]


# ------------------------------------------------------------ workloads

def delete_topics(stack, names):
    """The preloaded topics are gigabytes: do not leave them on the broker."""
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": stack.brokers})
    for name, fut in admin.delete_topics(names, operation_timeout=30).items():
        try:
            fut.result()
        except Exception as e:  # noqa: BLE001 - a topic never created is fine
            log(f"topic {name} not deleted: {e}")


# The poll_answer point: a type from examples/types.json, the same stream shape as
# the 1M unique votes (one event per key), its own topic and table.
TYPES = ROOT / "examples" / "types.json"
POLL = ["--types", str(TYPES), "--type", "poll_answer"]


def create_topic(stack, topic, type_args=()):
    """The stack's broker creates no topic on first use: the product's command does."""
    p = subprocess.run([str(BIN / "tadak-consumer"), "topics", "--brokers", stack.brokers,
                        "--topic", topic, *type_args], capture_output=True, text=True)
    if p.returncode != 0:
        die(f"cannot create topic {topic}: {p.stderr.strip()}")


def preload(stack, topic, users, dup, type_args=()):
    """Publish users x dup events; returns the producer's events/s."""
    create_topic(stack, topic, type_args)
    t = time.monotonic()
    p = subprocess.run(
        [str(BIN / "tadak-producer"), "load", "-b", stack.brokers, "-t", topic,
         "--users", str(users), "--dup-factor", str(dup), "--log-level", "warn", *type_args],
        capture_output=True, text=True)
    elapsed = time.monotonic() - t
    try:
        res = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        res = {}
    if p.returncode != 0 or res.get("acked") != users * dup:
        die(f"preloading {topic} failed: {p.stdout} {p.stderr[-2000:]}")
    return users * dup / elapsed


def scrape(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def metric(text, name):
    m = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def buckets(text, name):
    """{le: cumulative count} of a histogram."""
    out = {}
    for le, v in re.findall(rf'^{name}_bucket{{le="([^"]+)"}} (\S+)$', text, re.M):
        out[float("inf") if le == "+Inf" else float(le)] = float(v)
    return out


def quantile(bk, q):
    """histogram_quantile(): linear inside the bucket that holds the quantile."""
    les = sorted(bk)
    total = bk[les[-1]] if les else 0
    if total == 0:
        return None
    rank, prev_le, prev_c = q * total, 0.0, 0.0
    for le in les:
        if bk[le] >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * (rank - prev_c) / max(bk[le] - prev_c, 1e-9)
        prev_le, prev_c = le, bk[le]
    return prev_le


def run_consumers(stack, tag, topic, events, unique, procs, type_args=(), table="votes"):
    """One consumer run; returns its measures."""
    db = f"bench_{tag}"
    url = stack.create_db(db)
    # The default (empty) key prefix, as deployed: the bench's Redis DB is flushed
    # before and after each run, so runs cannot see each other's markers, and the
    # bytes per token are what a default deployment pays (a 27-byte run tag cost 32 B).
    prefix = ""
    group = f"bench-{tag}"
    stack.flush_redis()
    mem_before = stack.used_memory()
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=stack.brokers, REDIS_URL=stack.redis_url,
               DATABASE_URL=url)
    ports, ps = [], []
    logdir = Path(tempfile.mkdtemp(prefix="tadak-bench-"))
    for i in range(procs):
        port = free_port()
        ports.append(port)
        ps.append(subprocess.Popen(
            [str(BIN / "tadak-consumer"), "--topic", topic, "--group", group,
             "--from-beginning", "--key-prefix", prefix, "--metrics", f"127.0.0.1:{port}",
             "--log-level", "warn", *type_args],
            env=env, stdout=subprocess.PIPE, stderr=open(logdir / f"c{i}.log", "w"), text=True))
    deadline = time.monotonic() + 120 + events / 2000
    t0 = c0 = None
    texts = [""] * procs
    while True:
        for i, p in enumerate(ps):
            if p.poll() is not None:
                die(f"consumer exited early ({p.returncode}); log {logdir}/c{i}.log")
            try:
                texts[i] = scrape(ports[i])
            except OSError:
                pass
        now = time.monotonic()
        consumed = sum(metric(t, "tadak_consumer_consumed_total") for t in texts)
        if t0 is None and consumed > 0:
            t0, c0 = now, consumed
        if consumed >= events:
            t1 = now
            break
        if now > deadline:
            die(f"consumers did not drain {topic} in time ({consumed:.0f}/{events})")
        time.sleep(0.05)
    rss = [peak_rss_mib(p.pid) for p in ps]
    mem_after = stack.used_memory()
    bk = {}
    for t in texts:
        for le, v in buckets(t, "tadak_consumer_batch_seconds").items():
            bk[le] = bk.get(le, 0) + v
    totals = {}
    for p in ps:
        p.send_signal(signal.SIGTERM)
    for i, p in enumerate(ps):
        out, _ = p.communicate(timeout=60)
        try:
            s = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            die(f"no exit summary from consumer {i}; log {logdir}/c{i}.log")
        for k, v in s.items():
            totals[k] = totals.get(k, 0) + v
    with psycopg.connect(url) as c:
        rows = c.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
    stack.drop_db(db)
    stack.flush_redis()
    shutil.rmtree(logdir, ignore_errors=True)
    if rows != unique:
        die(f"{tag}: {rows} rows for {unique} distinct votes")
    dups = totals.get("dup_redis", 0) + totals.get("dup_db", 0)
    return {
        "events_per_s": (events - c0) / (t1 - t0) if t1 > t0 else None,
        "rows_per_s": unique / events * (events - c0) / (t1 - t0) if t1 > t0 else None,
        "seconds": t1 - t0,
        "batch_p50_ms": (quantile(bk, 0.5) or 0) * 1000,
        "batch_p99_ms": (quantile(bk, 0.99) or 0) * 1000,
        "rss_mib": max(r for r in rss if r is not None),
        "redis_bytes_per_token": (mem_after - mem_before) / unique,
        "dup_redis": totals.get("dup_redis", 0),
        "dup_db": totals.get("dup_db", 0),
        "dup_redis_share": totals.get("dup_redis", 0) / dups if dups else None,
        "rows": rows,
    }


# ------------------------------------------------------------ HTTP

def bench_e2e(stack, run_id, rate, seconds):
    """End to end at a steady rate: from an event's creation (its "ts", just
    before the broker acknowledges it and the 202 goes out) to its row
    (created_at, the INSERT's transaction start), through one live consumer.
    Returns {"rate", "p50_ms", "p99_ms", "n"}."""
    tag = f"{run_id}_e2e"
    topic, db = f"bench-{run_id}-e2e", f"bench_{tag}"
    url = stack.create_db(db)
    users = int(rate * seconds)
    acks = Path(tempfile.mkdtemp(prefix="tadak-bench-")) / "acks.jsonl"
    # The topic exists and holds one vote before the consumer starts. Its
    # voter is outside the load's 1..users: `load --users 1` was user 1, and
    # with seed 1 and seed 7 alike user 1 votes for candidate 4, so the
    # load's own vote was a duplicate of it and users + 1 rows never came.
    create_topic(stack, topic)
    subprocess.run([str(BIN / "tadak-producer"), "send", "-b", stack.brokers, "-t", topic,
                    "--user", str(users + 1), "--candidate", "1", "--log-level", "warn"],
                   check=True, capture_output=True)
    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=stack.brokers, REDIS_URL=stack.redis_url,
               DATABASE_URL=url)
    c = subprocess.Popen([str(BIN / "tadak-consumer"), "--topic", topic, "--group",
                          f"bench-{tag}", "--key-prefix", f"{tag}:", "--log-level", "warn"],
                         env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while _rows(url) < 1:  # joined and consuming: the preloaded vote is in
            if time.monotonic() > deadline or c.poll() is not None:
                die("e2e: the consumer did not start")
            time.sleep(0.1)
        subprocess.run([str(BIN / "tadak-producer"), "load", "-b", stack.brokers, "-t", topic,
                        "--users", str(users), "--dup-factor", "1", "--rate", str(int(rate)),
                        "--seed", "7", "--ack-log", str(acks), "--log-level", "warn"],
                       check=True, capture_output=True)
        deadline = time.monotonic() + 120
        while _rows(url) < users + 1:
            if time.monotonic() > deadline:
                die("e2e: the consumer did not record every vote in time")
            time.sleep(0.2)
    finally:
        c.terminate()
        c.wait(60)
    ts = {}
    for line in acks.read_text().splitlines():
        ev = json.loads(line)
        ts[ev["token"]] = ev["ts"]
    with psycopg.connect(url) as conn:
        rows = conn.execute("select token, (extract(epoch from created_at) * 1000)::bigint "
                            "from votes").fetchall()
    lat = sorted(created - ts[tok] for tok, created in rows if tok in ts)
    stack.drop_db(db)
    delete_topics(stack, [topic])
    q = lambda f: lat[min(len(lat) - 1, int(f * len(lat)))]  # noqa: E731
    return {"rate": rate, "p50_ms": q(0.50), "p99_ms": q(0.99), "n": len(lat)}


def _rows(url):
    with psycopg.connect(url) as conn:
        try:
            return conn.execute("select count(*) from votes").fetchone()[0]
        except psycopg.errors.UndefinedTable:
            return 0


def wait_http(url, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.1)
    die(f"{url} did not answer")


def parse_duration_ms(s):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", s)
    if not m:
        return None
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000, "m": 60000}[m.group(2)]


def run_wrk(port, conns, seconds, tokens=None):
    env = dict(os.environ, TOKENS=str(tokens)) if tokens else None
    out = subprocess.run(
        ["wrk", f"-t{min(2, conns)}", f"-c{conns}", f"-d{seconds}s", "--latency", "-s",
         str(ROOT / "bench" / "post.lua"), f"http://127.0.0.1:{port}/votes"],
        check=True, capture_output=True, text=True, env=env).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    bad = re.search(r"non-202 answers: (\d+)", out)
    # Requests not answered within wrk's 2 s: a stalled connection shows here.
    late = re.search(r"Socket errors:.*timeout (\d+)", out)
    if not (rps and p50 and p99 and bad):
        die(f"cannot read wrk's output:\n{out}")
    return {"requests_per_s": float(rps.group(1)), "p50_ms": parse_duration_ms(p50.group(1)),
            "p99_ms": parse_duration_ms(p99.group(1)), "non_202": int(bad.group(1)),
            "timeouts": int(late.group(1)) if late else 0}


@contextlib.contextmanager
def serve(stack, topic, *extra, env=None, tokens=None):
    """`tadak-producer serve` on a free port, warm (the topic exists, the
    broker connection is up); yields (port, process); SIGTERM at the end."""
    create_topic(stack, topic)
    port = free_port()
    p = subprocess.Popen(
        [str(BIN / "tadak-producer"), "serve", "--listen", f"127.0.0.1:{port}", "-b",
         stack.brokers, "-t", topic, "--log-level", "warn",
         "--max-connections-per-ip", "1000", *extra],  # wrk's connections share 127.0.0.1
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=dict(os.environ, **(env or {})))
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        run_wrk(port, 4, 2, tokens)
        yield port, p
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


def bench_http(stack, run_id, levels, runs, seconds):
    with serve(stack, f"bench-{run_id}-http") as (port, p):
        res = {}
        for c in levels:
            pts = []
            for r in range(runs):
                log(f"http: {c} connections, run {r + 1}/{runs}")
                pts.append(run_wrk(port, c, seconds))
            res[c] = pts
        rss = peak_rss_mib(p.pid)
    return res, rss


EDGE_CONNS = 64
EDGE_SECRET = "bench-hs256-secret-" + "x" * 32


def edge_configs(tmp):
    """(name, serve arguments, extra environment, token file) of each edge point."""
    import jwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = tmp / "rsa.pem"
    pem.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    exp = int(time.time()) + 86400
    files = {}
    for alg, k in (("RS256", key), ("HS256", EDGE_SECRET)):
        files[alg] = tmp / f"{alg}.tokens"
        files[alg].write_text("".join(jwt.encode({"sub": str(u), "exp": exp}, k, algorithm=alg)
                                      + "\n" for u in range(1, 1001)))
    return [("plain", [], None, None),
            ("identity RS256", ["--jwt-key", str(pem)], None, files["RS256"]),
            ("identity HS256", ["--jwt-secret-env", "BENCH_JWT_SECRET"],
             {"BENCH_JWT_SECRET": EDGE_SECRET}, files["HS256"]),
            ("rate limit", ["--rate-limit", "100000000/s", "--rate-burst", "100000000"], None,
             None)]


def bench_edge(stack, run_id, runs, seconds):
    """POST /votes at 64 connections: plain, then with each part of the edge on."""
    res = {}
    with tempfile.TemporaryDirectory() as d:
        configs = edge_configs(Path(d))
        for r in range(runs):
            for name, extra, env, tokens in configs:
                log(f"http edge: {name}, run {r + 1}/{runs}")
                with serve(stack, f"bench-{run_id}-edge", *extra, env=env,
                           tokens=tokens) as (port, _):
                    pt = run_wrk(port, EDGE_CONNS, seconds, tokens)
                if pt["non_202"]:
                    die(f"http edge {name}: {pt['non_202']} answers were not 202")
                res.setdefault(name, []).append(pt)
    return res


def bench_reads(stack, run_id, rows, seconds):
    """One voter's POST /votes latency, alone and beside 8 clients looping
    GET /tallies on a table of `rows` rows (1,000 candidates). Returns
    {"alone_p99_ms", "beside_p99_ms", "alone_p50_ms", "beside_p50_ms",
    "tallies_per_s", "tallies_query_ms"}."""
    db = f"bench_{run_id}_reads"
    url = stack.create_db(db, (ROOT / "sql" / "schema.sql").read_text())
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("insert into votes (token, user_id, candidate_id, event_id) "
                     "select 'vote_lock:' || g || ':' || (g %% 1000 + 1), g, g %% 1000 + 1, "
                     "gen_random_uuid() from generate_series(1, %s) g", (rows,))
        conn.execute("vacuum analyze votes")
        t0 = time.monotonic()
        conn.execute("select candidate_id, count(*) from votes group by 1").fetchall()
        query_ms = (time.monotonic() - t0) * 1000
    try:
        with serve(stack, f"bench-{run_id}-reads", "--database-url", url) as (port, _):
            alone = run_wrk(port, 1, seconds)
            bg = subprocess.Popen(["wrk", "-t1", "-c8", f"-d{seconds + 4}s",
                                   f"http://127.0.0.1:{port}/tallies"],
                                  stdout=subprocess.PIPE, text=True)
            wait_http(f"http://127.0.0.1:{port}/tallies")  # the loopers' first answer is cached
            beside = run_wrk(port, 1, seconds)
            out = bg.communicate(timeout=seconds + 60)[0]
    finally:
        stack.drop_db(db)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return {"alone_p50_ms": alone["p50_ms"], "alone_p99_ms": alone["p99_ms"],
            "beside_p50_ms": beside["p50_ms"], "beside_p99_ms": beside["p99_ms"],
            "tallies_per_s": float(rps.group(1)) if rps else None, "tallies_query_ms": query_ms}


# ------------------------------------------------------------ report

def fmt(v, unit=""):
    if v is None:
        return "-"
    if abs(v) >= 1000:
        s = f"{v:,.0f}"
    elif abs(v) >= 10:
        s = f"{v:.1f}"
    else:
        s = f"{v:.2f}"
    return s + unit


def cell(s, unit=""):
    if s is None:
        return "-", "-"
    spread = f"{fmt(s['min'], unit)} – {fmt(s['max'], unit)}" if s["runs"] > 1 else "1 run"
    return fmt(s["median"], unit), spread


def plot(points, png):
    """Bars of throughput (median, min-max whiskers), ceilings in grey."""
    if not shutil.which("gnuplot"):
        log("gnuplot not found: no plot")
        return
    with tempfile.TemporaryDirectory() as d:
        data = Path(d) / "data"
        with open(data, "w") as f:
            for i, (label, s, ceiling) in enumerate(points):
                f.write(f'{i} "{label}" {s["median"]} {s["min"]} {s["max"]} '
                        f'{0xAAAAAA if ceiling else 0x3366CC}\n')
        script = f"""
set terminal pngcairo size 1200,650 font ",10"
set output "{png}"
set title "tadak throughput against the ceilings of its services (median, whiskers min-max)"
set ylabel "events / rows / requests per second"
set logscale y
set format y "%.0s%c"
set yrange [1000:*]
set grid ytics
set style fill solid 0.8 border -1
set boxwidth 0.7
set xtics rotate by -30 left
set key off
set bmargin 9
plot "{data}" using 1:3:6:xtic(2) with boxes lc rgb variable, \\
     "" using 1:3:4:5 with yerrorbars lc rgb "black" pt 0, \\
     "" using 1:3:(sprintf("%.0fk", $3/1000)) with labels offset 0,1 font ",9"
"""
        subprocess.run(["gnuplot"], input=script, text=True, check=True)


def report(args, run_id, when, R):
    C, U, D, G, H = R["ceil"], R["u1m"], R["d90"], R["u5m"], R["http"]
    PA = R.get("pa1m", {}).get(1, [])
    pg1, pg2 = summary(C["pg1"]), summary(C["pg2"])
    redis_c, kafka_c, prod_c = summary(C["redis"]), summary(C["kafka"]), summary(C["produce"])

    def s(points, key):
        vals = [p[key] for p in points if p.get(key) is not None]
        return summary(vals)

    u1, u2 = U.get(1, []), U.get(2, [])
    d1, d2 = D.get(1, []), D.get(2, [])
    g1 = G.get(1, [])
    best_c = max(H, key=lambda c: statistics.median(p["requests_per_s"] for p in H[c])) \
        if H else None

    rows = []  # measure, summary, unit, ceiling summary, ceiling name

    def row(name, sm, unit="", ceil=None, ceil_name=""):
        rows.append((name, sm, unit, ceil, ceil_name))

    row("Kafka ceiling: raw consume (bench/kcount, C)", kafka_c, "/s")
    row("Kafka ceiling: produce (tadak-producer load)", prod_c, "/s")
    row("Redis ceiling: SET NX PX GET, pipelined ×100", redis_c, "/s")
    row("PostgreSQL ceiling: 500-row INSERT … ON CONFLICT, 1 client", pg1, " rows/s")
    row("PostgreSQL ceiling: same, 2 clients", pg2, " rows/s")
    row("1M unique, 1 consumer: events/s", s(u1, "events_per_s"), "/s", pg1, "PG 1 client")
    row("1M unique, 2 consumers: events/s", s(u2, "events_per_s"), "/s", pg2, "PG 2 clients")
    row("1M unique, 1 consumer vs raw consume", s(u1, "events_per_s"), "/s", kafka_c, "Kafka")
    row("1M unique, 1 consumer: batch p50", s(u1, "batch_p50_ms"), " ms")
    row("1M unique, 1 consumer: batch p99", s(u1, "batch_p99_ms"), " ms")
    row("1M unique, 1 consumer: peak RSS", s(u1, "rss_mib"), " MiB")
    row("1M unique: Redis bytes per token", s(u1, "redis_bytes_per_token"), " B")
    row("1M unique poll answers (examples/types.json), 1 consumer: events/s",
        s(PA, "events_per_s"), "/s", s(u1, "events_per_s"), "votes, same run")
    row("1M unique poll answers, 1 consumer: events/s vs PostgreSQL", s(PA, "events_per_s"),
        "/s", pg1, "PG 1 client")
    row("1M unique poll answers, 1 consumer: peak RSS", s(PA, "rss_mib"), " MiB")
    row("90% dup, 1 consumer: events/s", s(d1, "events_per_s"), "/s", kafka_c, "Kafka")
    row("90% dup, 2 consumers: events/s", s(d2, "events_per_s"), "/s", kafka_c, "Kafka")
    row("90% dup, 1 consumer: rows/s", s(d1, "rows_per_s"), " rows/s", pg1, "PG 1 client")
    row("90% dup, 1 consumer: batch p50", s(d1, "batch_p50_ms"), " ms")
    row("90% dup, 1 consumer: batch p99", s(d1, "batch_p99_ms"), " ms")
    row("90% dup: share of duplicates stopped before PostgreSQL", s(d1 + d2, "dup_redis_share"))
    row("90% dup, 1 consumer: peak RSS", s(d1, "rss_mib"), " MiB")
    row("5M unique, 1 consumer: events/s", s(g1, "events_per_s"), "/s", pg1, "PG 1 client")
    row("5M unique, 1 consumer: peak RSS", s(g1, "rss_mib"), " MiB")
    row("5M unique: Redis bytes per token", s(g1, "redis_bytes_per_token"), " B")
    for c in sorted(H):
        row(f"HTTP POST /votes, {c} connections: requests/s",
            summary([p["requests_per_s"] for p in H[c]]), "/s", prod_c, "Kafka produce")
        row(f"HTTP, {c} connections: latency p50", summary([p["p50_ms"] for p in H[c]]), " ms")
        row(f"HTTP, {c} connections: latency p99", summary([p["p99_ms"] for p in H[c]]), " ms")
        row(f"HTTP, {c} connections: requests unanswered after 2 s (wrk timeouts)",
            summary([p.get("timeouts", 0) for p in H[c]]))
    row("HTTP: producer peak RSS", summary([R["http_rss"]]) if R["http_rss"] else None, " MiB")
    EG = R.get("edge") or {}
    plain = summary([p["requests_per_s"] for p in EG.get("plain", [])])
    plain_p99 = summary([p["p99_ms"] for p in EG.get("plain", [])])
    for name in [n for n in EG if n != "plain"]:
        row(f"HTTP POST /votes, {EDGE_CONNS} connections, {name}: requests/s",
            summary([p["requests_per_s"] for p in EG[name]]), "/s", plain, "edge off")
        row(f"HTTP, {EDGE_CONNS} connections, {name}: latency p99",
            summary([p["p99_ms"] for p in EG[name]]), " ms", plain_p99, "edge off")
    RD = R.get("reads") or []
    if RD:
        row("POST /votes p99, 1 voter alone (1M-row table)",
            summary([x["alone_p99_ms"] for x in RD]), " ms")
        row("POST /votes p99, 1 voter beside 8 clients looping GET /tallies",
            summary([x["beside_p99_ms"] for x in RD]), " ms",
            summary([x["alone_p99_ms"] for x in RD]), "alone")
        row("GET /tallies answered (8 loopers, from the 1 s cache)",
            summary([x["tallies_per_s"] for x in RD if x["tallies_per_s"]]), "/s")
        row("the tallies query itself on 1M rows (GROUP BY)",
            summary([x["tallies_query_ms"] for x in RD]), " ms")
    E = R.get("e2e") or []
    if E:
        row(f"end to end at {fmt(E[0]['rate'])} votes/s: p50", summary([e["p50_ms"] for e in E]),
            " ms")
        row(f"end to end at {fmt(E[0]['rate'])} votes/s: p99", summary([e["p99_ms"] for e in E]),
            " ms")

    med = lambda sm: sm["median"] if sm else None  # noqa: E731
    growth = (med(s(g1, "events_per_s")) / med(s(u1, "events_per_s"))
              if g1 and u1 else None)
    latest = {
        "date": when,
        "runs": args.runs,
        "big_runs": args.big_runs,
        "machine": f"{os.cpu_count()} cores, broker + Redis + PostgreSQL co-located",
        "consumer_unique_events_per_s": med(s(u1, "events_per_s")),
        "consumer_unique_events_per_s_2procs": med(s(u2, "events_per_s")),
        "pg_ceiling_rows_per_s": med(pg1),
        "pg_ceiling_rows_per_s_2clients": med(pg2),
        "redis_ceiling_ops_per_s": med(redis_c),
        "kafka_consume_ceiling_per_s": med(kafka_c),
        "kafka_produce_ceiling_per_s": med(prod_c),
        "unique_vs_pg_ceiling": (med(s(u1, "events_per_s")) / med(pg1)) if u1 else None,
        "poll_answer_events_per_s": med(s(PA, "events_per_s")),
        "poll_answer_vs_vote": (med(s(PA, "events_per_s")) / med(s(u1, "events_per_s")))
        if PA and u1 else None,
        "dup_stream_events_per_s": med(s(d1, "events_per_s")),
        "dup_stream_events_per_s_2procs": med(s(d2, "events_per_s")),
        "dup_stopped_in_redis_share": med(s(d1 + d2, "dup_redis_share")),
        "consumer_rss_mib": max([p["rss_mib"] for p in u1 + u2 + d1 + d2 + g1 + PA] or [0]),
        "producer_rss_mib": R["http_rss"],
        "growth_ratio_5m_vs_1m": growth,
        "redis_bytes_per_token": med(s(u1, "redis_bytes_per_token")),
        "batch_p50_ms": med(s(u1, "batch_p50_ms")),
        "batch_p99_ms": med(s(u1, "batch_p99_ms")),
        "http_requests_per_s": med(summary([p["requests_per_s"] for p in H[best_c]]))
        if best_c else None,
        "http_best_connections": best_c,
        "http_edge_requests_per_s": {n: med(summary([p["requests_per_s"] for p in pts]))
                                     for n, pts in EG.items()},
        "http_edge_p99_ms": {n: med(summary([p["p99_ms"] for p in pts]))
                             for n, pts in EG.items()},
        "post_p99_ms_alone": med(summary([x["alone_p99_ms"] for x in RD])) if RD else None,
        "post_p99_ms_beside_tallies": med(summary([x["beside_p99_ms"] for x in RD]))
        if RD else None,
        "e2e_rate_per_s": E[0]["rate"] if E else None,
        "e2e_p50_ms": med(summary([e["p50_ms"] for e in E])) if E else None,
        "e2e_p99_ms": med(summary([e["p99_ms"] for e in E])) if E else None,
        "raw": R,
    }

    lines = [f"# tadak benchmark, {when}", "",
             f"`make bench` on {latest['machine']}; {args.runs} runs a point "
             f"({args.big_runs} for the 5M point); value = median, spread = min – max.", "",
             "| measure | value | spread | ceiling | ratio |", "|---|---|---|---|---|"]
    for name, sm, unit, ceil, ceil_name in rows:
        v, spread = cell(sm, unit if "share" not in name else "")
        if "share" in name and sm:
            v = f"{sm['median'] * 100:.2f} %"
            spread = f"{sm['min'] * 100:.2f} – {sm['max'] * 100:.2f} %"
        c = f"{fmt(ceil['median'], unit)} ({ceil_name})" if ceil else ""
        ratio = f"{sm['median'] / ceil['median']:.2f}" if ceil and sm else ""
        lines.append(f"| {name} | {v} | {spread} | {c} | {ratio} |")
    lines += ["", f"Growth: 5M unique events/s ÷ 1M unique events/s = "
              f"{growth:.2f}" if growth else "", "", "![throughput](latest.png)", ""]
    md = "\n".join(lines)

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = when.replace(":", "").replace(" ", "-")
    (RESULTS / f"{stamp}.md").write_text(md)
    (RESULTS / "latest.md").write_text(md)
    (RESULTS / "latest.json").write_text(json.dumps(latest, indent=2, default=str) + "\n")
    points = [("Kafka consume ceiling", kafka_c, True), ("Redis SET NX ceiling", redis_c, True),
              ("PG ceiling 1 client", pg1, True), ("PG ceiling 2 clients", pg2, True)]
    for label, pts in [("1M unique, 1 consumer", u1), ("1M unique, 2 consumers", u2),
                       ("90% dup, 1 consumer", d1), ("90% dup, 2 consumers", d2),
                       ("5M unique, 1 consumer", g1), ("1M poll answers, 1 consumer", PA)]:
        sm = s(pts, "events_per_s")
        if sm:
            points.append((label, sm, False))
    if best_c:
        points.append((f"HTTP {best_c} conns", summary(
            [p["requests_per_s"] for p in H[best_c]]), False))
    points = [p for p in points if p[1]]
    plot(points, RESULTS / "latest.png")
    print(md)


# ------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description="tadak benchmark (make bench)")
    ap.add_argument("--runs", type=int, default=3, help="runs per point")
    ap.add_argument("--big-runs", type=int, default=3, help="runs of the 5M point")
    ap.add_argument("--quick", action="store_true", help="100k/500k events: a smoke run")
    ap.add_argument("--skip-http", action="store_true")
    ap.add_argument("--skip-big", action="store_true", help="no 5M point")
    ap.add_argument("--http-seconds", type=int, default=10)
    ap.add_argument("--pg-seconds", type=int, default=10)
    ap.add_argument("--e2e-seconds", type=int, default=20)
    ap.add_argument("--e2e-only", action="store_true", help="only the end-to-end point")
    ap.add_argument("--reads-only", action="store_true",
                    help="only the point of votes beside status reads")
    ap.add_argument("--reads-seconds", type=int, default=10)
    ap.add_argument("--points", default="u1m,d90,pa1m",
                    help="consumer points to run (u1m, d90, pa1m; u5m unless --skip-big)")
    ap.add_argument("--edge-only", action="store_true",
                    help="only the HTTP points with the frontend edge on")
    args = ap.parse_args()
    for tool in ("pgbench", "redis-benchmark", "wrk"):
        if not shutil.which(tool):
            die(f"{tool} not found (scripts/setup installs it)")
    for b in (BIN / "tadak-consumer", BIN / "tadak-producer", KCOUNT):
        if not b.exists():
            die(f"{b} missing: run `make bench`")

    if args.reads_only:
        print(json.dumps(bench_reads(Stack(), dt.datetime.now().strftime("%H%M%S") +
                                     uuid.uuid4().hex[:4], 1_000_000, args.reads_seconds)))
        return
    if args.edge_only:
        rid = dt.datetime.now().strftime("%H%M%S") + uuid.uuid4().hex[:4]
        print(json.dumps(bench_edge(Stack(), rid, args.runs, args.http_seconds)))
        delete_topics(Stack(), [f"bench-{rid}-edge"])
        return
    if args.e2e_only:
        e = bench_e2e(Stack(), dt.datetime.now().strftime("%H%M%S") + uuid.uuid4().hex[:4],
                      5000, args.e2e_seconds)
        print(json.dumps(e))
        return

    scale = 10 if args.quick else 1
    n1, n5 = 1_000_000 // scale, 5_000_000 // scale
    stack = Stack()
    run_id = dt.datetime.now().strftime("%Y%m%d%H%M%S") + uuid.uuid4().hex[:4]
    when = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    R = {"ceil": {"pg1": [], "pg2": [], "redis": [], "kafka": [], "produce": []},
         "u1m": {}, "d90": {}, "u5m": {}, "pa1m": {}, "http": {}, "http_rss": None}
    points = args.points.split(",")
    topics = {"u1m": (f"bench-{run_id}-u1m", n1, 1, n1),
              "d90": (f"bench-{run_id}-d90", n1 // 10, 10, n1 // 10),
              "pa1m": (f"bench-{run_id}-pa1m", n1, 1, n1)}
    topics = {k: v for k, v in topics.items() if k in points or k == "u1m"}
    if not args.skip_big:
        topics["u5m"] = (f"bench-{run_id}-u5m", n5, 1, n5)
    for key, (topic, users, dup, _) in topics.items():
        log(f"preloading {topic}: {users} voters x {dup}")
        rate = preload(stack, topic, users, dup, POLL if key == "pa1m" else ())
        if key != "pa1m":
            R["ceil"]["produce"].append(rate)

    for r in range(args.runs):
        log(f"round {r + 1}/{args.runs}: ceilings")
        R["ceil"]["kafka"].append(kafka_ceiling(stack, topics["u1m"][0], n1))
        R["ceil"]["redis"].append(redis_ceiling(stack, n1))
        R["ceil"]["pg1"].append(pg_ceiling(stack, f"bench_{run_id}_ceil", 1, args.pg_seconds))
        R["ceil"]["pg2"].append(pg_ceiling(stack, f"bench_{run_id}_ceil", 2, args.pg_seconds))
        for key in [k for k in ("u1m", "d90") if k in points]:
            topic, users, dup, unique = topics[key]
            for procs in (1, 2):
                log(f"round {r + 1}/{args.runs}: {key}, {procs} consumer(s)")
                m = run_consumers(stack, f"{run_id}_{key}_{procs}_{r}", topic, users * dup,
                                  unique, procs)
                log(f"  {fmt(m['events_per_s'])} events/s, rss {fmt(m['rss_mib'])} MiB, "
                    f"p99 {fmt(m['batch_p99_ms'])} ms, dup_redis {m['dup_redis']} "
                    f"dup_db {m['dup_db']}")
                R[key].setdefault(procs, []).append(m)
        if "pa1m" in points:
            # Right after the vote's 1M unique point, on the same ceilings: the ratio of
            # the two rates is the cost of a type from a file.
            topic, users, dup, unique = topics["pa1m"]
            log(f"round {r + 1}/{args.runs}: pa1m (poll_answer), 1 consumer")
            m = run_consumers(stack, f"{run_id}_pa1m_1_{r}", topic, users * dup, unique, 1,
                              POLL, "poll_answers")
            log(f"  {fmt(m['events_per_s'])} events/s, rss {fmt(m['rss_mib'])} MiB")
            R["pa1m"].setdefault(1, []).append(m)
        if not args.skip_big and r < args.big_runs:
            topic, users, dup, unique = topics["u5m"]
            log(f"round {r + 1}/{args.runs}: u5m, 1 consumer")
            m = run_consumers(stack, f"{run_id}_u5m_1_{r}", topic, users * dup, unique, 1)
            log(f"  {fmt(m['events_per_s'])} events/s, rss {fmt(m['rss_mib'])} MiB")
            R["u5m"].setdefault(1, []).append(m)

    if not args.skip_http:
        R["http"], R["http_rss"] = bench_http(stack, run_id, (16, 64, 256), args.runs,
                                              args.http_seconds)
        R["edge"] = bench_edge(stack, run_id, args.runs, args.http_seconds)
        R["reads"] = []
        for r in range(args.runs):
            log(f"round {r + 1}/{args.runs}: votes beside status reads (1M rows)")
            R["reads"].append(bench_reads(stack, f"{run_id}{r}", n1, args.reads_seconds))
            log(f"  POST p99 {R['reads'][-1]['alone_p99_ms']} ms alone, "
                f"{R['reads'][-1]['beside_p99_ms']} ms beside /tallies")
    # End to end at half the HTTP rate the stack sustains (5000/s without the HTTP point).
    best = max((statistics.median(p["requests_per_s"] for p in pts) for pts in R["http"].values()),
               default=10000)
    R["e2e"] = []
    for r in range(args.runs):
        log(f"round {r + 1}/{args.runs}: end to end at {best / 2:.0f} votes/s")
        R["e2e"].append(bench_e2e(stack, f"{run_id}{r}", best / 2, args.e2e_seconds))
        log(f"  p50 {R['e2e'][-1]['p50_ms']} ms, p99 {R['e2e'][-1]['p99_ms']} ms")
    delete_topics(stack, [t[0] for t in topics.values()] +
                  [f"bench-{run_id}-http", f"bench-{run_id}-edge"])
    report(args, run_id, when, R)


if __name__ == "__main__":
    main()
