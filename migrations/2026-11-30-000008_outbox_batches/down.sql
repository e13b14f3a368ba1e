-- Nothing written is lost: batches not expanded yet go into the outbox first.
INSERT INTO outbox (kind, user_id, event_id, payload, created_at)
SELECT x.kind, x.user_id, e.id, x.payload, b.created_at
FROM outbox_batches b
CROSS JOIN LATERAL UNNEST(b.kinds, b.user_ids, b.event_ids, b.payloads)
    WITH ORDINALITY AS x(kind, user_id, event_id, payload, n)
LEFT JOIN events e ON e.id = x.event_id
WHERE x.user_id IS NULL OR EXISTS (SELECT 1 FROM users u WHERE u.id = x.user_id)
ORDER BY b.id, x.n;
DROP VIEW outbox_all;
DROP TABLE outbox_batches;
