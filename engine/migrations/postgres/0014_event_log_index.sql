-- Issue 12.3: where each event is in the global tree, on the event's own row, so the leaves of
-- one instance are found by its primary key (the audit trail, an event's proof) instead of by
-- reading the whole log. Written with the event; NULL for events written before this migration
-- (found by reading the log, as before). The tree's leaves stay the truth: a verifier never
-- trusts this column, and a bundle lists the log's leaves.
-- Never edit an applied migration: add a new one.

ALTER TABLE events ADD COLUMN log_index BIGINT;
