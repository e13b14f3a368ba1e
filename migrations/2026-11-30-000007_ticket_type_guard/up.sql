-- The booking writer names a ticket type on every request and waitlist row it writes; a
-- foreign key there is one more check per row on the hot path (measured: the flash sale's
-- PostgreSQL CPU per decision grew with them). Those two keys go; bookings keep theirs. The rule
-- they enforced — no request or waitlist entry names a type that does not exist — is kept by
-- this trigger instead: a ticket type cannot be deleted while a request or waitlist entry names
-- it (deleting its event, which removes those rows too, still can).
ALTER TABLE booking_requests DROP CONSTRAINT booking_requests_ticket_type_id_fkey;
ALTER TABLE waitlist DROP CONSTRAINT waitlist_ticket_type_id_fkey;

CREATE FUNCTION ticket_types_guard_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM events WHERE id = OLD.event_id)
       AND (EXISTS (SELECT 1 FROM booking_requests WHERE ticket_type_id = OLD.id)
            OR EXISTS (SELECT 1 FROM waitlist WHERE ticket_type_id = OLD.id)) THEN
        RAISE EXCEPTION 'ticket type % has requests; hide it instead', OLD.id
            USING ERRCODE = '23503';
    END IF;
    RETURN OLD;
END
$$;
CREATE TRIGGER ticket_types_guard_delete BEFORE DELETE ON ticket_types
    FOR EACH ROW EXECUTE FUNCTION ticket_types_guard_delete();
