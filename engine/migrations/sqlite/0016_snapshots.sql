-- Issue 10: the snapshot out of the instance's row. SQLite rewrites a whole row on UPDATE, and
-- a snapshot is kilobytes (2.4 kB for a five-step chain): every version bump rewrote it, one
-- row filled a page, so every commit dirtied a page of its own for the instance. The row now
-- holds the version, status and times (~150 bytes, many to a page); the snapshot, written every
-- few events (`snapshot_due`), lives here, as of `instances.snapshot_version`, and is written only
-- with the commits that write one. PostgreSQL keeps the column: it stores a large value apart
-- from its row (TOAST) and does not copy it when the row is updated.
-- Never edit an applied migration: add a new one.

CREATE TABLE snapshots (
    instance TEXT PRIMARY KEY REFERENCES instances (id),
    body     TEXT NOT NULL
);

INSERT INTO snapshots (instance, body) SELECT id, snapshot FROM instances;

ALTER TABLE instances DROP COLUMN snapshot;
