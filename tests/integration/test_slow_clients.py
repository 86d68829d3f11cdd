"""Slow clients (issue 12, requirement 7): a whole request must arrive within
--request-timeout-s, one address holds at most --max-connections-per-ip
connections, and a body is allocated as it arrives, not at its declared size.

libmicrohttpd's own timeout is an idle one: a client sending one byte a second
is never idle, so without a deadline 300 such connections stay forever.
"""
import http.client
import json
import re
import select
import socket
import statistics
import subprocess
import time

import pytest

from conftest import free_port, new_topic, request, wait_for, wait_serving

DEADLINE_S = 3
TRICKLERS = 300  # from one address, as the issue asks


class Serve:
    def __init__(self, bins, env, tmp, *extra):
        self.port = free_port()
        self.log = tmp / f"serve-{self.port}.log"
        self._logf = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [bins.producer, "serve", "--listen", f"127.0.0.1:{self.port}",
             "--topic", new_topic(env, "t_slow"), "--brokers", env["KAFKA_BOOTSTRAP_SERVERS"], *extra],
            stdout=self._logf, stderr=subprocess.STDOUT)
        wait_serving(self.proc, self.port, self.log)

    def metric(self, name):
        body = request(self.port, "GET", "/metrics", timeout=5)[2].decode()
        m = re.search(rf"^{name} (\d+)$", body, re.M)
        return int(m[1]) if m else None

    def stop(self):
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=30)
        finally:
            self._logf.close()


class Trickler:
    """A connection that sends one byte of its request per tick."""

    def __init__(self, port, data):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setblocking(False)
        self.data, self.i = data, 0
        self.opened = time.monotonic()
        self.closed = None

    def tick(self):
        if self.closed is None and self.i < len(self.data):
            try:
                self.sock.send(self.data[self.i:self.i + 1])
                self.i += 1
            except OSError:
                self.closed = time.monotonic()

    def poll(self):
        """Notice the server closing the connection."""
        if self.closed is not None:
            return
        try:
            if not self.sock.recv(4096):
                self.closed = time.monotonic()
        except BlockingIOError:
            pass
        except OSError:
            self.closed = time.monotonic()


