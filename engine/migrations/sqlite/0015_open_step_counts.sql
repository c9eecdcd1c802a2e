-- Issue 10.6: how many open steps each reader key lists, kept by the open-step rows' own inserts
-- and deletes (triggers: no statement of the commit's own), so an inbox's total is one row read
-- instead of a count over the key's index range (7 ms at 100,000 steps, nearly all of an inbox
-- read). A key whose last step closed keeps a row at 0.
-- Never edit an applied migration: add a new one.

CREATE TABLE open_step_counts (
    reader TEXT    PRIMARY KEY,
    n      INTEGER NOT NULL CHECK (n >= 0)
) WITHOUT ROWID;

INSERT INTO open_step_counts (reader, n) SELECT reader, COUNT(*) FROM open_steps GROUP BY reader;

CREATE TRIGGER open_steps_counted_in AFTER INSERT ON open_steps
BEGIN
    INSERT INTO open_step_counts (reader, n) VALUES (NEW.reader, 1)
    ON CONFLICT (reader) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER open_steps_counted_out AFTER DELETE ON open_steps
BEGIN
    UPDATE open_step_counts SET n = n - 1 WHERE reader = OLD.reader;
END;

CREATE TRIGGER open_steps_never_updated BEFORE UPDATE ON open_steps
BEGIN
    SELECT RAISE(ABORT, 'open-step rows are only inserted and deleted (their counts follow)');
END;
