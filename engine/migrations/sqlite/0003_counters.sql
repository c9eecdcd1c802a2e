-- Counters raised by commits under a cap (R3.7: the places taken in a cycle's quota, and the
-- instances of a cycle). Raised in the same transaction as the events that take the place.
CREATE TABLE counters (
    key   TEXT    PRIMARY KEY,
    value INTEGER NOT NULL CHECK (value >= 0)
);
