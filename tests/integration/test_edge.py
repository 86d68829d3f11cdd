"""The frontend edge against the real stack: CORS, verified identity (JWT) and
rate limits on `tadak-producer serve`. Each piece is off by default (the other
suites run with all of it off); here each is switched on and every answer the
issue specifies is checked, with the Kafka topic as the witness that refused
requests published nothing.

Tokens are made here with PyJWT (keys from `cryptography`), never by tadak.
"""
import base64
import hashlib
import hmac
import http.client
import json
import os
import re
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from conftest import consume_all, run, unique, wait_for
from logfmt import parse_log
from test_producer import Server

SECRET_ENV = "TADAK_TEST_JWT_SECRET"
SECRET = "an-hs256-secret-of-more-than-32-bytes-for-tests"
ISSUER = "https://id.example"
AUDIENCE = "tadak"
APP = "https://app.example"


def call(port, method, path, body=None, headers=None, source="127.0.0.1"):
    """One request from a chosen loopback source address -> (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15, source_address=(source, 0))
    try:
        h = dict(headers or {})
        if body is not None and not isinstance(body, bytes):
            body = json.dumps(body).encode()
            h.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=body, headers=h)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def error_of(body):
    return json.loads(body)["error"]


def events(env, topic, expected=None):
    return [json.loads(m.value) for m in consume_all(env, topic, expected=expected, timeout=10)]


def claims(sub="42", **over):
    now = int(time.time())
    c = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, "iat": now}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def b64(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def none_token():
    return (f"{b64(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}."
            f"{b64(json.dumps(claims()).encode())}.")


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    rk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ek = ec.generate_private_key(ec.SECP256R1())
    out = {"rsa": rk, "ec": ek}
    for name, k in (("rsa", rk), ("ec", ek)):
        p = d / f"{name}.pem"
        p.write_bytes(k.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
        out[f"{name}_pem"] = p
    return out


@pytest.fixture
def serve(bins, env, tmp_path):
    """Start servers with extra arguments; stop them all (cleanly) at the end."""
    started = []

    def start(*extra, topic=None):
        s = Server(bins, env, tmp_path, topic or unique("t_edge"), [*extra, "--log-level", "debug"])
        started.append(s)
        return s
    os.environ[SECRET_ENV] = SECRET
    yield start
    for s in started:
        assert s.stop() == 0, s.log.read_text()[-2000:]


# ---- CORS -----------------------------------------------------------------------


def test_cors_off_by_default(serve):
    s = serve()
    status, h, _ = call(s.port, "OPTIONS", "/votes", headers={"Origin": APP})
    assert status == 405 and "access-control-allow-origin" not in h
    status, h, _ = call(s.port, "POST", "/votes", {"user_id": 1, "candidate_id": 2},
                        headers={"Origin": APP})
    assert status == 202 and "access-control-allow-origin" not in h and "vary" not in h


def test_cors_preflight_and_answers(serve, env):
    s = serve("--cors-origin", APP, "--cors-origin", "http://localhost:5173")
    pre = {"Origin": APP, "Access-Control-Request-Method": "POST",
           "Access-Control-Request-Headers": "content-type, idempotency-key, authorization"}
    for path, methods in (("/votes", "POST"), ("/votes/1/2", "GET"), ("/tallies", "GET")):
        status, h, body = call(s.port, "OPTIONS", path, headers=pre)
        assert status == 204 and body == b"", (path, status, body)
        assert h["access-control-allow-origin"] == APP
        assert h["access-control-allow-methods"] == methods
        allowed = {x.strip().lower() for x in h["access-control-allow-headers"].split(",")}
        assert {"content-type", "idempotency-key", "authorization"} <= allowed
        assert int(h["access-control-max-age"]) == 600
        assert "origin" in h["vary"].lower()

    # An actual request from the allowed origin: the origin itself, never "*".
    status, h, body = call(s.port, "POST", "/votes", {"user_id": 7, "candidate_id": 1},
                           headers={"Origin": APP})
    assert status == 202, body
    assert h["access-control-allow-origin"] == APP and "origin" in h["vary"].lower()
    exposed = {x.strip().lower() for x in h["access-control-expose-headers"].split(",")}
    assert {"retry-after", "idempotent-replayed", "ratelimit", "ratelimit-policy",
            "www-authenticate"} <= exposed

    # Another origin: no CORS headers; its POST refused before anything is published.
    evil = {"Origin": "https://evil.example"}
    status, h, body = call(s.port, "OPTIONS", "/votes", headers={**pre, **evil})
    assert status == 403 and error_of(body) == "origin_not_allowed"
    assert "access-control-allow-origin" not in h
    status, h, body = call(s.port, "POST", "/votes", {"user_id": 8, "candidate_id": 1},
                           headers=evil)
    assert status == 403 and error_of(body) == "origin_not_allowed"
    assert "access-control-allow-origin" not in h
    status, h, _ = call(s.port, "GET", "/healthz", headers=evil)
    assert status == 200 and "access-control-allow-origin" not in h

    # The vote page's own origin (Origin's host is the Host) is always allowed.
    status, h, _ = call(s.port, "POST", "/votes", {"user_id": 9, "candidate_id": 1},
                        headers={"Origin": f"http://127.0.0.1:{s.port}"})
    assert status == 202

    got = events(env, s.topic, expected=2)
    assert sorted(e["user_id"] for e in got) == [7, 9]
    # Logged at most once a second, with a count: the first refusal at once.
    refused = [r for r in parse_log(s.log.read_bytes()) if r["msg"] == "origin refused"]
    assert refused and all(r["origin"] == "https://evil.example" for r in refused)
    assert (refused[0]["method"], refused[0]["count"]) == ("OPTIONS", "1")
    assert 'tadak_http_edge_refused_total{reason="origin_not_allowed"} 2' in \
        call(s.port, "GET", "/metrics")[2].decode()


def test_page_origin_scheme_and_public_origin(serve, env, bins):
    """The vote page's own origin: without --public-origin an http:// Origin naming the
    Host (an https page is not this plain-HTTP server's); with it, that origin only, so
    a rebound DNS name (its Host follows the name) is refused."""
    s = serve("--cors-origin", APP)
    own = f"127.0.0.1:{s.port}"
    vote = {"user_id": 12, "candidate_id": 1}
    assert call(s.port, "POST", "/votes", vote, headers={"Origin": f"http://{own}"})[0] == 202
    status, _, body = call(s.port, "POST", "/votes", vote, headers={"Origin": f"https://{own}"})
    assert status == 403 and error_of(body) == "origin_not_allowed"

    t = serve("--cors-origin", APP, "--public-origin", "https://votes.example")
    assert call(t.port, "POST", "/votes", vote, headers={"Origin": "https://votes.example"})[0] \
        == 202
    for origin, host in ((f"http://127.0.0.1:{t.port}", None),
                         ("http://rebound.example", "rebound.example"),
                         ("http://votes.example", "votes.example")):
        h = {"Origin": origin, **({"Host": host} if host else {})}
        status, _, body = call(t.port, "POST", "/votes", vote, headers=h)
        assert status == 403 and error_of(body) == "origin_not_allowed", origin
    assert len(events(env, s.topic, expected=1)) == 1 and len(events(env, t.topic, expected=1)) == 1
    p = run([bins.producer, "serve", "--listen", "127.0.0.1:1", "--brokers",
             env["KAFKA_BOOTSTRAP_SERVERS"], "--cors-origin", APP, "--public-origin",
             "votes.example"])
    assert p.returncode == 1 and "public-origin" in p.stdout + p.stderr


def test_cors_star_only_when_configured(serve):
    s = serve("--cors-origin", "*")
    status, h, _ = call(s.port, "POST", "/votes", {"user_id": 1, "candidate_id": 1},
                        headers={"Origin": "https://anyone.example"})
    assert status == 202 and h["access-control-allow-origin"] == "*"


@pytest.mark.parametrize("origin", ["app.example", "https://app.example/", "ftp://x", ""])
def test_cors_bad_origin_is_a_startup_error(bins, env, origin):
    p = run([bins.producer, "serve", "--listen", "127.0.0.1:1", "--brokers",
             env["KAFKA_BOOTSTRAP_SERVERS"], "--cors-origin", origin])
    assert p.returncode in (1, 2), p.stderr  # 2: refused by the flag parser, 1: at start-up
    assert "cors-origin" in p.stdout + p.stderr


# ---- identity -------------------------------------------------------------------


def hs(**c):
    return jwt.encode(claims(**c), SECRET, algorithm="HS256")


def test_jwt_hs256_votes_take_the_tokens_user(serve, env):
    s = serve("--jwt-secret-env", SECRET_ENV, "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE,
              "--database-url", env["DATABASE_URL"])
    tok = hs(sub="42")
    status, _, body = call(s.port, "POST", "/votes", {"candidate_id": 3}, headers=bearer(tok))
    assert status == 202, body
    assert json.loads(body)["token"] == "vote_lock:42:3"
    status, _, body = call(s.port, "POST", "/votes", {"user_id": 42, "candidate_id": 4},
                           headers=bearer(tok))
    assert status == 202, body
    status, _, body = call(s.port, "POST", "/votes", {"user_id": 43, "candidate_id": 5},
                           headers=bearer(tok))
    assert status == 403 and error_of(body) == "user_mismatch"
    # The status of one's own votes only (past the edge: 404, nothing consumed it yet).
    status, _, body = call(s.port, "GET", "/votes/43/3", headers=bearer(tok))
    assert status == 403 and error_of(body) == "user_mismatch"
    assert call(s.port, "GET", "/votes/42/3", headers=bearer(tok))[0] == 404
    status, h, _ = call(s.port, "GET", "/votes/42/3")
    assert status == 401 and h["www-authenticate"].startswith('Bearer error="invalid_token"')
    got = events(env, s.topic, expected=2)
    assert sorted((e["user_id"], e["candidate_id"]) for e in got) == [(42, 3), (42, 4)]


def test_jwt_rs256_and_es256(serve, env, keys):
    for name, alg in (("rsa", "RS256"), ("ec", "ES256")):
        s = serve("--jwt-key", keys[f"{name}_pem"])
        tok = jwt.encode(claims(sub=7), keys[name], algorithm=alg)
        status, _, body = call(s.port, "POST", "/votes", {"candidate_id": 1}, headers=bearer(tok))
        assert status == 202, (alg, body)
        # An HS256 token whose secret is the server's public key (alg confusion);
        # PyJWT refuses to make one, so it is put together by hand.
        pem = keys[f"{name}_pem"].read_bytes()
        head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        payload = b64(json.dumps(claims(sub=7)).encode())
        sig = b64(hmac.new(pem, (head + "." + payload).encode(), hashlib.sha256).digest())
        forged = f"{head}.{payload}.{sig}"
        status, h, body = call(s.port, "POST", "/votes", {"candidate_id": 2},
                               headers=bearer(forged))
        assert status == 401 and "alg" in json.loads(body)["detail"], (alg, body)
        assert len(events(env, s.topic, expected=1)) == 1





REJECTIONS = [
    ("missing", lambda k: {}),
    ("not bearer", lambda k: {"Authorization": "Basic dXNlcjpwYXNz"}),
    ("malformed", lambda k: bearer("not-a-token")),
    ("bad signature", lambda k: bearer(jwt.encode(claims(), "another-secret-of-32-bytes-or-more!!",
                                                  algorithm="HS256"))),
    ("expired", lambda k: bearer(hs(exp=int(time.time()) - 3600))),
    ("no exp", lambda k: bearer(hs(exp=None))),
    ("not yet valid", lambda k: bearer(hs(nbf=int(time.time()) + 3600))),
    ("wrong iss", lambda k: bearer(hs(iss="https://evil.example"))),
    ("wrong aud", lambda k: bearer(hs(aud="someone-else"))),
    ("alg none", lambda k: bearer(none_token())),
    ("other alg", lambda k: bearer(jwt.encode(claims(), k["rsa"], algorithm="RS256"))),
    ("bad user claim", lambda k: bearer(hs(sub="alice"))),
    ("user out of range", lambda k: bearer(hs(sub="9223372036854775808"))),
]


@pytest.mark.parametrize("case", [c[0] for c in REJECTIONS])
def test_jwt_rejections_are_401(serve_hs, env, keys, case):
    s = serve_hs
    headers = dict(REJECTIONS)[case](keys)
    status, h, body = call(s.port, "POST", "/votes", {"candidate_id": 1}, headers=headers)
    assert status == 401, (case, status, body)
    assert error_of(body) == "invalid_token"
    assert h["www-authenticate"].startswith('Bearer error="invalid_token"')
    assert SECRET not in body.decode()


@pytest.fixture(scope="module")
def serve_hs(bins, env, tmp_path_factory):
    os.environ[SECRET_ENV] = SECRET
    s = Server(bins, env, tmp_path_factory.mktemp("hs"), unique("t_edge_hs"),
               ["--jwt-secret-env", SECRET_ENV, "--jwt-issuer", ISSUER,
                "--jwt-audience", AUDIENCE])
    yield s
    assert s.stop() == 0
    # Not one refused request reached Kafka (the good ones of other tests do not use it).
    assert events(env, s.topic) == []


def test_jwt_idempotency_keys_are_per_user(serve, env, redis_client, prefix):
    s = serve("--jwt-secret-env", SECRET_ENV, "--redis-url", env["REDIS_URL"],
              "--key-prefix", prefix)
    key = {"Idempotency-Key": "same-key-for-both"}
    a = call(s.port, "POST", "/votes", {"candidate_id": 1}, headers={**bearer(hs(sub="1")), **key})
    b = call(s.port, "POST", "/votes", {"candidate_id": 1}, headers={**bearer(hs(sub="2")), **key})
    assert a[0] == 202 and b[0] == 202, (a, b)
    assert "idempotent-replayed" not in b[1]
    again = call(s.port, "POST", "/votes", {"candidate_id": 1},
                 headers={**bearer(hs(sub="1")), **key})
    assert again[0] == 202 and again[1].get("idempotent-replayed") == "true"
    assert len(events(env, s.topic, expected=2)) == 2


def test_idempotency_keys_have_a_namespace(serve, env, redis_client, prefix):
    """Identity on one producer, off on another, one Redis: an anonymous client
    that names user 42's key ("u42:k") gets a key of its own, not 42's answer."""
    ident = serve("--jwt-secret-env", SECRET_ENV, "--redis-url", env["REDIS_URL"],
                  "--key-prefix", prefix)
    anon = serve("--redis-url", env["REDIS_URL"], "--key-prefix", prefix, topic=ident.topic)
    mine = {**bearer(hs(sub="42")), "Idempotency-Key": "k"}
    a = call(ident.port, "POST", "/votes", {"candidate_id": 1}, headers=mine)
    assert a[0] == 202, a
    b = call(anon.port, "POST", "/votes", {"user_id": 42, "candidate_id": 1},
             headers={"Idempotency-Key": "u42:k"})
    assert b[0] == 202 and "idempotent-replayed" not in b[1], b
    assert json.loads(b[2])["event_id"] != json.loads(a[2])["event_id"]
    again = call(ident.port, "POST", "/votes", {"candidate_id": 1}, headers=mine)
    assert again[0] == 202 and again[1].get("idempotent-replayed") == "true"
    assert again[2] == a[2]
    assert redis_client.exists(prefix + "idem:u42:k", prefix + "idem:a:u42:k") == 2
    assert len(events(env, ident.topic, expected=2)) == 2


@pytest.mark.parametrize("args,err", [
    (["--jwt-secret-env", "TADAK_TEST_UNSET_SECRET"], "unset"),
    (["--jwt-key", "/nonexistent.pem"], "No such file"),
])
def test_jwt_configuration_errors(bins, env, args, err):
    p = run([bins.producer, "serve", "--listen", "127.0.0.1:1", "--brokers",
             env["KAFKA_BOOTSTRAP_SERVERS"], *args])
    assert p.returncode == 1 and err in p.stdout + p.stderr


# ---- rate limits ----------------------------------------------------------------


def metric(port, name):
    for line in call(port, "GET", "/metrics")[2].decode().splitlines():
        if line.startswith(name + " "):
            return int(float(line.split()[1]))
    return 0


def ratelimit_state(h):
    """The RateLimit field of draft -10: (remaining, reset seconds) of the "default" policy."""
    m = re.fullmatch(r'"default";r=(\d+);t=(\d+)', h["ratelimit"])
    assert m, h["ratelimit"]
    return int(m[1]), int(m[2])


def test_rate_limit_per_address(serve, env):
    # 1/m: no token comes back during the test, so the counts are exact.
    s = serve("--rate-limit", "1/m", "--rate-burst", "3", "--trusted-proxy", "127.0.0.3")
    answers = [call(s.port, "POST", "/votes", {"user_id": 1, "candidate_id": c})
               for c in range(1, 6)]
    assert [a[0] for a in answers] == [202, 202, 202, 429, 429]
    # draft-ietf-httpapi-ratelimit-headers-10: the policy (quota 3 a window of 180 s, the
    # time 1/m takes to refill 3) and the client's state; the -06 fields are gone.
    for _, h, _ in answers:
        assert h["ratelimit-policy"] == '"default";q=3;w=180'
        assert not {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset"} & set(h)
    state = [ratelimit_state(a[1]) for a in answers]
    assert [r for r, _ in state] == [2, 1, 0, 0, 0]
    assert all(1 <= t <= 180 for _, t in state), state
    status, h, body = answers[3]
    assert error_of(body) == "rate_limited"
    assert 1 <= int(h["retry-after"]) <= 60
    # X-Forwarded-For from an untrusted address changes nothing.
    assert call(s.port, "POST", "/votes", {"user_id": 1, "candidate_id": 9},
                headers={"X-Forwarded-For": "203.0.113.9"})[0] == 429
    # Another client is unaffected; so is one named by a trusted proxy.
    assert call(s.port, "POST", "/votes", {"user_id": 2, "candidate_id": 1},
                source="127.0.0.2")[0] == 202
    assert call(s.port, "POST", "/votes", {"user_id": 3, "candidate_id": 1}, source="127.0.0.3",
                headers={"X-Forwarded-For": "203.0.113.7"})[0] == 202
    # Probes are never limited.
    assert call(s.port, "GET", "/healthz")[0] == 200
    got = events(env, s.topic, expected=5)
    assert sorted((e["user_id"], e["candidate_id"]) for e in got) == \
        [(1, 1), (1, 2), (1, 3), (2, 1), (3, 1)]
    assert metric(s.port, 'tadak_http_rate_limited_total{reason="address"}') == 3


def call_lines(port, method, path, body, lines, source="127.0.0.1"):
    """One request whose header lines are sent exactly as given, repeats included."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=15, source_address=(source, 0))
    try:
        data = json.dumps(body).encode()
        conn.putrequest(method, path)
        for name, value in [("Content-Type", "application/json"),
                            ("Content-Length", str(len(data))), *lines]:
            conn.putheader(name, value)
        conn.endheaders(data)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_forwarded_for_every_line_counts(serve, env):
    """A proxy that appends its own X-Forwarded-For line (HAProxy's option
    forwardfor) leaves the client's forged line first: every line is read, so
    the forged one cannot pick the bucket."""
    s = serve("--rate-limit", "1/m", "--rate-burst", "2", "--trusted-proxy", "127.0.0.3")

    def via_proxy(forged, candidate, client="203.0.113.7"):
        lines = [("X-Forwarded-For", forged), ("X-Forwarded-For", client)]
        return call_lines(s.port, "POST", "/votes", {"user_id": 5, "candidate_id": candidate},
                          lines, source="127.0.0.3")[0]

    got = [via_proxy(f"198.51.100.{i}", i) for i in range(1, 5)]
    assert got == [202, 202, 429, 429]
    # The same three lines joined in one header say the same; another client is its own.
    assert call(s.port, "POST", "/votes", {"user_id": 5, "candidate_id": 9}, source="127.0.0.3",
                headers={"X-Forwarded-For": "198.51.100.9, 203.0.113.7"})[0] == 429
    assert via_proxy("203.0.113.7", 1, client="203.0.113.8") == 202
    assert len(events(env, s.topic, expected=3)) == 3


def test_ipv6_clients_are_limited_by_prefix(serve, env):
    """One host holds a whole /64: its addresses share one bucket, another /64 has its own
    (IPv6 addresses arrive here through a trusted proxy: serve listens on IPv4)."""
    s = serve("--rate-limit", "1/m", "--rate-burst", "2", "--trusted-proxy", "127.0.0.3")

    def from_(addr, candidate):
        return call(s.port, "POST", "/votes", {"user_id": 6, "candidate_id": candidate},
                    source="127.0.0.3", headers={"X-Forwarded-For": addr})[0]

    got = [from_(a, i) for i, a in enumerate(
        ["2001:db8:1:1::1", "2001:db8:1:1::2", "2001:db8:1:1:ffff:ffff:ffff:ffff"], 1)]
    assert got == [202, 202, 429]
    assert from_("2001:db8:1:2::1", 4) == 202  # the next /64
    # IPv4 clients stay one address each.
    assert [from_("198.51.100.1", 5), from_("198.51.100.2", 6)] == [202, 202]
    # A narrower prefix, when configured, splits the /64.
    t = serve("--rate-limit", "1/m", "--rate-burst", "1", "--trusted-proxy", "127.0.0.3",
              "--rate-ipv6-prefix", "128")
    assert [call(t.port, "POST", "/votes", {"user_id": 6, "candidate_id": 1}, source="127.0.0.3",
                 headers={"X-Forwarded-For": a})[0]
            for a in ("2001:db8::1", "2001:db8::2", "2001:db8::1")] == [202, 202, 429]


def test_refusals_count_against_the_address(serve, env):
    """A foreign Origin and a bad token cost their address a token; once its bucket
    is empty, the address is refused before any token is verified."""
    s = serve("--cors-origin", APP, "--jwt-secret-env", SECRET_ENV, "--rate-limit", "1/m",
              "--rate-burst", "3")
    evil = {"Origin": "https://evil.example"}
    good, bad = bearer(hs(sub="21")), bearer(hs(sub="21", iss=None) + "x")
    got = [call(s.port, "POST", "/votes", {"candidate_id": 1}, headers={**evil, **good})[0]
           for _ in range(5)]
    assert got == [403, 403, 403, 429, 429]
    # Another address: refused tokens count the same way.
    one = [call(s.port, "POST", "/votes", {"candidate_id": 1}, headers=h, source="127.0.0.2")[0]
           for h in (bad, {}, bad)]
    assert one == [401, 401, 401]
    invalid = metric(s.port, 'tadak_http_edge_refused_total{reason="token_invalid"}')
    # Its bucket is empty now: even a good token is refused, and nothing is verified.
    again = [call(s.port, "POST", "/votes", {"candidate_id": 1}, headers=h, source="127.0.0.2")
             for h in (bad, bad, good)]
    assert [a[0] for a in again] == [429, 429, 429]
    assert all(error_of(a[2]) == "rate_limited" and int(a[1]["retry-after"]) >= 1 for a in again)
    assert metric(s.port, 'tadak_http_edge_refused_total{reason="token_invalid"}') == invalid
    assert metric(s.port, 'tadak_http_rate_limited_total{reason="address"}') == 5
    # A good token from a third address: its user's bucket, its address' untouched.
    assert [call(s.port, "POST", "/votes", {"candidate_id": 2}, headers=good,
                 source="127.0.0.4")[0] for _ in range(4)] == [202, 202, 202, 429]
    assert call(s.port, "POST", "/votes", {"candidate_id": 3}, headers=bearer(hs(sub="22")),
                source="127.0.0.4")[0] == 202
    assert events(env, s.topic, expected=4)


def test_refusals_are_logged_once_a_second_with_a_count(serve):
    s = serve("--cors-origin", APP)
    origin = "https://" + "x" * 2000 + ".example"
    sent = 0

    def refuse():
        nonlocal sent
        status, _, _ = call(s.port, "POST", "/votes", {"user_id": 1, "candidate_id": 1},
                            headers={"Origin": origin})
        sent += 1
        assert status == 403

    def lines():
        return [r for r in parse_log(s.log.read_bytes()) if r["msg"] == "origin refused"]

    t0 = time.monotonic()
    for _ in range(50):
        refuse()
    assert 1 <= len(lines()) <= 2 + int(time.monotonic() - t0)  # one a second, not 50
    # Refused until the next line comes (at most a second later): it carries the count.
    first = len(lines())
    wait_for(lambda: refuse() or len(lines()) > first, timeout=10, interval=0.1,
             what="the next refusal line")
    got = lines()
    assert sum(int(r["count"]) for r in got) == sent, (sent, got)
    assert all(len(r["origin"]) <= 80 and int(r["origin_bytes"]) == len(origin) for r in got)


def test_rate_limit_per_verified_user(serve, env):
    s = serve("--jwt-secret-env", SECRET_ENV, "--rate-limit", "1/m", "--rate-burst", "2")
    one, two = bearer(hs(sub="11")), bearer(hs(sub="12"))
    got = [call(s.port, "POST", "/votes", {"candidate_id": c}, headers=one)[0] for c in (1, 2, 3)]
    assert got == [202, 202, 429]
    # Same address, another user: a bucket of its own.
    assert call(s.port, "POST", "/votes", {"candidate_id": 1}, headers=two)[0] == 202
    assert metric(s.port, 'tadak_http_rate_limited_total{reason="user"}') == 1
    assert len(events(env, s.topic, expected=3)) == 3


@pytest.mark.parametrize("rate", ["0/s", "ten", "5/x", "-1"])
def test_rate_limit_bad_values(bins, env, rate):
    p = run([bins.producer, "serve", "--listen", "127.0.0.1:1", "--brokers",
             env["KAFKA_BOOTSTRAP_SERVERS"], "--rate-limit", rate])
    assert p.returncode == 1 and "rate-limit" in p.stdout + p.stderr
