ALTER TABLE booking_requests DROP CONSTRAINT booking_requests_reject_reason_check;
ALTER TABLE booking_requests ADD CONSTRAINT booking_requests_reject_reason_check
    CHECK (reject_reason IN ('sold_out', 'per_user_limit', 'event_closed', 'waitlist_closed',
                             'withdrawn', 'not_on_sale', 'ticket_type_unavailable', 'sales_ended'));
DROP INDEX booking_requests_admission_key;
ALTER TABLE booking_requests DROP COLUMN admission_rank;
