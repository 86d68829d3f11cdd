-- tadak schema. Applied by `tadak-consumer migrate`, and by a consumer that starts
-- where table votes does not exist yet (an existing one is only verified); every
-- statement is idempotent so any number of consumers may run it at once.
--
-- The UNIQUE token is the final arbiter of "one row per vote": Redis only
-- stops bursts early, PostgreSQL's ON CONFLICT (token) DO NOTHING decides.
CREATE TABLE IF NOT EXISTS votes (
    id              bigserial PRIMARY KEY,
    token           text        NOT NULL UNIQUE,
    user_id         bigint      NOT NULL,
    candidate_id    bigint      NOT NULL,
    event_id        uuid        NOT NULL,
    kafka_partition int,
    kafka_offset    bigint,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS votes_candidate_idx ON votes (candidate_id);

-- Which database this is: a random id made once, when the schema is first
-- applied (one row). Consumers claim their Redis key prefix for
-- <system identifier>/<database name>#<id> (<prefix>tadak:database), so a
-- database dropped and created again under the same name is another one. A
-- physical copy (a restored base backup, a promoted replica, a disk snapshot)
-- copies the id too: give the copy its own with `tadak-consumer new-identity`.
CREATE TABLE IF NOT EXISTS tadak_identity (
    one_row boolean PRIMARY KEY DEFAULT true CHECK (one_row),
    id      uuid    NOT NULL DEFAULT gen_random_uuid()
);
INSERT INTO tadak_identity DEFAULT VALUES ON CONFLICT DO NOTHING;
