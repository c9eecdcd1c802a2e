-- The civicflow store, PostgreSQL flavour. Tables live in the connection's search_path schema.
-- Never edit an applied migration: add a new one.

CREATE TABLE policies (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- publication order
    name          TEXT        NOT NULL,
    hash          TEXT        NOT NULL,
    version_label TEXT        NOT NULL,
    source        TEXT        NOT NULL,
    ir            JSONB       NOT NULL,
    published_at  TIMESTAMPTZ NOT NULL,
    UNIQUE (name, hash)
);

CREATE TABLE instances (
    id          TEXT        PRIMARY KEY,
    policy_name TEXT        NOT NULL,
    policy_hash TEXT        NOT NULL,
    version     BIGINT      NOT NULL CHECK (version >= 0),
    status      TEXT        NOT NULL,
    snapshot    JSONB       NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    FOREIGN KEY (policy_name, policy_hash) REFERENCES policies (name, hash)
);
CREATE INDEX instances_by_created ON instances (created_at, id);
CREATE INDEX instances_by_policy ON instances (policy_name, status, created_at, id);
CREATE INDEX instances_by_status ON instances (status, created_at, id);

-- The audit log. Append-only: the triggers refuse UPDATE, DELETE and TRUNCATE.
CREATE TABLE events (
    instance  TEXT        NOT NULL REFERENCES instances (id),
    seq       BIGINT      NOT NULL CHECK (seq >= 1),
    at        TIMESTAMPTZ NOT NULL,
    actor     TEXT        NOT NULL,
    role      TEXT,
    kind      TEXT        NOT NULL,
    payload   JSONB       NOT NULL,
    prev_hash TEXT        NOT NULL,
    hash      TEXT        NOT NULL,
    PRIMARY KEY (instance, seq)
);

CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'events are append-only';
END
$$;

CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION events_append_only();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION events_append_only();

CREATE TABLE timers (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    instance    TEXT        NOT NULL REFERENCES instances (id),
    node        TEXT        NOT NULL,
    kind        TEXT        NOT NULL,
    due_at      TIMESTAMPTZ NOT NULL,
    state       TEXT        NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'claimed', 'fired', 'cancelled')),
    lease_owner TEXT,
    lease_until TIMESTAMPTZ,
    fence       BIGINT      NOT NULL DEFAULT 0,
    payload     JSONB       NOT NULL
);
CREATE INDEX timers_due ON timers (due_at, id) WHERE state = 'pending';
CREATE INDEX timers_lease ON timers (lease_until, id) WHERE state = 'claimed';
CREATE INDEX timers_live_by_node ON timers (instance, node) WHERE state IN ('pending', 'claimed');

CREATE TABLE idempotency (
    principal       TEXT        NOT NULL,
    idempotency_key TEXT        NOT NULL,
    request_hash    TEXT        NOT NULL,
    response        JSONB       NOT NULL,
    instance        TEXT        NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (principal, idempotency_key)
);
