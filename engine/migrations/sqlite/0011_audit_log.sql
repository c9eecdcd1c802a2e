-- Issue 12.1: the global, append-only Merkle tree (RFC 6962 / RFC 9162 hashing) over every event
-- of every instance, in commit order. Each row is a leaf: the event (`instance`, `seq`) and its
-- leaf hash, SHA-256(0x00 ‖ the event's canonical encoding, civicflow-event-v1), at its index in
-- the tree. The last leaf a commit appends also carries the tree's frontier after it (`peaks`:
-- the roots of the perfect subtrees along the right edge, 32 bytes each, largest first), so an
-- append reads the last row and writes rows at the end of this one table — no other page — and
-- the root is the last row's peaks folded. No secondary index: one written at random places in
-- every commit cost a third of SQLite's throughput (BENCHMARKS.md). The per-instance chain of
-- `events` stays.
-- Never edit an applied migration: add a new one.

CREATE TABLE audit_leaves (
    idx       INTEGER PRIMARY KEY,
    instance  TEXT   NOT NULL,
    seq       INTEGER NOT NULL,
    leaf      BLOB  NOT NULL,
    peaks     BLOB
);

-- The events written before the tree: appended once, oldest first, at the next start
-- (`Runtime::build_audit_log`), each row removed as its event is appended.
CREATE TABLE audit_backfill (
    instance  TEXT   NOT NULL,
    seq       INTEGER NOT NULL,
    PRIMARY KEY (instance, seq)
);
INSERT INTO audit_backfill (instance, seq) SELECT instance, seq FROM events;

CREATE TRIGGER audit_leaves_no_update BEFORE UPDATE ON audit_leaves
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_leaves_no_delete BEFORE DELETE ON audit_leaves
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
