-- Issue 11.5: migration plans, computed (`civicflow migrate plan`, `POST /v1/migrations`),
-- reviewed, then applied by id. `body` is the plan as JSON text: the versions, the renames and,
-- for every running instance, how it maps or why it is refused. A plan is never changed; applying
-- it moves each instance in a commit of its own, so an interrupted application is resumed by
-- applying the plan again.
-- Never edit an applied migration: add a new one.

CREATE TABLE migration_plans (
    id          TEXT        PRIMARY KEY,
    policy      TEXT        NOT NULL,
    from_hash   TEXT        NOT NULL,
    to_hash     TEXT        NOT NULL,
    body        TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    created_by  TEXT        NOT NULL
);
