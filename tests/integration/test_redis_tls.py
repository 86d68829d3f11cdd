"""Redis over TLS (rediss://), as managed Redis services require: a TLS-only
redis-server of the test's own (port 0, tls-port only), its CA and server
certificate made here with openssl.

Both programs reach it with rediss://...?tls_ca=; a CA that did not sign the
server's certificate, or a name the certificate does not carry, stops the
consumer at start with a message naming the host and never the password;
a plain redis:// URL never falls back to plaintext against it.
"""
import subprocess
import time

import pytest
import redis as redis_lib

from conftest import free_port, produce, request, wait_for, wait_serving
from test_consumer import TIMEOUT, consume, consumer_args, token, vote


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_ca(d, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            f"/CN={name}", "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.pem"))
    return d / f"{name}.pem"


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory):
    d = tmp_path_factory.mktemp("redis-tls")
    ca = make_ca(d, "ca")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
            "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"))
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(ca), "-CAkey",
            str(d / "ca.key"), "-CAcreateserial", "-days", "2", "-extfile", str(d / "san.ext"),
            "-out", str(d / "server.pem"))
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(d / "server.pem"), "--tls-key-file", str(d / "server.key"),
         "--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no",
         "--requirepass", "s3cret-pw", "--save", "", "--appendonly", "no", "--dir", str(d)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis_lib.Redis(host="127.0.0.1", port=port, password="s3cret-pw", ssl=True,
                             ssl_ca_certs=str(ca))

    def up():
        assert proc.poll() is None, "redis-server exited"
        try:
            return client.ping()
        except redis_lib.exceptions.ConnectionError:
            return False

    wait_for(up, 20, "the TLS redis-server")
    yield {"port": port, "ca": ca, "dir": d, "client": client,
           "url": f"rediss://:s3cret-pw@127.0.0.1:{port}/0?tls_ca={ca}"}
    client.close()
    proc.terminate()
    proc.wait(timeout=10)


def test_consumer_over_tls_marks_done_in_the_tls_redis(bins, env, topic, db, prefix, tls_redis):
    produce(env, topic, [vote(n, 1) for n in range(1, 51)] * 2)
    s, err = consume(bins, env, topic, db, prefix, redis_url=tls_redis["url"])
    assert s["inserted"] == 50 and s["dup_redis"] == 50, err[-2000:]
    assert "redis unavailable" not in err
    assert tls_redis["client"].get(prefix + token(7, 1)) == b"1"


def test_a_second_consumer_over_tls_stops_duplicates_in_redis(bins, env, topic, db, prefix,
                                                               tls_redis):
    produce(env, topic, [vote(n, 2) for n in range(1, 21)])
    consume(bins, env, topic, db, prefix, redis_url=tls_redis["url"], group=f"a_{topic}")
    s, _ = consume(bins, env, topic, db, prefix, redis_url=tls_redis["url"], group=f"b_{topic}")
    assert s["inserted"] == 0 and s["dup_redis"] == 20


@pytest.mark.parametrize("case", ["wrong_ca", "wrong_name"])
def test_certificate_refused_is_a_clear_start_up_error(bins, env, topic, db, prefix, tls_redis,
                                                       case):
    if case == "wrong_ca":
        url = (f"rediss://:s3cret-pw@127.0.0.1:{tls_redis['port']}/0"
               f"?tls_ca={make_ca(tls_redis['dir'], 'other')}")
        says = "self-signed certificate"
    else:
        url = (f"rediss://:s3cret-pw@localhost:{tls_redis['port']}/0?tls_ca={tls_redis['ca']}"
               "&tls_server_name=redis.example")
        says = "hostname mismatch"
    produce(env, topic, [vote(1, 1)])
    p = subprocess.run(consumer_args(bins, env, topic, db, prefix, redis_url=url),
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 1, p.stderr[-2000:]
    assert says in p.stderr, p.stderr[-2000:]
    assert f":{tls_redis['port']}" in p.stderr and "is refused" in p.stderr
    assert "s3cret-pw" not in p.stderr
    assert db.count() == 0  # nothing consumed before the refusal


def test_plain_url_never_falls_back(bins, env, topic, db, prefix, tls_redis):
    """redis:// against the TLS port: an outage (PostgreSQL decides), never a
    plaintext session, and the password is not logged."""
    produce(env, topic, [vote(3, 3)])
    s, err = consume(bins, env, topic, db, prefix,
                     redis_url=f"redis://:s3cret-pw@127.0.0.1:{tls_redis['port']}/0")
    assert s["inserted"] == 1 and "redis unavailable" in err
    assert "s3cret-pw" not in err


def test_producer_idempotency_keys_over_tls(bins, env, topic, tls_redis, tmp_path):
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([bins.producer, "serve", "--listen", f"127.0.0.1:{port}",
                                 "--brokers", env["KAFKA_BOOTSTRAP_SERVERS"], "--topic", topic,
                                 "--redis-url", tls_redis["url"],
                                 "--database-url", env["DATABASE_URL"]],
                                stdout=fh, stderr=fh)
    try:
        wait_serving(proc, port, log)
        body = b'{"user_id":41,"candidate_id":2}'
        headers = {"Content-Type": "application/json", "Idempotency-Key": f"k-{time.time()}"}
        first = request(port, "POST", "/votes", body, headers)
        again = request(port, "POST", "/votes", body, headers)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert first[0] == 202, first
    assert again[0] == 202 and again[1].get("idempotent-replayed") == "true", again
    assert again[2] == first[2]
    assert "redis unavailable" not in log.read_text()
    assert "s3cret-pw" not in log.read_text()


def test_producer_refuses_an_untrusted_certificate_at_start(bins, env, topic, tls_redis):
    url = (f"rediss://:s3cret-pw@127.0.0.1:{tls_redis['port']}/0"
           f"?tls_ca={make_ca(tls_redis['dir'], 'other2')}")
    p = subprocess.run([bins.producer, "serve", "--listen", f"127.0.0.1:{free_port()}",
                        "--brokers", env["KAFKA_BOOTSTRAP_SERVERS"], "--topic", topic,
                        "--redis-url", url, "--database-url", env["DATABASE_URL"]],
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode != 0, p.stderr[-2000:]
    assert "is refused" in p.stderr and f"127.0.0.1:{tls_redis['port']}" in p.stderr
    assert "s3cret-pw" not in p.stderr
