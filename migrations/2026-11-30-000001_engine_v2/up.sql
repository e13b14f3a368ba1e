-- Engine v2: the per-event writer keeps each event's state in memory and pipelines its
-- transactions. Two things it needs from the schema:
--
-- 1. The price a waitlisted buyer was quoted (DESIGN invariant 6: nobody pays more than the
--    price quoted when they asked). Existing entries keep today's price as their quote.
ALTER TABLE waitlist ADD COLUMN price_quoted BIGINT;
UPDATE waitlist w SET price_quoted = e.price FROM events e WHERE e.id = w.event_id;
ALTER TABLE waitlist ALTER COLUMN price_quoted SET NOT NULL;
ALTER TABLE waitlist ADD CONSTRAINT waitlist_price_quoted_check CHECK (price_quoted >= 0);

-- 2. One statement that moves a set of events forward by one version each, and fails the whole
--    transaction (SQLSTATE 40001) unless every event is still at the version the writer decided
--    against. A write behind the writer's back (a cancellation, a capacity change, a host's
--    edit) bumps the version, so a decision made on stale state can never commit. The writer
--    then reloads and decides again; the `CHECK` on reserved_seats still backs invariant 1.
--
--    The rows are locked first: under READ COMMITTED an UPDATE filtering on `version` would judge
--    the row by the statement's snapshot, from before the writer's previous transaction
--    committed, and skip it instead of waiting. `FOR NO KEY UPDATE` waits for that transaction
--    and returns the row as it committed; the UPDATE after it runs on a fresh snapshot.
CREATE FUNCTION engine_advance(ids BIGINT[], deltas INTEGER[], versions BIGINT[]) RETURNS VOID
LANGUAGE plpgsql AS $$
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
