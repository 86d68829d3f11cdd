"""Regression tests for bugs the chaos suite found (private stack, see conftest.py)."""
import signal
import socket
import threading

from conftest import wait_for


class Blackhole:
    """A TCP server that accepts and then never answers: a service that hangs."""

    def __init__(self):
        self.ls = socket.socket()
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            self.conns.append(c)

    def close(self):
        for c in self.conns:
            c.close()
        self.ls.close()


def test_sigterm_during_startup_is_a_clean_stop(scenario):
    """SIGTERM while the consumer is still starting (here: Redis hangs) used to
    kill it by the default action (exit -15) because the handler was installed
    only after the connections were made; it must stop cleanly (exit 0)."""
    s = scenario
    s.create_topic()
    hole = Blackhole()
    try:
        c = s.consumer(extra=("--redis-url", f"redis://127.0.0.1:{hole.port}/0"))
        wait_for(lambda: hole.conns or not c.alive(), 30, "the consumer to reach Redis")
        assert c.alive(), c.text()[-2000:]
        c.p.send_signal(signal.SIGTERM)
        rc = c.wait(60)
    finally:
        hole.close()
    assert rc == 0, f"exit {rc}:\n{c.text()[-2000:]}"
    assert c.summary() is not None, "a clean stop prints its summary"


def test_connection_flood_under_a_low_fd_limit(scenario):
    """With the common soft limit of 1024 descriptors, ~1000 idle connections
    made accept() fail with EMFILE and libmicrohttpd stopped accepting anyone
    until they timed out (10 s): a well-behaved POST timed out. serve now
    raises its soft limit towards the hard one (and keeps MHD under it)."""
    import http.client
    import json
    import resource

    from test_chaos import free_port, http_ok

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert hard == resource.RLIM_INFINITY or hard >= 4096 + 256 + 1500, \
        f"hard limit {hard} too low for this test"
    s = scenario
    s.create_topic()
    port = free_port()
    hard_arg = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    srv = s.spawn("serve", ["prlimit", f"--nofile=1024:{hard_arg}", s.bins.producer, "serve",
                            "--listen", f"127.0.0.1:{port}", "--topic", s.topic,
                            "--brokers", s.env["KAFKA_BOOTSTRAP_SERVERS"],
                            "--max-connections-per-ip", "100000"])  # 1500 from one address
    wait_for(lambda: http_ok(port) or not srv.alive(), 30, "serve /healthz")
    flood = []
    try:
        for _ in range(1500):
            flood.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        statuses = []
        for u in range(1, 4):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("POST", "/votes", json.dumps({"user_id": u, "candidate_id": 1}),
                             {"Content-Type": "application/json"})
                statuses.append(conn.getresponse().status)
            except OSError as e:
                statuses.append(repr(e))
            finally:
                conn.close()
    finally:
        for sk in flood:
            sk.close()
    assert statuses == [202, 202, 202], statuses
    assert "resource limit" not in srv.text()
    rc = srv.terminate(60)
    assert rc == 0, srv.text()[-2000:]
