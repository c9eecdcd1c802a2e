-- R0.2: working-day calendar years added at run time (`civicflow calendar add`,
-- `POST /v1/admin/calendars`), so a restart keeps them. `body` is the year's file as added (the
-- bundled JSON format, checked before it is stored); a year added again replaces the row.
-- Never edit an applied migration: add a new one.

CREATE TABLE calendar_years (
    year       INTEGER     PRIMARY KEY,
    body       TEXT        NOT NULL,
    added_at   TIMESTAMPTZ NOT NULL,
    added_by   TEXT        NOT NULL
);
