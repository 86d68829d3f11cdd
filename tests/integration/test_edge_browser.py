"""The frontend edge in a real browser: headless Chromium on another origin.

A page is served from a second port (another origin than the producer's);
its script fetch()es POST /votes with Content-Type: application/json and an
Idempotency-Key, which makes Chromium send a CORS preflight first:

- with that origin allowed (--cors-origin), the votes are accepted and the
  script reads the 202 bodies and the exposed headers (Idempotent-Replayed
  on the replay, Retry-After, RateLimit and RateLimit-Policy on the 429 of a small limit);
- with it not allowed, Chromium blocks the request, nothing reaches Kafka,
  and the producer logs the refusal.

And the vote page with identity on asks for a token and votes with it.
Screenshots go to tests/out/ like the page test's.
"""
import json
import re
import os
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest

from conftest import REPO, consume_all, unique, wait_for
from logfmt import parse_log
from test_page import CHROMIUM, NODE_DIR, OUT
from test_producer import Server

APP_HTML = (b"<!doctype html><html><head><meta charset='utf-8'><title>app.example stand-in"
            b"</title></head><body><h1>A frontend on another origin</h1><pre id='out'></pre>"
            b"</body></html>")


class _Page(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(APP_HTML)))
        self.end_headers()
        self.wfile.write(APP_HTML)

    def log_message(self, *args):
        pass


@pytest.fixture
def app_origin():
    """A static page on its own port: http://127.0.0.1:PORT is another origin."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def node(*args):
    if not CHROMIUM.exists() or not (NODE_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.fail("chromium or playwright-core missing: run scripts/setup")
    OUT.mkdir(parents=True, exist_ok=True)
    p = subprocess.run(["node", str(REPO / "tests" / "e2e" / "edge.mjs"), *map(str, args)],
                       env={**os.environ, "TADAK_NODE_DIR": str(NODE_DIR)},
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, f"edge.mjs failed:\n{p.stdout}\n{p.stderr[-4000:]}"
    return json.loads(p.stdout.strip().splitlines()[-1])


def stopped(server):
    assert server.stop() == 0, server.log.read_text()[-2000:]
    return parse_log(server.log.read_bytes())


def test_cross_origin_page_votes_when_allowed(bins, env, tmp_path, app_origin, prefix):
    s = Server(bins, env, tmp_path, unique("t_cors_ok"),
               ["--cors-origin", app_origin, "--redis-url", env["REDIS_URL"],
                "--key-prefix", prefix, "--rate-limit", "1/m", "--rate-burst", "3"])
    try:
        (OUT / "cors-allowed.png").unlink(missing_ok=True)
        r = node("cross", app_origin + "/", f"http://127.0.0.1:{s.port}", OUT, "cors-allowed", 777)
    finally:
        stopped(s)
    a = r["answers"]
    assert r["origin"] == app_origin and len(a) == 4, r
    assert [x["status"] for x in a] == [202, 202, 202, 429], r
    assert a[0]["body"]["token"] == "vote_lock:777:1" and a[0]["replayed"] is None
    assert a[1]["replayed"] == "true" and a[1]["body"] == a[0]["body"]  # the same 202, replayed
    assert a[2]["body"]["token"] == "vote_lock:777:2"
    assert a[3]["body"]["error"] == "rate_limited"
    # The draft -10 fields, readable by the other origin's script (exposed).
    assert 1 <= int(a[3]["retryAfter"]) <= 60
    assert a[3]["policy"] == '"default";q=3;w=180'
    m = re.fullmatch(r'"default";r=0;t=(\d+)', a[3]["rateLimit"] or "")
    assert m and int(m[1]) >= 1, a[3]
    got = sorted(json.loads(m.value)["token"] for m in consume_all(env, s.topic, expected=2))
    assert got == ["vote_lock:777:1", "vote_lock:777:2"]
    assert (OUT / "cors-allowed.png").stat().st_size > 5000


def test_cross_origin_page_is_blocked_when_not_allowed(bins, env, tmp_path, app_origin):
    s = Server(bins, env, tmp_path, unique("t_cors_no"),
               ["--cors-origin", "https://app.example"])
    try:
        (OUT / "cors-refused.png").unlink(missing_ok=True)
        r = node("cross", app_origin + "/", f"http://127.0.0.1:{s.port}", OUT, "cors-refused", 778)
    finally:
        records = stopped(s)
    a = r["answers"]
    assert len(a) == 1 and "Failed to fetch" in a[0]["error"], r
    refused = [x for x in records if x["msg"] == "origin refused"]
    assert refused and refused[0]["origin"] == app_origin, records
    assert refused[0]["method"] == "OPTIONS"  # the preflight: the POST itself was never sent
    assert consume_all(env, s.topic, timeout=5) == []
    assert (OUT / "cors-refused.png").stat().st_size > 5000


def test_vote_page_asks_for_a_token_with_identity_on(bins, env, tmp_path):
    secret = "a-page-test-secret-of-at-least-32-bytes"
    os.environ["TADAK_TEST_PAGE_SECRET"] = secret
    s = Server(bins, env, tmp_path, unique("t_page_jwt"),
               ["--jwt-secret-env", "TADAK_TEST_PAGE_SECRET", "--candidates", "1-4"])
    tok = jwt.encode({"sub": "31337", "exp": int(time.time()) + 600}, secret, algorithm="HS256")
    try:
        (OUT / "page-token.png").unlink(missing_ok=True)
        r = node("token", f"http://127.0.0.1:{s.port}", tok, OUT, "page-token")
    finally:
        stopped(s)
    assert r["boxVisible"] is True, r
    assert "paste a token" in r["logAfterNoToken"], r
    assert r["posts"] == [f"Bearer {tok}"], r  # nothing was sent without the token
    assert r["user"] == "31337" and r["accepted"] == 1 and r["failed"] == 1, r
    got = [json.loads(m.value) for m in consume_all(env, s.topic, expected=1)]
    assert [(e["user_id"], e["candidate_id"]) for e in got] == [(31337, 2)]
    assert (OUT / "page-token.png").stat().st_size > 10000
