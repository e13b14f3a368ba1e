DROP TRIGGER events_refuse_truncate ON events;
DROP TRIGGER users_refuse_truncate ON users;
DROP TRIGGER events_delete_requests ON events;
DROP TRIGGER users_delete_requests ON users;
DROP TRIGGER booking_requests_refuse_truncate ON booking_requests;
DROP FUNCTION refuse_truncate_while_referenced();
DROP TRIGGER booking_requests_delete_rows ON booking_requests;
DROP FUNCTION delete_referencing_rows();
DROP TRIGGER waitlist_check_request ON waitlist;
DROP TRIGGER bookings_check_request ON bookings;
DROP FUNCTION check_request_of_new_rows();
DROP TRIGGER booking_requests_check_references ON booking_requests;
DROP FUNCTION booking_requests_check_references();
DROP TRIGGER events_keep_key ON events;
DROP TRIGGER users_keep_key ON users;
DROP TRIGGER waitlist_keep_key ON waitlist;
DROP TRIGGER bookings_keep_key ON bookings;
DROP TRIGGER booking_requests_keep_key ON booking_requests;
DROP FUNCTION keep_key_columns();
ALTER TABLE booking_requests
    ADD CONSTRAINT booking_requests_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    ADD CONSTRAINT booking_requests_event_id_fkey FOREIGN KEY (event_id) REFERENCES events (id) ON DELETE CASCADE;
ALTER TABLE booking_requests
    ADD CONSTRAINT booking_requests_id_user_event_key UNIQUE (id, user_id, event_id);
ALTER TABLE bookings ADD CONSTRAINT bookings_request_fkey FOREIGN KEY (request_id, user_id, event_id)
    REFERENCES booking_requests (id, user_id, event_id) ON DELETE CASCADE;
ALTER TABLE waitlist ADD CONSTRAINT waitlist_request_fkey FOREIGN KEY (request_id, user_id, event_id)
    REFERENCES booking_requests (id, user_id, event_id) ON DELETE CASCADE;
