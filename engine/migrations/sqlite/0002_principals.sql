-- Principals of the HTTP API (who acts: a name, an office, roles) and their bearer tokens.
-- A token is stored only as the SHA-256 of its text (64 lower-case hex digits); the token itself
-- is shown once when created and never kept. Never edit an applied migration: add a new one.

CREATE TABLE principals (
    name       TEXT    PRIMARY KEY,
    office     TEXT    NOT NULL,
    roles      TEXT    NOT NULL,  -- a JSON array of role names
    created_at INTEGER NOT NULL
);

CREATE TABLE tokens (
    token_hash TEXT    PRIMARY KEY CHECK (length(token_hash) = 64),
    principal  TEXT    NOT NULL REFERENCES principals (name),
    created_at INTEGER NOT NULL
);
CREATE INDEX tokens_by_principal ON tokens (principal);
