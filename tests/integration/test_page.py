"""The vote page (GET /) in headless Chromium, against the real pipeline.

A producer and a consumer run on their own topic, database and Redis prefix;
tests/e2e/page.mjs triple-clicks candidate 2's button: three click events,
three real POST /votes, three 202s, three events consumed -- and the page's
tally for candidate 2 rises by exactly one and stays there.

The page's cards are the ballot (--candidates) when one is set, else the
candidates GET /tallies reports: tests/e2e/cards.mjs reads which it shows.
"""
import json
import os
import signal
import subprocess
from pathlib import Path

import psycopg
import pytest

from conftest import REPO, unique, wait_for
from test_status import SCHEMA, Serve, get_json, insert_vote

CACHE = Path(os.environ.get("TADAK_CACHE_DIR") or
             Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tadak")
NODE_DIR = CACHE / "node"
CHROMIUM = Path("/usr/bin/chromium")
OUT = REPO / "tests" / "out"


def need_browser():
    if not CHROMIUM.exists() or not (NODE_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.fail("chromium or playwright-core missing: run scripts/setup")


def test_triple_click_is_one_vote(bins, env, tmp_path, topic, db, prefix):
    need_browser()
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute(SCHEMA)
    group = unique("g")
    serve = Serve(bins, env, tmp_path, topic, db.url, env["REDIS_URL"], prefix,
                  extra=("--stats-group", group, "--candidates", "1-4"))
    # /readyz asks the broker for the topic's metadata, which creates it: the
    # consumer then subscribes to a topic that exists.
    wait_for(lambda: get_json(serve.port, "/readyz")[0] == 200, timeout=30, what="/readyz")
    consumer = subprocess.Popen(
        [bins.consumer, "--brokers", env["KAFKA_BOOTSTRAP_SERVERS"], "--topic", topic,
         "--group", group, "--from-beginning", "--database-url", db.url,
         "--redis-url", env["REDIS_URL"], "--key-prefix", prefix],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "page.png").unlink(missing_ok=True)
        p = subprocess.run(["node", str(REPO / "tests" / "e2e" / "page.mjs"),
                            f"http://127.0.0.1:{serve.port}", str(OUT), "2"],
                           env={**os.environ, "TADAK_NODE_DIR": str(NODE_DIR)},
                           capture_output=True, text=True, timeout=180)
        assert p.returncode == 0, f"page.mjs failed:\n{p.stdout}\n{p.stderr[-4000:]}"
        r = json.loads(p.stdout.strip().splitlines()[-1])

        assert r["posts"] == 3 and r["answers"] == [202, 202, 202], r
        assert r["after"] == r["before"] + 1, r
        s = r["stats"]
        assert s["consumed"] == 3 and s["inserted"] == 1, s
        assert s["dup_redis"] + s["dup_db"] == 2, s
        assert r["page"]["sent"] == 3 and r["page"]["accepted"] == 3, r
        assert r["page"]["dupRedis"] + r["page"]["dupDb"] == 2, r
        assert db.rows("select count(*) from votes where user_id = %s and candidate_id = 2",
                       (r["user"],))[0][0] == 1
        assert get_json(serve.port, f"/votes/{r['user']}/2")[1]["status"] == "recorded"
        assert (OUT / "page.png").stat().st_size > 10000
    finally:
        consumer.send_signal(signal.SIGTERM)
        _, err = consumer.communicate(timeout=30)
        assert serve.stop() == 0
    assert consumer.returncode == 0, err[-2000:]


def page_cards(port, shot, *other):
    """What tests/e2e/cards.mjs saw on the page after its first refresh."""
    need_browser()
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{shot}.png").unlink(missing_ok=True)
    p = subprocess.run(["node", str(REPO / "tests" / "e2e" / "cards.mjs"),
                        f"http://127.0.0.1:{port}", str(OUT), shot, *map(str, other)],
                       env={**os.environ, "TADAK_NODE_DIR": str(NODE_DIR)},
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, f"cards.mjs failed:\n{p.stdout}\n{p.stderr[-4000:]}"
    assert (OUT / f"{shot}.png").stat().st_size > 5000
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_page_without_a_ballot_shows_what_tallies_reports(bins, env, tmp_path, topic, db):
    """No --candidates: every recorded candidate gets a card (9 was never on a
    default 1-4), in id order, and a field votes for an id the page has no card for."""
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute(SCHEMA)
    for user, cand in [(1, 9), (2, 9), (1, 2)]:
        insert_vote(db, user, cand)
    serve = Serve(bins, env, tmp_path, topic, db.url)
    try:
        r = page_cards(serve.port, "page-no-ballot", 12)
    finally:
        assert serve.stop() == 0
    assert r["cards"] == [[2, 1], [9, 2]], r
    assert r["total"] == "3" and r["note"] is None, r
    assert r["otherVisible"] is True and r["accepted"] == 1, r
    assert r["cardsAfterVote"] == [[2, 1], [9, 2], [12, 0]], r  # recorded later by a consumer


def test_page_with_a_ballot_shows_exactly_the_ballot(bins, env, tmp_path, topic, db):
    """--candidates 2,5: cards 2 and 5 only (5 with no votes yet), no field for
    other ids, and one line says that 2 recorded votes are outside the ballot."""
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute(SCHEMA)
    for user, cand in [(1, 9), (2, 9), (1, 2)]:
        insert_vote(db, user, cand)
    serve = Serve(bins, env, tmp_path, topic, db.url, extra=("--candidates", "2,5"))
    try:
        r = page_cards(serve.port, "page-ballot")
    finally:
        assert serve.stop() == 0
    assert r["cards"] == [[2, 1], [5, 0]], r
    assert r["otherVisible"] is False, r
    assert r["total"] == "3", r  # every row, as the label says
    assert r["note"] and "2 recorded votes" in r["note"] and "ballot" in r["note"], r
