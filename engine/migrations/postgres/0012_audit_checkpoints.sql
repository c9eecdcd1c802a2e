-- Issue 12.2: the signed checkpoints of the global tree (C2SP tlog-checkpoint in a signed note,
-- Ed25519), made every N events or T seconds, whichever comes first. `note` is the signed note's
-- text as served at /v1/audit/checkpoint; `size` and `root` repeat what it says, for queries.
-- The signing key is never here: it lives in a file beside the database (`--audit-key`).
-- Never edit an applied migration: add a new one.

CREATE TABLE audit_checkpoints (
    size     BIGINT PRIMARY KEY,
    root     BYTEA  NOT NULL,
    note     TEXT  NOT NULL,
    made_at  TIMESTAMPTZ  NOT NULL
);
