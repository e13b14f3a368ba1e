DROP FUNCTION engine_apply_payments(BIGINT[], TEXT[]);
DROP FUNCTION engine_transition(BIGINT[], TEXT[], TEXT[]);
DROP TABLE payment_webhooks;
DROP TABLE payments;
DROP FUNCTION payments_append_only();
DROP TABLE payment_sessions;
DELETE FROM bookings WHERE status NOT IN ('confirmed', 'cancelled');
UPDATE bookings SET status = 'cancelled' WHERE status IN ('refund_pending', 'refunded');
DROP INDEX bookings_event_live_idx;
CREATE INDEX bookings_event_confirmed_idx ON bookings (event_id, user_id) WHERE status = 'confirmed';
DROP INDEX bookings_held_expiry_idx;
ALTER TABLE bookings
    DROP CONSTRAINT bookings_refund_paid_check,
    DROP CONSTRAINT bookings_held_expires_check,
    DROP CONSTRAINT bookings_cancelled_at_check,
    DROP CONSTRAINT bookings_status_check,
    DROP COLUMN paid_at,
    DROP COLUMN expires_at,
    ADD CONSTRAINT bookings_status_check CHECK (status IN ('confirmed', 'cancelled')),
    ADD CONSTRAINT bookings_check CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL));
ALTER TABLE bookings DROP COLUMN ticket_type_id;
ALTER TABLE waitlist DROP COLUMN ticket_type_id;
ALTER TABLE booking_requests DROP COLUMN ticket_type_id;
DELETE FROM booking_requests WHERE reject_reason IN ('ticket_type_unavailable', 'sales_ended');
ALTER TABLE booking_requests DROP CONSTRAINT booking_requests_reject_reason_check;
ALTER TABLE booking_requests ADD CONSTRAINT booking_requests_reject_reason_check
    CHECK (reject_reason IN ('sold_out', 'per_user_limit', 'event_closed', 'waitlist_closed',
                             'withdrawn', 'not_on_sale'));
DROP TRIGGER events_default_ticket_type ON events;
DROP FUNCTION events_default_ticket_type();
DROP TABLE ticket_types;
ALTER TABLE events
    DROP COLUMN refund_until_hours,
    DROP COLUMN payment_provider,
    DROP COLUMN hold_secs,
    DROP COLUMN checkout;
