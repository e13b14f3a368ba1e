ALTER TABLE outbox_batches ALTER COLUMN kinds SET COMPRESSION DEFAULT,
                           ALTER COLUMN user_ids SET COMPRESSION DEFAULT,
                           ALTER COLUMN event_ids SET COMPRESSION DEFAULT;
CREATE OR REPLACE FUNCTION engine_advance(ids BIGINT[], deltas INTEGER[], versions BIGINT[])
RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    current BIGINT;
BEGIN
    SELECT count(*) INTO current
      FROM (SELECT e.id, e.version FROM events e WHERE e.id = ANY(ids)
             ORDER BY e.id FOR NO KEY UPDATE) AS locked
      JOIN UNNEST(ids, versions) AS d(id, v) ON d.id = locked.id AND d.v = locked.version;
    IF current <> cardinality(ids) THEN
        RAISE EXCEPTION 'event state moved under the writer (% of % events at the expected version)',
            current, cardinality(ids) USING ERRCODE = '40001';
    END IF;
    UPDATE events e
       SET reserved_seats = e.reserved_seats + d.delta, version = e.version + 1
      FROM UNNEST(ids, deltas) AS d(id, delta)
     WHERE e.id = d.id;
END
$$;
