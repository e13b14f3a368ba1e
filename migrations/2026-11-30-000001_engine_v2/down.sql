DROP FUNCTION engine_advance(BIGINT[], INTEGER[], BIGINT[]);
ALTER TABLE waitlist DROP COLUMN price_quoted;
