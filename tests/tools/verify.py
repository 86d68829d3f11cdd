#!/usr/bin/env python3
"""tadak-verify: compare what was acknowledged with what was recorded.

Input: the acknowledged events as JSON lines (`tadak-producer --ack-log FILE` writes
one line per vote the broker acknowledged; any JSON line with "token", or with
"user_id" and "candidate_id", works) and the database the consumers write to.

It reports, as one JSON line:
  acked       acknowledged events read
  tokens      distinct tokens among them (= the rows there must be)
  rows        rows in the votes table (optionally only for the acked users)
  missing     acknowledged tokens with no row            -> always a failure
  duplicates  tokens with more than one row              -> always a failure
  mismatched  rows whose user_id/candidate_id disagree with their token -> failure
  extra       rows for tokens nobody acknowledged (e.g. a vote that got a 503 but
              still reached Kafka): reported; a failure only with --fail-on-extra

Exit status: 0 when nothing failed, 1 otherwise, 2 on bad usage.

  tests/tools/verify.py --acks acks.jsonl --database-url postgresql://…/tadak
"""
import argparse
import json
import os
import sys

import psycopg


def token_of(ev):
    if "token" in ev:
        return ev["token"]
    return f"vote_lock:{int(ev['user_id'])}:{int(ev['candidate_id'])}"


def read_acks(paths):
    tokens, n, bad = set(), 0, 0
    for path in paths:
        f = sys.stdin if path == "-" else open(path, encoding="utf-8")
        with f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    tokens.add(token_of(json.loads(line)))
                    n += 1
                except (ValueError, KeyError, TypeError):
                    bad += 1
    return tokens, n, bad


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--acks", action="append", required=True,
                    help="JSON-lines file of acknowledged events ('-' for stdin); repeatable")
    ap.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                    help="PostgreSQL URL [env DATABASE_URL]")
    ap.add_argument("--table", default="votes")
    ap.add_argument("--fail-on-extra", action="store_true",
                    help="also fail when rows exist for tokens nobody acknowledged")
    ap.add_argument("--show", type=int, default=5, help="how many examples to list")
    args = ap.parse_args(argv)
    if not args.database_url:
        ap.error("--database-url or DATABASE_URL is required")

    acked, n_acked, bad_lines = read_acks(args.acks)
    with psycopg.connect(args.database_url) as conn:
        rows = conn.execute(
            f"select token, user_id, candidate_id from {args.table}").fetchall()
    counts = {}
    mismatched = []
    for token, user_id, candidate_id in rows:
        counts[token] = counts.get(token, 0) + 1
        if token != f"vote_lock:{user_id}:{candidate_id}":
            mismatched.append(token)
    missing = sorted(acked - counts.keys())
    extra = sorted(counts.keys() - acked)
    duplicates = sorted(t for t, c in counts.items() if c > 1)
    report = {
        "acked": n_acked, "tokens": len(acked), "rows": len(rows),
        "missing": len(missing), "duplicates": len(duplicates),
        "mismatched": len(mismatched), "extra": len(extra), "bad_ack_lines": bad_lines,
        "examples": {"missing": missing[:args.show], "duplicates": duplicates[:args.show],
                     "extra": extra[:args.show]},
    }
    print(json.dumps(report))
    failed = missing or duplicates or mismatched or (args.fail_on_extra and extra)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
