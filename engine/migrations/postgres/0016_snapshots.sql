-- Issue 10: the snapshot out of the instance's row, as SQLite did (its migration 0016). Every
-- commit updates its instance's row; with the snapshot (1–2.5 kB of jsonb, under the 2 kB past
-- which PostgreSQL moves a value out of its row) kept in it, each update copied the snapshot
-- into a new row version, which seldom fitted the page: 16 % of the engine bench's updates
-- were heap-only, the rest wrote a new entry in each of the table's four indexes. The row now
-- holds the version, status and times; the snapshot, written every few events (`snapshot_due`),
-- lives here as of `instances.snapshot_version`; and each page of `instances` keeps room for
-- new versions of its rows, so a version bump that changes no indexed column stays on its page
-- and touches no index (HOT).
-- Never edit an applied migration: add a new one.

CREATE TABLE snapshots (
    instance TEXT  PRIMARY KEY REFERENCES instances (id),
    body     JSONB NOT NULL
);

INSERT INTO snapshots (instance, body) SELECT id, snapshot FROM instances;

ALTER TABLE instances DROP COLUMN snapshot;
ALTER TABLE instances SET (fillfactor = 80);
