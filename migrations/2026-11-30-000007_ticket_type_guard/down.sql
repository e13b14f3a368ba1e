DROP TRIGGER ticket_types_guard_delete ON ticket_types;
DROP FUNCTION ticket_types_guard_delete();
ALTER TABLE waitlist ADD CONSTRAINT waitlist_ticket_type_id_fkey
    FOREIGN KEY (ticket_type_id) REFERENCES ticket_types (id) ON DELETE CASCADE;
ALTER TABLE booking_requests ADD CONSTRAINT booking_requests_ticket_type_id_fkey
    FOREIGN KEY (ticket_type_id) REFERENCES ticket_types (id) ON DELETE CASCADE;
