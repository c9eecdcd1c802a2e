-- Web sessions live in the store (issue 9.6), so that a restart or a second node does not sign
-- everyone out. The session id is kept only as its SHA-256 (the cookie holds the id); the
-- office and roles are those the session was made with: a change of either ends it.
-- Never edit an applied migration: add a new one.

CREATE TABLE web_sessions (
    id_hash    TEXT    PRIMARY KEY CHECK (length(id_hash) = 64),
    principal  TEXT    NOT NULL,
    office     TEXT    NOT NULL,
    roles      TEXT[]  NOT NULL,
    token_hash TEXT    NOT NULL,
    csrf       TEXT    NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX web_sessions_by_principal ON web_sessions (principal);
