-- Issue 12.6: the lateness index oversight reads — which offices were late, on which procedures,
-- how often, over time — without replaying histories. One row per role (and its bound office)
-- that was late when a deadline was breached (the `overdue` event), written in that event's
-- commit. Breaches recorded before this migration are not in it.
-- Never edit an applied migration: add a new one.

CREATE TABLE late_steps (
    instance  TEXT NOT NULL,
    node      TEXT NOT NULL,
    role      TEXT NOT NULL,
    office    TEXT,
    due_at    TIMESTAMPTZ NOT NULL,
    late_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (instance, node, late_at, role)
);
CREATE INDEX late_steps_at ON late_steps (late_at);
