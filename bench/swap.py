"""swap.py - what bounds the 1M unique point: the swaps behind issue #20's note.

`make bench` sets the unique votes' rate beside pgbench's ceiling, measured
with PostgreSQL alone on the machine. On a 2-core machine that ceiling is
PostgreSQL using both cores; the pipeline shares them with the broker, Redis
and the consumer. This script tests that hypothesis by swapping what is
believed to bound the rate, each in the same run:

  shared   every process on every core, as `make bench` runs
  pinned   PostgreSQL (postmaster and every backend) on the last core, the
           broker, Redis, the consumer and pgbench's client on the others:
           the ceiling and the pipeline get the same CPU for PostgreSQL
  no-redis the consumer's Redis URL on a closed port: PostgreSQL decides alone
  random   the ceiling's statement with each row's token drawn at random
           instead of 500 consecutive user ids (its btree locality)

For each, the CPU each process used (from /proc, every 0.2 s) per event or
row, so the sum can be set against the cores there are.

  bench/run swap [--runs N]        (uses the stack of scripts/stack)

Results: bench/results/swap-<date>.md.
"""
import argparse
import datetime as dt
import os
import statistics
import sys
import threading
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench as B  # noqa: E402 - the benchmark's own stack and runners

RANDOM_TOKENS = """\\set r random(1, 1000000000000)
INSERT INTO scratch (token, user_id, candidate_id, event_id, kafka_partition, kafka_offset) \
SELECT 'vote_lock:' || u || ':' || (1 + g % 5), u, 1 + g % 5, gen_random_uuid(), :client_id, g \
FROM (SELECT g, (random() * 1000000000000)::bigint AS u FROM generate_series(1, 500) g) s \
ON CONFLICT (token) DO NOTHING RETURNING token;
"""
COMPONENTS = ("postgres", "redis-server", "tadak-consumer", "java", "pgbench")
NO_REDIS = ("--redis-url", "redis://127.0.0.1:1/12")


class CpuMeter:
    """CPU seconds per process name, over processes that start and end inside."""

    def __init__(self):
        self.seen, self.stop = {}, threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _sample(self):
        tick = os.sysconf("SC_CLK_TCK")
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                st = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            comm = st[st.index("(") + 1:st.rindex(")")]
            f = st[st.rindex(")") + 2:].split()
            self.seen[pid] = (comm, (int(f[11]) + int(f[12])) / tick)

    def totals(self):
        out = {}
        for comm, t in self.seen.values():
            out[comm] = out.get(comm, 0.0) + t
        return out

    def _loop(self):
        while not self.stop.wait(0.2):
            self._sample()

    def __enter__(self):
        self._sample()
        self.before = self.totals()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self._sample()
        after = self.totals()
        self.used = {c: after.get(c, 0.0) - self.before.get(c, 0.0) for c in COMPONENTS}


def pin(pinned):
    """PostgreSQL on the last core and the rest on the others, or all on all."""
    ncpu = os.cpu_count()
    every = set(range(ncpu))
    pg = {ncpu - 1} if pinned else every
    rest = every - pg if pinned else every
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        cpus = pg if comm == "postgres" else rest if comm in ("redis-server", "java") else None
        for tid in tids if cpus else ():
            try:
                os.sched_setaffinity(int(tid), cpus)
            except OSError:
                pass
    os.sched_setaffinity(0, rest)


def ceiling(stack, clients, seconds, script):
    with CpuMeter() as m:
        rate = B.pg_ceiling(stack, f"bench_swap_{uuid.uuid4().hex[:6]}", clients, seconds, script)
    return {"rate": rate, "us": {c: v / (rate * seconds) * 1e6 for c, v in m.used.items()}}


def consume(stack, topic, n, args):
    with CpuMeter() as m:
        r = B.run_consumers(stack, f"swap_{uuid.uuid4().hex[:8]}", topic, n, n, 1, args)
    return {"rate": r["events_per_s"], "us": {c: v / n * 1e6 for c, v in m.used.items()}}


def median_row(name, runs, against=None):
    rate = statistics.median(x["rate"] for x in runs)
    us = {c: statistics.median(x["us"][c] for x in runs) for c in COMPONENTS}
    ratio = f"{rate / against:.2f}" if against else ""
    spread = f"{min(x['rate'] for x in runs):,.0f} – {max(x['rate'] for x in runs):,.0f}"
    cells = " | ".join(f"{us[c]:.1f}" for c in COMPONENTS)
    return rate, f"| {name} | {rate:,.0f}/s | {spread} | {ratio} | {cells} | {sum(us.values()):.1f} |"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--pg-seconds", type=int, default=10)
    args = ap.parse_args()
    stack = B.Stack()
    topic = f"bench-swap-{uuid.uuid4().hex[:6]}"
    B.log(f"preloading {topic}: {args.events} voters")
    B.preload(stack, topic, args.events, 1)
    when = dt.datetime.now()
    lines = [f"# what bounds the unique point, {when:%Y-%m-%d %H:%M}", "",
             f"`bench/run swap`, {os.cpu_count()} cores, {args.events:,} unique votes, "
             f"{args.runs} runs a point (median, min – max). CPU: µs of each process per "
             "row (ceilings) or per event (pipeline), from /proc.", ""]
    try:
        for pinned in (False, True):
            pin(pinned)
            R = {k: [] for k in ("pg1", "pg2", "rnd1", "rnd2", "tadak", "noredis")}
            for r in range(args.runs):
                B.log(f"{'pinned' if pinned else 'shared'}: round {r + 1}/{args.runs}")
                R["pg1"].append(ceiling(stack, 1, args.pg_seconds, B.PGBENCH_SCRIPT))
                R["pg2"].append(ceiling(stack, 2, args.pg_seconds, B.PGBENCH_SCRIPT))
                R["rnd1"].append(ceiling(stack, 1, args.pg_seconds, RANDOM_TOKENS))
                R["rnd2"].append(ceiling(stack, 2, args.pg_seconds, RANDOM_TOKENS))
                R["tadak"].append(consume(stack, topic, args.events, ()))
                R["noredis"].append(consume(stack, topic, args.events, NO_REDIS))
                B.log(f"  tadak {R['tadak'][-1]['rate']:,.0f}/s, "
                      f"no Redis {R['noredis'][-1]['rate']:,.0f}/s")
            head = ("PostgreSQL on its own core, the rest on the other" if pinned
                    else "shared: every process on every core (as `make bench`)")
            lines += [f"## {head}", "",
                      "| measure | rate | spread | ÷ PG 2 clients | "
                      + " | ".join(COMPONENTS) + " | CPU µs total |",
                      "|---" * (5 + len(COMPONENTS)) + "|"]
            pg2, row = median_row("PG ceiling, 2 clients", R["pg2"])
            lines.append(median_row("PG ceiling, 1 client", R["pg1"], pg2)[1])
            lines.append(row)
            lines.append(median_row("PG ceiling, random tokens, 1 client", R["rnd1"], pg2)[1])
            lines.append(median_row("PG ceiling, random tokens, 2 clients", R["rnd2"], pg2)[1])
            lines.append(median_row(f"{args.events:,} unique, 1 consumer", R["tadak"], pg2)[1])
            lines.append(median_row(f"{args.events:,} unique, 1 consumer, no Redis", R["noredis"], pg2)[1])
            lines.append("")
    finally:
        pin(False)
        B.delete_topics(stack, [topic])
    out = B.RESULTS / f"swap-{when:%Y-%m-%d-%H%M}.md"
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    B.log(f"wrote {out}")


if __name__ == "__main__":
    main()
