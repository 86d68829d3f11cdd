-- tadak schema. Applied by the consumer at start and by `tadak-consumer migrate`;
-- every statement is idempotent so any number of consumers may run it at once.
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
