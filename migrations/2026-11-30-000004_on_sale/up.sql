-- Waiting room #14, first step: an on-sale time per event. Requests that arrive before it are
-- rejected by the event's writer with reason `not_on_sale` (stored like every rejection).
ALTER TABLE events ADD COLUMN on_sale_at TIMESTAMPTZ;
ALTER TABLE events ADD CONSTRAINT events_on_sale_before_start
    CHECK (on_sale_at IS NULL OR on_sale_at < starts_at);
ALTER TABLE booking_requests DROP CONSTRAINT booking_requests_reject_reason_check;
ALTER TABLE booking_requests ADD CONSTRAINT booking_requests_reject_reason_check
    CHECK (reject_reason IN ('sold_out', 'per_user_limit', 'event_closed', 'waitlist_closed',
                             'withdrawn', 'not_on_sale'));
