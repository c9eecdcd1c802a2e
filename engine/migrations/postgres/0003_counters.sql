-- Counters raised by commits under a cap (R3.7: the places taken in a cycle's quota, and the
-- instances of a cycle). Raised in the same transaction as the events that take the place: the
-- upsert's WHERE is re-checked against the row a concurrent commit just raised.
CREATE TABLE counters (
    key   TEXT   PRIMARY KEY,
    value BIGINT NOT NULL CHECK (value >= 0)
);