def post_vote(port, user):
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", "/votes", json.dumps({"user_id": user, "candidate_id": 1}),
                     {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        return resp.status, time.monotonic() - t0
    finally:
        conn.close()


def test_trickling_connections_are_closed_at_the_deadline(bins, env, tmp_path):
    s = Serve(bins, env, tmp_path, "--request-timeout-s", str(DEADLINE_S),
              "--max-body", "1048576", "--max-connections-per-ip", "1000")
    head = b"POST /votes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    body_first = head + b"Content-Length: 1000000\r\n\r\n" + b'{"user_id":1,' + b" " * 100
    slow = []
    try:
        for i in range(TRICKLERS):
            t = Trickler(s.port, head + b"X-Pad: " + b"a" * 200 if i % 2 else body_first)
            if i % 2 == 0:  # the headers at once, then the body byte by byte
                t.sock.setblocking(True)
                t.sock.sendall(body_first[:len(body_first) - 100])
                t.sock.setblocking(False)
                t.i = len(body_first) - 100
            slow.append(t)
        served, held = [], None
        end = time.monotonic() + DEADLINE_S + 4
        next_tick, user = time.monotonic(), 9_100_000
        while time.monotonic() < end and any(t.closed is None for t in slow):
            if time.monotonic() >= next_tick:
                for t in slow:
                    t.tick()
                next_tick += 1.0
                user += 1
                served.append(post_vote(s.port, user))
                if held is None and time.monotonic() - slow[-1].opened > 1.5:
                    held = s.metric("tadak_http_body_bytes")
            select.select([t.sock for t in slow if t.closed is None], [], [], 0.05)
            for t in slow:
                t.poll()
        assert s.proc.poll() is None, s.log.read_text()[-2000:]
        alive = request(s.port, "GET", "/healthz")[0]
    finally:
        rc = s.stop()
        for t in slow:
            t.sock.close()
    open_still = sum(t.closed is None for t in slow)
    assert open_still == 0, f"{open_still} trickling connections outlived the deadline"
    lifetimes = sorted(t.closed - t.opened for t in slow)
    assert DEADLINE_S - 0.5 <= lifetimes[0] and lifetimes[-1] <= DEADLINE_S + 2.5, \
        (lifetimes[0], lifetimes[-1])
    # 150 bodies declared 1 MB each and sent ~100 bytes: a few KiB held, not 150 MB.
    assert held is not None and held < 1024 * 1024, held
    # The well-behaved client was served all along, promptly.
    assert served and all(st == 202 for st, _ in served), served
    assert statistics.median(lat for _, lat in served) < 0.1, served
    assert alive == 200 and rc == 0


# The capped connections come from an address of their own: serve's readiness
# check (from 127.0.0.1) is counted until the server has seen it close.
OWN = "127.0.0.5"


def held_connection(port, source="127.0.0.1"):
    """A keep-alive connection that got an answer: the server holds (and counts) it."""
    sk = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    sk.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b""
    while b"\r\n\r\n" not in got or not got.rstrip().endswith(b"}"):
        chunk = sk.recv(4096)
        assert chunk, got
        got += chunk
    assert got.startswith(b"HTTP/1.1 200"), got
    return sk


def refused_unanswered(port, source="127.0.0.1"):
    """A connection the kernel accepts and the server closes without an answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10,
                                  source_address=(source, 0)) as extra:
        try:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            return extra.recv(4096) == b""
        except OSError:
            return True


def test_default_cap_is_64_per_address(bins, env, tmp_path):
    """Two hosts must not hold every slot: 64 connections an address by default."""
    s = Serve(bins, env, tmp_path)
    socks = []
    try:
        socks = [held_connection(s.port, OWN) for _ in range(64)]
        assert refused_unanswered(s.port, OWN)
        # Another address is served meanwhile.
        assert held_connection(s.port, "127.0.0.2").close() is None
    finally:
        for sk in socks:
            sk.close()
        assert s.stop() == 0, s.log.read_text()[-2000:]


def test_trusted_proxy_is_not_capped(bins, env, tmp_path):
    """Behind a reverse proxy every client shares its address: a --trusted-proxy
    address holds as many connections as it needs; any other stays capped."""
    s = Serve(bins, env, tmp_path, "--max-connections-per-ip", "4", "--trusted-proxy",
              "127.0.0.3")
    socks = []
    try:
        socks = [held_connection(s.port, "127.0.0.3") for _ in range(12)]
        socks += [held_connection(s.port, OWN) for _ in range(4)]
        assert refused_unanswered(s.port, OWN)
    finally:
        for sk in socks:
            sk.close()
        assert s.stop() == 0, s.log.read_text()[-2000:]


def asked(sk):
    """The answer to a GET /healthz on sk; b"" when the server closed it unanswered."""
    got = b""
    try:
        sk.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        while not got.rstrip().endswith(b"}"):
            chunk = sk.recv(4096)
            if not chunk:
                break
            got += chunk
    except OSError:
        pass
    return got


def test_connections_per_address_are_capped(bins, env, tmp_path):
    """Five connections opened before any is answered: the server holds four
    and closes one unanswered. Which one is not defined - they reach the
    server's threads in parallel - only that the fifth slot does not exist."""
    s = Serve(bins, env, tmp_path, "--max-connections-per-ip", "4")
    socks = []
    try:
        socks = [socket.create_connection(("127.0.0.1", s.port), timeout=5,
                                          source_address=(OWN, 0)) for _ in range(5)]
        answers = [asked(sk) for sk in socks]
        assert sum(a.startswith(b"HTTP/1.1 200") for a in answers) == 4, answers
        assert answers.count(b"") == 1, answers
        for sk, a in zip(socks, answers):
            if not a:
                sk.close()
        socks = [sk for sk, a in zip(socks, answers) if a]
        # One of the four leaves: there is room again.
        socks.pop().close()

        def room():
            sk = socket.create_connection(("127.0.0.1", s.port), timeout=5, source_address=(OWN, 0))
            if asked(sk):
                socks.append(sk)
                return True
            sk.close()
            return False
        wait_for(room, timeout=10, what="a slot freed by a closed connection")
    finally:
        for sk in socks:
            sk.close()
        assert s.stop() == 0, s.log.read_text()[-2000:]


@pytest.mark.parametrize("flag", ["--request-timeout-s", "--max-connections-per-ip"])
def test_limits_are_validated(bins, flag):
    r = subprocess.run([bins.producer, "serve", flag, "0"], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2 and "out of range" in r.stderr, r.stderr
