-- The writer's notification payloads stored as `json` instead of `jsonb` (issue #12).
--
-- A profile of the flash sale had `jsonb_recv` at ~12% of PostgreSQL's CPU: every payload the
-- writer sends is parsed and rebuilt as jsonb inside the decision's transaction, though nothing
-- reads it there. `json` only checks that the text is JSON (the schema still refuses anything
-- else); the relay turns each payload into the `outbox` row's jsonb when it expands a batch,
-- after the sale. In psql, 500 rows of 128 payloads: 483–526 ms as jsonb[], 300–302 ms as
-- json[], 263 ms as unchecked text[].
DROP VIEW outbox_all;

ALTER TABLE outbox_batches DROP CONSTRAINT outbox_batches_check;
ALTER TABLE outbox_batches ALTER COLUMN payloads TYPE JSON[] USING payloads::json[];
-- `json` has no equality operator: the no-NULL rule looks at the payloads as text.
ALTER TABLE outbox_batches ADD CONSTRAINT outbox_batches_check
    CHECK (cardinality(kinds) > 0
        AND cardinality(user_ids) = cardinality(kinds)
        AND cardinality(event_ids) = cardinality(kinds)
        AND cardinality(payloads) = cardinality(kinds)
        AND array_position(kinds, NULL) IS NULL
        AND array_position(payloads::text[], NULL) IS NULL);

DO $$
BEGIN
    ALTER TABLE outbox_batches ALTER COLUMN payloads SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    RAISE NOTICE 'this PostgreSQL has no lz4; outbox_batches.payloads keeps pglz';
END $$;

CREATE VIEW outbox_all AS
    SELECT id, kind, user_id, event_id, payload, status, created_at FROM outbox
    UNION ALL
    SELECT NULL::bigint, x.kind, x.user_id, x.event_id, x.payload::jsonb, 'pending', b.created_at
    FROM outbox_batches b,
         UNNEST(b.kinds, b.user_ids, b.event_ids, b.payloads) AS x(kind, user_id, event_id, payload);
