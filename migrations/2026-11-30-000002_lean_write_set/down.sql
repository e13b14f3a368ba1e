CREATE INDEX waitlist_user_idx ON waitlist (user_id, event_id);
ALTER TABLE waitlist
    DROP CONSTRAINT waitlist_request_fkey,
    ADD CONSTRAINT waitlist_request_id_fkey FOREIGN KEY (request_id) REFERENCES booking_requests (id) ON DELETE CASCADE,
    ADD CONSTRAINT waitlist_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    ADD CONSTRAINT waitlist_event_id_fkey FOREIGN KEY (event_id) REFERENCES events (id) ON DELETE CASCADE;
ALTER TABLE bookings
    DROP CONSTRAINT bookings_request_fkey,
    ADD CONSTRAINT bookings_request_id_fkey FOREIGN KEY (request_id) REFERENCES booking_requests (id) ON DELETE CASCADE,
    ADD CONSTRAINT bookings_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
    ADD CONSTRAINT bookings_event_id_fkey FOREIGN KEY (event_id) REFERENCES events (id) ON DELETE CASCADE;
ALTER TABLE booking_requests DROP CONSTRAINT booking_requests_id_user_event_key;
