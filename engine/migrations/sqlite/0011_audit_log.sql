-- Issue 12.1: the global, append-only Merkle tree (RFC 6962 / RFC 9162 hashing) over every event
-- of every instance, in commit order. `audit_leaves` holds each event's leaf hash
-- (SHA-256(0x00 ‖ the event's canonical encoding, civicflow-event-v1)) at its index in the tree;
-- `audit_tree` the tree's size and the roots of the perfect subtrees along its right edge
-- (`peaks`, 32 bytes each, largest first): what a commit needs to append in O(log n) and to give
-- the root. The per-instance chain of `events` stays.
-- Never edit an applied migration: add a new one.

CREATE TABLE audit_leaves (
    idx       INTEGER PRIMARY KEY,
    instance  TEXT   NOT NULL,
    seq       INTEGER NOT NULL,
    leaf      BLOB  NOT NULL
);
CREATE UNIQUE INDEX audit_leaves_event ON audit_leaves (instance, seq);

CREATE TABLE audit_tree (
    id     INTEGER PRIMARY KEY CHECK (id = 1),
    size   INTEGER NOT NULL,
    peaks  BLOB  NOT NULL
);
INSERT INTO audit_tree (id, size, peaks) VALUES (1, 0, x'');

CREATE TRIGGER audit_leaves_no_update BEFORE UPDATE ON audit_leaves
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;

CREATE TRIGGER audit_leaves_no_delete BEFORE DELETE ON audit_leaves
BEGIN
    SELECT RAISE(ABORT, 'the audit log is append-only');
END;
