-- The civicflow store, SQLite flavour. Times are INTEGER microseconds since 1970-01-01 UTC;
-- JSON is TEXT. Never edit an applied migration: add a new one.

CREATE TABLE policies (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,  -- publication order
    name          TEXT    NOT NULL,
    hash          TEXT    NOT NULL,
    version_label TEXT    NOT NULL,
    source        TEXT    NOT NULL,
    ir            TEXT    NOT NULL,
    published_at  INTEGER NOT NULL,
    UNIQUE (name, hash)
);

CREATE TABLE instances (
    id          TEXT    PRIMARY KEY,
    policy_name TEXT    NOT NULL,
    policy_hash TEXT    NOT NULL,
    version     INTEGER NOT NULL CHECK (version >= 0),
    status      TEXT    NOT NULL,
    snapshot    TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    FOREIGN KEY (policy_name, policy_hash) REFERENCES policies (name, hash)
);
CREATE INDEX instances_by_created ON instances (created_at, id);
CREATE INDEX instances_by_policy ON instances (policy_name, status, created_at, id);
CREATE INDEX instances_by_status ON instances (status, created_at, id);

-- The audit log. Append-only: the triggers refuse UPDATE and DELETE.
CREATE TABLE events (
    instance  TEXT    NOT NULL REFERENCES instances (id),
    seq       INTEGER NOT NULL CHECK (seq >= 1),
    at        INTEGER NOT NULL,
    actor     TEXT    NOT NULL,
    role      TEXT,
    kind      TEXT    NOT NULL,
    payload   TEXT    NOT NULL,
    prev_hash TEXT    NOT NULL,
    hash      TEXT    NOT NULL,
    PRIMARY KEY (instance, seq)
) WITHOUT ROWID;

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'events are append-only');
END;

CREATE TABLE timers (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    instance    TEXT    NOT NULL REFERENCES instances (id),
    node        TEXT    NOT NULL,
    kind        TEXT    NOT NULL,
    due_at      INTEGER NOT NULL,
    state       TEXT    NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'claimed', 'fired', 'cancelled')),
    lease_owner TEXT,
    lease_until INTEGER,
    fence       INTEGER NOT NULL DEFAULT 0,
    payload     TEXT    NOT NULL
);
CREATE INDEX timers_due ON timers (due_at, id) WHERE state = 'pending';
CREATE INDEX timers_lease ON timers (lease_until, id) WHERE state = 'claimed';
CREATE INDEX timers_live_by_node ON timers (instance, node) WHERE state IN ('pending', 'claimed');

CREATE TABLE idempotency (
    principal       TEXT    NOT NULL,
    idempotency_key TEXT    NOT NULL,
    request_hash    TEXT    NOT NULL,
    response        TEXT    NOT NULL,
    instance        TEXT    NOT NULL,
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (principal, idempotency_key)
);
