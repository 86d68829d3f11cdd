"""A real `tadak-producer serve` on the real broker recovers by itself from a
fatal error of its idempotent producer (issue #14).

librdkafka 2.0.2 raises such an error now and then after a partition leader
change; on demand it can only be raised from inside the process. fatal_shim.c
does that from outside tadak: built here into a shared object and
LD_PRELOADed, it calls librdkafka's rd_kafka_test_fatal_error() on the newest
producer when the process gets SIGUSR2. No tadak code reads a test switch.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from conftest import consume_all, free_port, new_topic, request, wait_for, wait_serving
from logfmt import parse_log

SHIM = Path(__file__).with_name("fatal_shim.c")
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    if not shutil.which("cc"):
        pytest.skip("no C compiler to build the fatal-error shim")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "rdkafka"], check=True,
                           capture_output=True, text=True).stdout.split()
    out = tmp_path_factory.mktemp("shim") / "fatal_shim.so"
    r = subprocess.run(["cc", "-shared", "-fPIC", "-O1", "-o", str(out), str(SHIM), *flags,
                        "-ldl", "-lpthread"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


def vote(port, user):
    body = ('{"user_id":%d,"candidate_id":1}' % user).encode()
    return request(port, "POST", "/votes", body, {"Content-Type": "application/json"})


def ready_status(port):
    try:
        return request(port, "GET", "/readyz", timeout=3)[0]
    except OSError:
        return None


class ReadyWatch:
    """/readyz ten times a second, in the background: [(monotonic t, status)]."""

    def __init__(self, port):
        self.port, self.seen, self.stop = port, [], threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            self.seen.append((time.monotonic(), ready_status(self.port)))
            self.stop.wait(0.1)

    def close(self):
        self.stop.set()
        self.thread.join(10)


def test_serve_recovers_from_a_fatal_producer_error(bins, env, tmp_path, shim):
    """SIGUSR2 -> a fatal error in serve's producer: one logfmt line with the
    cause, /readyz 503 for a while and then 200 again, votes accepted again
    (by a new producer, counted on /metrics), a clean SIGTERM exit, and every
    202 in the topic."""
    topic, port = new_topic(env, "t_fatal"), free_port()
    log = tmp_path / "serve.log"
    asan = ":".join(o for o in (os.environ.get("ASAN_OPTIONS"), "verify_asan_link_order=0") if o)
    proc_env = dict(os.environ, LD_PRELOAD=str(shim), ASAN_OPTIONS=asan)
    with open(log, "wb") as logf:
        proc = subprocess.Popen(
            [bins.producer, "serve", "--listen", f"127.0.0.1:{port}", "--topic", topic,
             "--brokers", env["KAFKA_BOOTSTRAP_SERVERS"], "--delivery-timeout-ms", "5000"],
            stdout=logf, stderr=subprocess.STDOUT, env=proc_env)
        try:
            wait_serving(proc, port, log)
            wait_for(lambda: ready_status(port) == 200, 30, "/readyz ready")
            # The first vote creates the topic (the broker's auto-creation): retried.
            wait_for(lambda: vote(port, 1)[0] == 202, 60, "a first 202")

            watch = ReadyWatch(port)
            t_fatal = time.monotonic()
            proc.send_signal(signal.SIGUSR2)
            wait_for(lambda: 'msg="kafka producer rebuilt"' in log.read_text(), 30,
                     "the producer rebuilt")
            # serve's prober (once a second) reports the fatal error, then ready again.
            wait_for(lambda: any(st == 503 for t, st in watch.seen if t >= t_fatal), 15,
                     "/readyz 503 after the fatal error")
            t_503 = min(t for t, st in watch.seen if t >= t_fatal and st == 503)
            wait_for(lambda: any(st == 200 for t, st in watch.seen if t > t_503), 15,
                     "/readyz 200 again")
            watch.close()

            status, _, body = vote(port, 2)  # the new producer takes it
            assert status == 202, body
            metrics = request(port, "GET", "/metrics")[2].decode()
            assert re.search(r"^tadak_kafka_producer_rebuilds_total 1$", metrics, re.M), metrics
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            rc = proc.wait(60)
    text = log.read_text()
    assert rc == 0, text[-3000:]
    assert not any(m in text for m in SANITIZER_MARKERS), text[-3000:]
    records = parse_log(log.read_bytes())
    fatal = [r for r in records if r["msg"] == "kafka producer fatal error"]
    assert len(fatal) == 1, fatal  # once, with librdkafka's own cause
    assert fatal[0]["level"] == "error" and fatal[0]["error"] == "OUT_OF_ORDER_SEQUENCE_NUMBER"
    assert "fatal_shim: SIGUSR2" in fatal[0]["detail"]
    assert [r["rebuilds"] for r in records if r["msg"] == "kafka producer rebuilt"] == ["1"]
    # Both votes answered 202 are in the topic (so may be a first try that timed out).
    assert {json.loads(m.value)["user_id"] for m in consume_all(env, topic)} == {1, 2}
