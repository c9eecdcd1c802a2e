-- The simulated clock of a rehearsal, shared by every node on this database (issue 9.6): one
-- row, moved forward only. Never edit an applied migration: add a new one.

CREATE TABLE simulated_clock (
    id  INTEGER PRIMARY KEY CHECK (id = 1),
    now INTEGER NOT NULL
);
