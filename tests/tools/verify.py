#!/usr/bin/env python3
"""tadak-verify: compare what was acknowledged with what was recorded.

Input: the acknowledged events as JSON lines (`tadak-producer ... --ack-log FILE`
writes one line per vote the broker acknowledged; any JSON line with "token", or
with "user_id" and "candidate_id", works, so a client can also list the tokens
of the 202 answers it received) and the database the consumers write to.

It reports, as one JSON line:
  acked       acknowledged events read (all --acks files together)
  tokens      distinct tokens among them (= the rows there must be)
  rows        rows in the votes table
  missing     acknowledged tokens with no row            -> always a failure
  duplicates  tokens with more than one row              -> always a failure
  mismatched  rows whose user_id/candidate_id disagree with their token -> failure
  extra       rows for tokens nobody acknowledged (e.g. a vote that got a 503 but
              still reached Kafka): reported; a failure only with --fail-on-extra
  bad_ack_lines  lines that are not an event (a torn last line after a crash):
              reported; a failure only with --strict

Exit status: 0 when nothing failed, 1 otherwise, 2 on bad usage.

  tests/tools/verify.py --acks acks.jsonl --database-url postgresql://…/tadak
  tests/tools/verify.py --acks server.acks --acks client-202.jsonl   # both must hold

As a library: verify(ack_paths, database_url, table="votes") -> the report dict.
"""
import argparse
import json
import os
import re
import sys
from urllib.parse import urlsplit

try:
    import psycopg
except ImportError:  # run with a python that lacks the project's packages
    print("verify: needs the psycopg package; run it with the project's interpreter, "
          "~/.cache/tadak/venv/bin/python (scripts/setup makes it)", file=sys.stderr)
    sys.exit(2)

TABLE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def token_of(ev):
    if "token" in ev:
        if not isinstance(ev["token"], str):
            raise TypeError("token is not a string")
        return ev["token"]
    return f"vote_lock:{int(ev['user_id'])}:{int(ev['candidate_id'])}"


def read_acks(paths):
    tokens, n, bad = set(), 0, 0
    for path in paths:
        f = sys.stdin if path == "-" else open(path, encoding="utf-8", errors="replace")
        with f:
            for line in f:
                line = line.strip()
                if not line:
                    continue
                try:
                    ev = json.loads(line)
                    if not isinstance(ev, dict):
                        raise TypeError("not an object")
                    tokens.add(token_of(ev))
                    n += 1
                except (ValueError, KeyError, TypeError):
                    bad += 1
    return tokens, n, bad


def verify(ack_paths, database_url, table="votes", show=5):
    """Read the acks and the table; return the report (see the module doc)."""
    if not TABLE_RE.match(table):
        raise ValueError(f"bad table name {table!r}")
    acked, n_acked, bad_lines = read_acks(ack_paths)
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(f"select token, user_id, candidate_id from {table}").fetchall()
    counts = {}
    mismatched = []
    for token, user_id, candidate_id in rows:
        counts[token] = counts.get(token, 0) + 1
        if token != f"vote_lock:{user_id}:{candidate_id}":
            mismatched.append(token)
    missing = sorted(acked - counts.keys())
    extra = sorted(counts.keys() - acked)
    duplicates = sorted(t for t, c in counts.items() if c > 1)
    return {
        "acked": n_acked, "tokens": len(acked), "rows": len(rows),
        "missing": len(missing), "duplicates": len(duplicates),
        "mismatched": len(mismatched), "extra": len(extra), "bad_ack_lines": bad_lines,
        "examples": {"missing": missing[:show], "duplicates": duplicates[:show],
                     "mismatched": mismatched[:show], "extra": extra[:show]},
    }


def failed(report, fail_on_extra=False, strict=False):
    return bool(report["missing"] or report["duplicates"] or report["mismatched"]
                or (fail_on_extra and report["extra"])
                or (strict and report["bad_ack_lines"]))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--acks", action="append", required=True,
                    help="JSON-lines file of acknowledged events ('-' for stdin); repeatable")
    ap.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                    help="PostgreSQL URL [env DATABASE_URL]")
    ap.add_argument("--table", default="votes")
    ap.add_argument("--fail-on-extra", action="store_true",
                    help="also fail when rows exist for tokens nobody acknowledged")
    ap.add_argument("--strict", action="store_true",
                    help="also fail on ack lines that are not events")
    ap.add_argument("--show", type=int, default=5, help="how many examples to list")
    args = ap.parse_args(argv)
    if not args.database_url:
        ap.error("--database-url or DATABASE_URL is required")
    if not TABLE_RE.match(args.table):
        ap.error(f"bad --table {args.table!r}")
    try:
        report = verify(args.acks, args.database_url, args.table, args.show)
    except OSError as e:
        print(f"verify: cannot read the acks: {e.filename}: {e.strerror}", file=sys.stderr)
        return 2
    except psycopg.Error as e:
        # One line naming the database (never its password) and PostgreSQL's reason.
        u = urlsplit(args.database_url)
        where = f"{u.hostname or 'localhost'}:{u.port or 5432}{u.path}"
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"verify: database {where} (--database-url or DATABASE_URL): {reason}",
              file=sys.stderr)
        return 2
    print(json.dumps(report))
    return 1 if failed(report, args.fail_on_extra, args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
