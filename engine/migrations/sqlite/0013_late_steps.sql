-- Issue 12.6: the lateness index oversight reads — which offices were late, on which procedures,
-- how often, over time — without replaying histories. One row per role (and its bound office)
-- that was late when a deadline was breached (the `overdue` event), written in that event's
-- commit.
-- Never edit an applied migration: add a new one.

CREATE TABLE late_steps (
    instance  TEXT NOT NULL,
    node      TEXT NOT NULL,
    role      TEXT NOT NULL,
    office    TEXT,
    due_at    INTEGER NOT NULL,
    late_at   INTEGER NOT NULL,
    PRIMARY KEY (instance, node, late_at, role)
);
CREATE INDEX late_steps_at ON late_steps (late_at);

-- A database with breaches recorded before this table has it built from their histories at the
-- next start (`Runtime::build_late_steps`); one without any is built already.
INSERT INTO derived_builds (name, built_at) SELECT 'late_steps', 0 WHERE NOT EXISTS (SELECT 1 FROM events WHERE kind = 'overdue');
