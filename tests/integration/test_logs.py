"""Logs that cannot be forged (issue 12, requirement 5).

Hostile input reaches both programs' logs: a producer at --log-level debug
logs every refused request with its (unescaped) path and the answer; 503s
log libpq's words, quotes and all; libmicrohttpd logs malformed requests;
a consumer logs every dead letter with its detail ("user_id" is required).
Every line of both logs must be one strict logfmt record (tests/integration/
logfmt.py), and none may be a record the input wrote.
"""
import json
import signal
import socket
import subprocess

from conftest import consume_all, free_port, new_topic, produce, request, run, unique, wait_serving
from hostile import FORGED, STRICT
from logfmt import parse_log


def raw(port, data):
    """Send bytes as they are (http.client would refuse them); read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sk:
        sk.sendall(data)
        sk.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while chunk := sk.recv(4096):
                out += chunk
        except OSError:
            pass
        return out


def assert_unforged(records, what):
    for rec in records:
        assert rec["msg"] not in ("forged", "forged again"), (what, rec)
        assert not rec["ts"].startswith("2000-"), (what, rec)


def test_producer_log_under_hostile_requests(bins, env, tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    dead_pg = f"postgresql://tadak:hunter2@127.0.0.1:{free_port()}/x"
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            [bins.producer, "serve", "--listen", f"127.0.0.1:{port}", "--topic",
             new_topic(env, "t_logs"), "--brokers", env["KAFKA_BOOTSTRAP_SERVERS"], "--log-level",
             "debug", "--database-url", dead_pg],
            stdout=logf, stderr=subprocess.STDOUT)
        try:
            wait_serving(proc, port, log)
            paths = [b"/votes%0Alevel=error%20msg=%22forged%22",
                     b'/a"b%22c%0D%0Ats=2000-01-01T00:00:00.000Z%20' + FORGED.encode(),
                     b"/%ff%fe%E2%80%A8%C2%85x%1b[31m%5c",
                     b"/votes/1/2%0A" + FORGED.replace(" ", "%20").encode()]
            for p in paths:
                assert raw(port, b"GET " + p + b" HTTP/1.1\r\nHost: x\r\n\r\n").startswith(
                    b"HTTP/1.1 4")
            bodies = [b'{"candidate_id":2}', b'{"user_id":1,"candidate_id":2,"user_id":3}',
                      b'{"user_id":1,"candidate_id":2,"token":"x\\n' + FORGED.encode() + b'"}',
                      b'{"user_id":1,\n' + FORGED.encode() + b"}", b'{"user_id":"\xff"}']
            for b in bodies:
                status, _, _ = request(port, "POST", "/votes", b,
                                       {"Content-Type": "application/json"})
                assert status == 400
            status, _, _ = request(port, "POST", "/votes", b"{}",
                                   {"Content-Type": "application/json",
                                    "Idempotency-Key": 'k"\t' + FORGED})
            assert status == 400
            assert request(port, "GET", "/votes/1/2")[0] == 503  # libpq's quotes
            for junk in (b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n",
                         b"GET / HTTP/1.1\r\nX-Bad\r\n\r\n",
                         b"POST /votes HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
                raw(port, junk)
        finally:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=30)
    assert rc == 0
    records = parse_log(log.read_bytes())
    assert_unforged(records, "producer")
    assert "hunter2" not in log.read_text(errors="replace")
    # The hostile paths did reach the log, intact, as values.
    refused = [r["path"] for r in records if r["msg"] == "request refused"]
    assert "/votes\nlevel=error msg=\"forged\"" in refused, refused
    assert any(r["msg"] == "request failed" and r["request_id"] for r in records), records


def test_consumer_log_under_hostile_messages(bins, env, topic, db, prefix):
    """Also the consumer's side of the strict codec: each STRICT case is dead-lettered
    under the error name HTTP and replay give it."""
    bad = [b'{"candidate_id":2}', b'{"user_id":1,"candidate_id":2,"token":"vote_lock:9:9"}',
           b'{"user_id":1,' + FORGED.encode(), b"\xff\xfe\n" + FORGED.encode()]
    bad += [body for body, _, _ in STRICT]
    good = json.dumps({"user_id": 1, "candidate_id": 2, "note": "\n" + FORGED}).encode()
    produce(env, topic, bad + [good])
    r = run([bins.consumer, "--topic", topic, "--group", unique("g"),
             "--brokers", env["KAFKA_BOOTSTRAP_SERVERS"], "--redis-url", env["REDIS_URL"],
             "--database-url", db.url, "--key-prefix", prefix, "--from-beginning",
             "--idle-exit", "2", "--log-level", "debug"], timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    records = parse_log(r.stderr.encode())
    assert_unforged(records, "consumer")
    details = [rec["detail"] for rec in records if rec["msg"] == "invalid message dead-lettered"]
    assert len(details) == len(bad), records
    assert '"user_id" is required' in details
    assert db.count() == 1
    dlq = {m.value: m.headers["tadak-error"].decode()
           for m in consume_all(env, f"{topic}.dlq", expected=len(bad))}
    assert [dlq[body] for body, _, _ in STRICT] == [error for _, error, _ in STRICT]
