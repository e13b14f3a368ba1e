-- Read paths of the buyer's booking history and of the analytics endpoints.

-- History: the buyer's waitlist entries and rejected requests, newest first, next to
-- bookings_user_history_idx (bookings). The rejected index is partial: it stays as small as
-- the rejections however many requests a buyer made.
CREATE INDEX waitlist_user_history_idx ON waitlist (user_id, created_at DESC, id DESC);
CREATE INDEX booking_requests_user_rejected_idx ON booking_requests (user_id, requested_at DESC, id DESC)
    WHERE status = 'rejected';

-- Per-event statistics (a host's events, one event, time windows) without reading every
-- booking; also serves the cascade when an event row is deleted.
CREATE INDEX bookings_event_created_idx ON bookings (event_id, created_at) INCLUDE (status, seats, cost);
