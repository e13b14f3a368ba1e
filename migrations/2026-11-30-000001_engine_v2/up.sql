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
CREATE FUNCTION engine_advance(ids BIGINT[], deltas INTEGER[], versions BIGINT[]) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    moved BIGINT;
BEGIN
    UPDATE events e
       SET reserved_seats = e.reserved_seats + d.delta, version = e.version + 1
      FROM UNNEST(ids, deltas, versions) AS d(id, delta, v)
     WHERE e.id = d.id AND e.version = d.v;
    GET DIAGNOSTICS moved = ROW_COUNT;
    IF moved <> cardinality(ids) THEN
        RAISE EXCEPTION 'event state moved under the writer (% of % events at the expected version)',
            moved, cardinality(ids) USING ERRCODE = '40001';
    END IF;
END
$$;
