ALTER TABLE booking_requests DROP CONSTRAINT booking_requests_reject_reason_check;
ALTER TABLE booking_requests ADD CONSTRAINT booking_requests_reject_reason_check
    CHECK (reject_reason IN ('sold_out', 'per_user_limit', 'event_closed', 'waitlist_closed',
                             'withdrawn'));
ALTER TABLE events DROP CONSTRAINT events_on_sale_before_start;
ALTER TABLE events DROP COLUMN on_sale_at;
