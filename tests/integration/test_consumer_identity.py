"""Which database a Redis key prefix belongs to (issue #21, item 4).

<prefix>tadak:database names the database whose votes the markers under the
prefix stand for: "<system identifier>/<database name>#<id>", the id a random
UUID the schema stores in table tadak_identity (common/store.h). A consumer
claims the prefix at connect, and checks the claim again with every heartbeat
and every batch: a key gone (evicted, flushed) is claimed again at once; a key
naming another database - which claimed the prefix meanwhile - makes the
consumer stop trusting Redis (PostgreSQL decides every vote), so no vote is
settled by another database's marker without a row of its own.
"""
import psycopg
import pytest

from conftest import fresh_database, produce, run, unique, wait_for
from test_consumer import (consume, consumer_args, create_topic, finish_logged, in_log,
                           start_logged, token, tokens_in, vote)

DBKEY = "tadak:database"


@pytest.fixture
def db2(env):
    yield from fresh_database(env, "tadak_test2")


def identity(db):
    """What a consumer of db claims (the format store_identity documents;
    without table tadak_identity, as before it, "<system id>/<name>")."""
    row = db.rows("select (select system_identifier from pg_control_system()), current_database(),"
                  " to_regclass('tadak_identity') is not null")[0]
    if not row[2]:
        return f"{row[0]}/{row[1]}"
    return f"{row[0]}/{row[1]}#{db.rows('select id::text from tadak_identity')[0][0]}"


def migrate(bins, db):
    p = run([bins.consumer, "migrate", "--database-url", db.url])
    assert p.returncode == 0, p.stderr[-2000:]


def refused(p, prefix):
    assert p.returncode == 1, p.stderr[-3000:]
    assert "already holds markers of database" in p.stderr and prefix in p.stderr, p.stderr[-3000:]
    assert p.stdout == ""


def test_deleted_identity_key_is_claimed_again_and_refuses_another_database(
        bins, env, topic, db, db2, prefix, redis_client, tmp_path):
    produce(env, topic, [vote(u, 1) for u in range(1, 21)])
    a = start_logged(bins, env, topic, db, prefix, tmp_path)
    try:
        wait_for(lambda: db.count() == 20, 60, "consumer A's votes")
        assert redis_client.get(prefix + DBKEY).decode() == identity(db)
        redis_client.delete(prefix + DBKEY)  # a FLUSHDB or an eviction
        wait_for(lambda: redis_client.get(prefix + DBKEY) == identity(db).encode(), 10,
                 "consumer A to claim its prefix again")
        topic2 = unique("t_other_db")
        produce(env, topic2, [vote(u, 1) for u in range(1, 21)])
        refused(run(consumer_args(bins, env, topic2, db2, prefix, group=unique("g_b")),
                    timeout=120), prefix)
        assert db2.count() == 0
    finally:
        s, err = finish_logged(a)
    assert s["inserted"] == 20
    assert err.count("had lost its database key, claimed it again") == 1


def test_prefix_taken_by_another_database_stops_trusting_redis(
        bins, env, topic, db, db2, prefix, redis_client, tmp_path):
    """Between the key's loss and consumer A's next check, consumer B of
    another database claims the prefix and records votes A has not seen yet:
    A must not take B's done markers for its own."""
    first, later = [(u, 1) for u in range(1, 21)], [(u, 1) for u in range(100, 130)]
    produce(env, topic, [vote(u, c) for u, c in first])
    a = start_logged(bins, env, topic, db, prefix, tmp_path)
    try:
        wait_for(lambda: db.count() == 20, 60, "consumer A's first votes")
        migrate(bins, db2)
        redis_client.set(prefix + DBKEY, identity(db2))  # B won the race for the key
        wait_for(in_log(a, "no longer names our database"), 10, "consumer A to notice")
        topic2 = unique("t_other_db")
        produce(env, topic2, [vote(u, c) for u, c in later])
        s_b, _ = consume(bins, env, topic2, db2, prefix, group=unique("g_b"))
        assert s_b["inserted"] == 30 and s_b["dup_redis"] == 0
        # B's done markers for the same votes now sit under the prefix.
        assert all(redis_client.get(prefix + token(u, c)) == b"1" for u, c in later)
        produce(env, topic, [vote(u, c) for u, c in later])
        wait_for(lambda: db.count() == 50, 60, "consumer A to record the votes B also had")
        assert a.poll() is None, a.log.read_text()[-3000:]
    finally:
        s, err = finish_logged(a)
    assert tokens_in(db) == {token(u, c) for u, c in first + later}
    assert s["inserted"] == 50 and s["dup_redis"] == 0
    assert err.count("msg=\"redis key prefix no longer names our database") == 1


