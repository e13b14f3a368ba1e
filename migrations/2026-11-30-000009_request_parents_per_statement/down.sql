DROP TRIGGER events_cascade_requests ON events;
DROP TRIGGER users_cascade_requests ON users;
DROP FUNCTION booking_requests_cascade();
DROP TRIGGER events_id_fixed ON events;
DROP TRIGGER users_id_fixed ON users;
DROP FUNCTION booking_requests_parent_id_fixed();
DROP TRIGGER booking_requests_parents_fixed ON booking_requests;
DROP FUNCTION booking_requests_parents_fixed();
DROP TRIGGER booking_requests_parents ON booking_requests;
DROP FUNCTION booking_requests_parents_check();
ALTER TABLE booking_requests
    ADD CONSTRAINT booking_requests_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    ADD CONSTRAINT booking_requests_event_id_fkey
        FOREIGN KEY (event_id) REFERENCES events (id) ON DELETE CASCADE;
