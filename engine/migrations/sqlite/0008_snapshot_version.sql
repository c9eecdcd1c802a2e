-- Issue 10.1: the snapshot is a cache written every few events, not on every commit. It is the
-- state as of `snapshot_version`; a reader folds in the events after it (`seq > snapshot_version`,
-- up to `version`). Rows written before this migration hold the snapshot of their version.
-- Never edit an applied migration: add a new one.

ALTER TABLE instances ADD COLUMN snapshot_version INTEGER NOT NULL DEFAULT 0;
UPDATE instances SET snapshot_version = version;
