"""tadak-consumer's Redis scripts after Redis lost its script cache (SCRIPT
FLUSH, a restart): the first EVALSHA that gets NOSCRIPT is sent again once
with the script's body (EVAL), and the gate loads all its scripts again
before its next call - whichever call (lock release or takeover) met the
NOSCRIPT. An EVAL caches only its own script, so without the reload the
other script pays a NOSCRIPT and an EVAL (an extra round trip) later.

Counted with Redis' INFO commandstats, so the stack's Redis must serve no
one else while a test runs (the suite runs one test at a time).
"""
from conftest import free_port, produce, wait_for
from test_consumer import finish_logged, in_log, start_logged, token, vote
from test_consumer_edges import own_table
from test_consumer_group import scrape
from test_consumer_redis import owner_of


def script_calls(r):
    """How often Redis has run EVAL and EVALSHA, and refused an EVALSHA (NOSCRIPT)."""
    s = r.info("commandstats")
    return {"eval": s.get("cmdstat_eval", {}).get("calls", 0),
            "evalsha": s.get("cmdstat_evalsha", {}).get("calls", 0),
            "noscript": s.get("cmdstat_evalsha", {}).get("failed_calls", 0)}


def test_release_after_script_flush_loads_every_script_again(bins, env, topic, db, prefix,
                                                             tmp_path, redis_client):
    """After a SCRIPT FLUSH, three rows PostgreSQL refuses (a CHECK) are three
    lock releases, then a dead owner's lock is taken over: one NOSCRIPT and
    one EVAL in all (the first release); the other releases and the takeover
    are plain EVALSHAs."""
    own_table(db, check="CHECK (candidate_id < 1000)")
    votes = [vote(n, 1 + n % 7) for n in range(1, 101)]
    for i, u in enumerate((77, 78, 79)):
        votes.insert(20 + 30 * i, vote(u, 5000))
    dead = "deadhost:1:abcd1234"
    port = free_port()
    proc = start_logged(bins, env, topic, db, prefix, tmp_path,
                        extra=("--metrics", f"127.0.0.1:{port}"))
    try:
        owner_of(proc)  # started: the gate has loaded its scripts
        redis_client.script_flush()
        before = script_calls(redis_client)
        produce(env, topic, votes)
        wait_for(lambda: db.count() == 100, 30, "the 100 valid votes")
        wait_for(lambda: 'tadak_db_rejected_total{sqlstate="23514"} 3' in scrape(port), 30,
                 "the three rejections")
        redis_client.set(prefix + token(500, 1), f"P {dead} 3000e370-2202-5a5c-8e6f-874e518ef9a8",
                         px=60000)
        produce(env, topic, [vote(500, 1)])
        wait_for(lambda: db.count() == 101, 30, "the vote behind a dead owner's lock")
        wait_for(in_log(proc, "took over locks of dead owners"), 30, "the takeover logged")
        after = script_calls(redis_client)
    finally:
        s, err = finish_logged(proc)
    assert s["inserted"] == 101 and s["dead_lettered"] == 3
    # Each refused row's lock was given back (compare-and-delete ran).
    for u in (77, 78, 79):
        assert redis_client.get(prefix + token(u, 5000)) is None
    delta = {k: after[k] - before[k] for k in after}
    assert delta["evalsha"] >= 4, delta  # a release per refused row, the takeover
    assert delta["noscript"] == 1, delta
    assert delta["eval"] == 1, delta


def test_takeover_after_script_flush_is_sent_again_with_the_body(bins, env, topic, db, prefix,
                                                                 tmp_path, redis_client):
    """After a SCRIPT FLUSH, two locks of a dead owner (met in one batch, as a
    rule): both takeover calls get NOSCRIPT, both go again with the body and
    take their lock; a third one later is a plain EVALSHA (the scripts were
    loaded again)."""
    dead = "deadhost:1:abcd1234"

    def lock(u):
        redis_client.set(prefix + token(u, 1), f"P {dead} 3000e370-2202-5a5c-8e6f-874e518ef9a8",
                         px=60000)

    proc = start_logged(bins, env, topic, db, prefix, tmp_path)
    try:
        owner_of(proc)
        lock(1)
        lock(2)
        redis_client.script_flush()
        before = script_calls(redis_client)
        produce(env, topic, [vote(1, 1), vote(2, 1)], keys=[b"k", b"k"])
        wait_for(lambda: db.count() == 2, 30, "the two votes behind dead owners' locks")
        first = script_calls(redis_client)
        lock(3)
        produce(env, topic, [vote(3, 1)])
        wait_for(lambda: db.count() == 3, 30, "the third vote behind a dead owner's lock")
        after = script_calls(redis_client)
    finally:
        s, err = finish_logged(proc)
    assert s["inserted"] == 3 and s["retries"] == 0
    assert all(redis_client.get(prefix + token(u, 1)) == b"1" for u in (1, 2, 3))
    # One batch as a rule (2, 2, 2); should the votes come in two, the second finds the
    # scripts loaded again (1 NOSCRIPT, 1 EVAL): either way every NOSCRIPT went again as EVAL.
    d = {k: first[k] - before[k] for k in first}
    assert d["evalsha"] == 2 and d["noscript"] >= 1 and d["eval"] == d["noscript"], d
    assert {k: after[k] - first[k] for k in after} == {"eval": 0, "evalsha": 1, "noscript": 0}
