"""SIGTERM while keep-alive clients keep posting (issue 12, requirement 4).

libmicrohttpd aborts the process (MHD_PANIC) when MHD_stop_daemon() finds a
suspended connection, and every vote waiting for its delivery report is one.
Keep-alive clients go on sending requests on connections that are already
open after the listener closed, so a drain that only waits for "nothing in
flight" never ends and a stop that follows suspends its way into the panic.

Each round starts `serve`, lets 16 keep-alive clients post votes as fast as
they can, sends SIGTERM once 40 votes were accepted and requires exit 0 with
a clean log; at the end every 202 of every round must be in Kafka.
"""
import http.client
import json
import signal
import subprocess
import threading

from conftest import consume_all, free_port, new_topic, wait_for, wait_serving

ROUNDS = 20
CLIENTS = 16
CRASH_MARKERS = ("MHD_PANIC", "Fatal error", "AddressSanitizer", "runtime error:",
                 "LeakSanitizer")


class Client(threading.Thread):
    """One keep-alive connection posting votes until told to stop or refused."""

    def __init__(self, port, first_user, accepted, stop):
        super().__init__(daemon=True)
        self.port, self.user, self.accepted, self.stop = port, first_user, accepted, stop
        self.statuses = {}

    def run(self):
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                self.user += 1
                body = json.dumps({"user_id": self.user, "candidate_id": 1 + self.user % 4})
                conn.request("POST", "/votes", body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                self.statuses[resp.status] = self.statuses.get(resp.status, 0) + 1
                if resp.status == 202:
                    self.accepted.append(json.loads(data)["event_id"])
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
                try:  # the listener is gone once the drain began: stop then
                    http.client.HTTPConnection("127.0.0.1", self.port, timeout=1).connect()
                except OSError:
                    return


def test_sigterm_under_keepalive_load_exits_clean_every_time(bins, env, tmp_path):
    topic = new_topic(env, "t_shutdown")
    accepted = []  # list.append is atomic under the GIL
    statuses = {}
    for rnd in range(ROUNDS):
        port = free_port()
        log = tmp_path / f"serve-{rnd}.log"
        with open(log, "wb") as logf:
            proc = subprocess.Popen(
                [bins.producer, "serve", "--listen", f"127.0.0.1:{port}", "--topic", topic,
                 "--brokers", env["KAFKA_BOOTSTRAP_SERVERS"], "--delivery-timeout-ms", "3000"],
                stdout=logf, stderr=subprocess.STDOUT)
            wait_serving(proc, port, log)
            before = len(accepted)
            stop = threading.Event()
            clients = [Client(port, (rnd * CLIENTS + i) * 1_000_000, accepted, stop)
                       for i in range(CLIENTS)]
            for c in clients:
                c.start()
            try:
                wait_for(lambda: len(accepted) - before >= 40, timeout=30,
                         what=f"round {rnd}: 40 votes accepted")
                proc.send_signal(signal.SIGTERM)
                rc = proc.wait(timeout=30)
            finally:
                stop.set()
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                for c in clients:
                    c.join(timeout=30)
        text = log.read_text(errors="replace")
        assert rc == 0, f"round {rnd}: serve exited {rc}:\n{text[-3000:]}"
        for marker in CRASH_MARKERS:
            assert marker not in text, f"round {rnd}: {marker}:\n{text[-3000:]}"
        for c in clients:
            for k, v in c.statuses.items():
                statuses[k] = statuses.get(k, 0) + v
    # Answers are 202, or 503 for what came in while shutting down; nothing else.
    assert set(statuses) <= {202, 503}, statuses
    on_topic = {json.loads(m.value)["event_id"]
                for m in consume_all(env, topic, expected=len(accepted), timeout=60)}
    missing = set(accepted) - on_topic
    assert not missing, f"{len(missing)} of {len(accepted)} accepted votes are not in Kafka"