def test_database_cloned_from_a_template_is_refused(bins, env, topic, db, prefix):
    """CREATE DATABASE ... TEMPLATE copies tadak_identity's row; the name still
    tells the two apart (this passed before the id, too)."""
    produce(env, topic, [vote(u, 1) for u in range(1, 21)])
    assert consume(bins, env, topic, db, prefix)[0]["inserted"] == 20
    clone = unique("tadak_clone")
    with psycopg.connect(db.admin_url, autocommit=True) as conn:
        conn.execute(f'create database "{clone}" template "{db.name}"')
    try:
        cdb = type(db)(db.admin_url, clone)
        assert identity(cdb) != identity(db) and identity(cdb).split("#")[1] == \
            identity(db).split("#")[1]
        refused(run(consumer_args(bins, env, topic, cdb, prefix, group=unique("g_clone")),
                    timeout=120), prefix)
    finally:
        with psycopg.connect(db.admin_url, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{clone}" with (force)')


def test_database_created_again_under_its_name_is_refused(bins, env, topic, db, prefix):
    """Same cluster, same name, a new and empty database: before the random id
    it had the old one's identity, and the old markers settled its votes as
    duplicates without a row."""
    produce(env, topic, [vote(u, 1) for u in range(1, 21)])
    assert consume(bins, env, topic, db, prefix)[0]["inserted"] == 20
    with psycopg.connect(db.admin_url, autocommit=True) as conn:
        conn.execute(f'drop database "{db.name}" with (force)')
        conn.execute(f'create database "{db.name}"')
    p = run(consumer_args(bins, env, topic, db, prefix, group=unique("g_again")), timeout=120)
    refused(p, prefix)
    assert db.count() == 0


def test_new_identity_gives_a_copy_its_own(bins, env, topic, db, prefix):
    produce(env, topic, [vote(u, 1) for u in range(1, 11)])
    assert consume(bins, env, topic, db, prefix)[0]["inserted"] == 10
    before = identity(db)
    p = run([bins.consumer, "new-identity", "--database-url", db.url])
    assert p.returncode == 0, p.stderr[-2000:]
    after = identity(db)
    assert after != before and after.split("#")[0] == before.split("#")[0]
    assert after in p.stderr  # the new identity is logged
    refused(run(consumer_args(bins, env, topic, db, prefix, group=unique("g_copy")),
                timeout=120), prefix)


def test_claim_of_an_older_tadak_is_upgraded(bins, env, topic, db, prefix, redis_client):
    """Before the random id a prefix was claimed with "<system id>/<name>": a
    consumer of that database still accepts it, and writes the full identity."""
    migrate(bins, db)
    legacy = identity(db).split("#")[0]
    redis_client.set(prefix + DBKEY, legacy)
    produce(env, topic, [vote(u, 1) for u in range(1, 11)])
    assert consume(bins, env, topic, db, prefix)[0]["inserted"] == 10
    assert redis_client.get(prefix + DBKEY).decode() == identity(db)


def test_role_that_cannot_make_the_id_table_falls_back(bins, env, topic, db, prefix,
                                                       redis_client):
    """The users' own table and a role that may write votes but not create
    tables (PostgreSQL 15: no CREATE on schema public): the consumer warns and
    claims "<system id>/<name>", as before the id; it does not stop."""
    role = unique("tadak_writer")
    with psycopg.connect(db.url, autocommit=True) as conn:
        conn.execute("create table votes (token text not null unique, user_id bigint not null,"
                     " candidate_id bigint not null, event_id uuid not null,"
                     " kafka_partition int, kafka_offset bigint)")
        conn.execute(f'create role "{role}" login')
        conn.execute(f'grant insert, select on votes to "{role}"')
        conn.execute(f'revoke create on schema public from "{role}"')
    writer = type(db)(db.admin_url, db.name)
    writer.url = db.url.replace("://tadak@", f"://{role}@", 1)
    assert writer.url != db.url
    try:
        produce(env, topic, [vote(u, 1) for u in range(1, 11)])
        s, err = consume(bins, env, topic, writer, prefix)
        assert s["inserted"] == 10 and db.count() == 10
        assert "cannot read or make table tadak_identity" in err
        assert redis_client.get(prefix + DBKEY).decode() == identity(db)  # no "#<id>"
        assert "#" not in identity(db)
    finally:
        with psycopg.connect(db.url, autocommit=True) as conn:
            conn.execute(f'revoke all on votes from "{role}"')
            conn.execute(f'drop role "{role}"')
