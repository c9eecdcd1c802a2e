-- Issue 10.6: how many open steps each reader key lists, kept by the open-step rows' own inserts
-- and deletes (statement triggers over the rows each statement changed: no statement of the
-- commit's own), so an inbox's total is one row read instead of a count over the key's index
-- range. Every writer of `open_steps` takes the audit log's advisory lock first, so the counts'
-- rows are locked in one order. A key whose last step closed keeps a row at 0.
-- Never edit an applied migration: add a new one.

CREATE TABLE open_step_counts (
    reader TEXT COLLATE "C" PRIMARY KEY,
    n      BIGINT NOT NULL CHECK (n >= 0)
);

INSERT INTO open_step_counts (reader, n) SELECT reader, COUNT(*) FROM open_steps GROUP BY reader;

CREATE FUNCTION open_steps_count_in() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO open_step_counts (reader, n)
    SELECT reader, COUNT(*) FROM inserted GROUP BY reader ORDER BY reader
    ON CONFLICT (reader) DO UPDATE SET n = open_step_counts.n + EXCLUDED.n;
    RETURN NULL;
END $$;

CREATE FUNCTION open_steps_count_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE open_step_counts AS c SET n = c.n - d.n
    FROM (SELECT reader, COUNT(*) AS n FROM deleted GROUP BY reader) AS d
    WHERE c.reader = d.reader;
    RETURN NULL;
END $$;

CREATE FUNCTION open_steps_never_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'open-step rows are only inserted and deleted (their counts follow)';
END $$;

CREATE TRIGGER open_steps_counted_in AFTER INSERT ON open_steps
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION open_steps_count_in();
CREATE TRIGGER open_steps_counted_out AFTER DELETE ON open_steps
    REFERENCING OLD TABLE AS deleted FOR EACH STATEMENT EXECUTE FUNCTION open_steps_count_out();
CREATE TRIGGER open_steps_never_updated BEFORE UPDATE ON open_steps
    FOR EACH STATEMENT EXECUTE FUNCTION open_steps_never_updated();
CREATE TRIGGER open_steps_never_truncated BEFORE TRUNCATE ON open_steps
    FOR EACH STATEMENT EXECUTE FUNCTION open_steps_never_updated();
