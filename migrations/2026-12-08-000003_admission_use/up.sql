-- Waiting-room admissions are single-use: a request that took seats or a waitlist place with an
-- admission stores the admission's rank, and no other request of the event may use it. The
-- event's writer refuses a second use (`admission_used`); this index is the database's own
-- word on it.
ALTER TABLE booking_requests ADD COLUMN admission_rank BIGINT;
CREATE UNIQUE INDEX booking_requests_admission_key ON booking_requests (event_id, admission_rank)
    WHERE admission_rank IS NOT NULL;
ALTER TABLE booking_requests DROP CONSTRAINT booking_requests_reject_reason_check;
ALTER TABLE booking_requests ADD CONSTRAINT booking_requests_reject_reason_check
    CHECK (reject_reason IN ('sold_out', 'per_user_limit', 'event_closed', 'waitlist_closed',
                             'withdrawn', 'not_on_sale', 'ticket_type_unavailable', 'sales_ended',
                             'admission_used'));
