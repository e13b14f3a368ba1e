DROP INDEX IF EXISTS bookings_event_created_idx;
DROP INDEX IF EXISTS booking_requests_user_rejected_idx;
DROP INDEX IF EXISTS waitlist_user_history_idx;
