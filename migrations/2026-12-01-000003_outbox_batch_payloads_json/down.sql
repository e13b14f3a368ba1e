DROP VIEW outbox_all;

ALTER TABLE outbox_batches DROP CONSTRAINT outbox_batches_check;
ALTER TABLE outbox_batches ALTER COLUMN payloads TYPE JSONB[] USING payloads::jsonb[];
ALTER TABLE outbox_batches ADD CONSTRAINT outbox_batches_check
    CHECK (cardinality(kinds) > 0
        AND cardinality(user_ids) = cardinality(kinds)
        AND cardinality(event_ids) = cardinality(kinds)
        AND cardinality(payloads) = cardinality(kinds)
        AND array_position(kinds, NULL) IS NULL
        AND array_position(payloads, NULL) IS NULL);

DO $$
BEGIN
    ALTER TABLE outbox_batches ALTER COLUMN payloads SET COMPRESSION lz4;
EXCEPTION WHEN feature_not_supported THEN
    NULL;
END $$;

CREATE VIEW outbox_all AS
    SELECT id, kind, user_id, event_id, payload, status, created_at FROM outbox
    UNION ALL
    SELECT NULL::bigint, x.kind, x.user_id, x.event_id, x.payload, 'pending', b.created_at
    FROM outbox_batches b,
         UNNEST(b.kinds, b.user_ids, b.event_ids, b.payloads) AS x(kind, user_id, event_id, payload);
