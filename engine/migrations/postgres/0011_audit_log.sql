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
    idx       BIGINT PRIMARY KEY,
    instance  TEXT   NOT NULL,
    seq       BIGINT NOT NULL,
    leaf      BYTEA  NOT NULL,
    peaks     BYTEA
);

-- The events written before the tree: appended once, oldest first, at the next start
-- (`Runtime::build_audit_log`), each row removed as its event is appended.
CREATE TABLE audit_backfill (
    instance  TEXT   NOT NULL,
    seq       BIGINT NOT NULL,
    PRIMARY KEY (instance, seq)
);
INSERT INTO audit_backfill (instance, seq) SELECT instance, seq FROM events;

CREATE FUNCTION audit_leaves_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END
$$;

CREATE TRIGGER audit_leaves_append_only BEFORE UPDATE OR DELETE ON audit_leaves
    FOR EACH ROW EXECUTE FUNCTION audit_leaves_append_only();
CREATE TRIGGER audit_leaves_no_truncate BEFORE TRUNCATE ON audit_leaves
    FOR EACH STATEMENT EXECUTE FUNCTION audit_leaves_append_only();
