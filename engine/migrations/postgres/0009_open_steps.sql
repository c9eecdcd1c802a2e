-- Issue 10.6: who has what to do (待办). One row per open step and reader, written with every
-- commit from the state (`core::open_step_changes`), so an inbox is an index read instead of a
-- replay of every running instance. `reader` is the key `core::Reader::key` writes: `a:ROLE`
-- (the role acts, from any office), `a:ROLE@OFFICE` (from the office it is bound to), `w:ROLE`
-- (its office is not named yet), `d:NAME` (delegated to), `e:ROLE` (escalated to), `c:ROLE`
-- (starts the next cycle, node `~cycle`). `due_key` orders the steps: the deadline in
-- microseconds since 1970-01-01 UTC, 9223372036854775807 for a step without one (last); an
-- inbox reads each of its keys in that order from the index and merges them (byte order, as
-- SQLite and the merge compare text: hence `COLLATE "C"`).
-- Never edit an applied migration: add a new one.

CREATE TABLE open_steps (
    instance TEXT    COLLATE "C" NOT NULL REFERENCES instances (id),
    node     TEXT    COLLATE "C" NOT NULL,
    reader   TEXT    COLLATE "C" NOT NULL,
    due_key  BIGINT NOT NULL,
    overdue  BOOLEAN NOT NULL,
    PRIMARY KEY (instance, node, reader)
);
CREATE INDEX open_steps_by_reader ON open_steps (reader, due_key, instance, node);

-- Tables built from the instances' states rather than by a migration: a database that held
-- instances before this migration has its open steps built once by the runtime at start
-- (`Runtime::build_open_steps`); an empty one needs nothing.
CREATE TABLE derived_builds (
    name     TEXT    PRIMARY KEY,
    built_at TIMESTAMPTZ NOT NULL
);
INSERT INTO derived_builds (name, built_at) SELECT 'open_steps', now() WHERE NOT EXISTS (SELECT 1 FROM instances);
