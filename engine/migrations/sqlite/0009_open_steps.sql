-- Issue 10.6: who has what to do (待办). One row per open step and reader, written with every
-- commit from the state (`core::open_step_changes`), so an inbox is an index read instead of a
-- replay of every running instance. `kind` says what the reader is to the step: a role that acts
-- on it (`office` is the office the role is bound to, NULL for any office holding it), a role
-- whose office is not named yet, a principal it was delegated to, a role it was escalated to, the
-- role that starts the next cycle (node `~cycle`). Times are INTEGER microseconds, as elsewhere.
-- Never edit an applied migration: add a new one.

CREATE TABLE open_steps (
    instance TEXT    NOT NULL REFERENCES instances (id),
    node     TEXT    NOT NULL,
    kind     TEXT    NOT NULL
             CHECK (kind IN ('acts', 'awaits_binding', 'delegate', 'escalated', 'starts_cycle')),
    who      TEXT    NOT NULL,
    office   TEXT,
    due_at   INTEGER,
    overdue  INTEGER NOT NULL CHECK (overdue IN (0, 1)),
    PRIMARY KEY (instance, node, kind, who)
) WITHOUT ROWID;
CREATE INDEX open_steps_by_reader ON open_steps (who, due_at);

-- Tables built from the instances' states rather than by a migration: a database that held
-- instances before this migration has its open steps built once by the runtime at start
-- (`Runtime::build_open_steps`); an empty one needs nothing.
CREATE TABLE derived_builds (
    name     TEXT    PRIMARY KEY,
    built_at INTEGER NOT NULL
);
INSERT INTO derived_builds (name, built_at) SELECT 'open_steps', 0 WHERE NOT EXISTS (SELECT 1 FROM instances);
