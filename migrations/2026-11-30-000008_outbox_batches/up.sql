-- One outbox row per writer transaction instead of one per notification (issue #12).
--
-- The booking writer used to insert one `outbox` row per notification in the decision's
-- transaction: a heap row with a ~350-byte payload, three index entries and two foreign-key
-- checks per decision, on the hot path of a sale. It now writes the same notifications as one
-- `outbox_batches` row (the columns as arrays; the payloads compress together), still in the
-- decision's transaction (invariant 5). The relay expands a batch into `outbox` rows — one
-- per notification, the delivery ledger as before — in the transaction that also hands them
-- over, so an expanded row is written once already published instead of written and then
-- updated to published.
--
-- The rules `outbox` enforces with its foreign keys are applied by the expansion: a
-- notification whose user was deleted meanwhile is dropped (as ON DELETE CASCADE drops it),
-- and one whose event was deleted keeps no event (as ON DELETE SET NULL).
CREATE TABLE outbox_batches (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    kinds      TEXT[]      NOT NULL,
    user_ids   BIGINT[]    NOT NULL,
    event_ids  BIGINT[]    NOT NULL,
    payloads   JSONB[]     NOT NULL,
    CHECK (cardinality(kinds) > 0
        AND cardinality(user_ids) = cardinality(kinds)
        AND cardinality(event_ids) = cardinality(kinds)
        AND cardinality(payloads) = cardinality(kinds)
        AND array_position(kinds, NULL) IS NULL
        AND array_position(payloads, NULL) IS NULL)
);

-- Every notification written, expanded or not: the outbox's rows, and the items of the batches
-- the relay has not expanded yet (pending, with no id of their own yet).
CREATE VIEW outbox_all AS
    SELECT id, kind, user_id, event_id, payload, status, created_at FROM outbox
    UNION ALL
    SELECT NULL::bigint, x.kind, x.user_id, x.event_id, x.payload, 'pending', b.created_at
    FROM outbox_batches b,
         UNNEST(b.kinds, b.user_ids, b.event_ids, b.payloads) AS x(kind, user_id, event_id, payload);
