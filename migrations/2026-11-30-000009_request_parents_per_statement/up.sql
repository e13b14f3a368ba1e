-- The parents of a booking request, checked once per statement instead of once per row.
--
-- A request names its user and its event. As foreign keys those were two checks per row, each a
-- lookup and a FOR KEY SHARE lock of the parent row: the booking writer inserts ~1,000 requests
-- of one event per statement, so it locked the same event row 1,000 times, and the two checks
-- were more than half the cost of inserting a request (measured in psql on this box: 1,000
-- requests 19.5–22.3 ms with the keys, 8.9 ms without). The same rules, enforced by the schema
-- per statement (every write path, not only the writer's):
--
-- * an inserted request's user and event exist: each parent is locked FOR KEY SHARE once per
--   statement, as the foreign key locked it per row (a concurrent delete of the parent waits
--   for the inserting transaction), then every row is checked in one anti-join; a missing
--   parent raises 23503 foreign_key_violation, as the key did;
-- * a request's user and event never change (the keys allowed a change to another existing
--   parent; nothing ever did one), nor does the id of a user or an event that requests name;
-- * deleting a user or an event deletes their requests (ON DELETE CASCADE), and through them
--   their bookings and waitlist entries (whose composite keys to the request stay as they were).
ALTER TABLE booking_requests
    DROP CONSTRAINT booking_requests_user_id_fkey,
    DROP CONSTRAINT booking_requests_event_id_fkey;

CREATE FUNCTION booking_requests_parents_check() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    orphan record;
BEGIN
    PERFORM 1 FROM users WHERE id IN (SELECT DISTINCT user_id FROM new_requests)
        ORDER BY id FOR KEY SHARE;
    PERFORM 1 FROM events WHERE id IN (SELECT DISTINCT event_id FROM new_requests)
        ORDER BY id FOR KEY SHARE;
    SELECT n.id, n.user_id, n.event_id INTO orphan FROM new_requests n
     WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = n.user_id)
        OR NOT EXISTS (SELECT 1 FROM events e WHERE e.id = n.event_id)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'booking request % names user % and event %, one of which does not exist',
            orphan.id, orphan.user_id, orphan.event_id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER booking_requests_parents AFTER INSERT ON booking_requests
    REFERENCING NEW TABLE AS new_requests
    FOR EACH STATEMENT EXECUTE FUNCTION booking_requests_parents_check();

CREATE FUNCTION booking_requests_parents_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'a booking request''s user and event cannot change (request %)', OLD.id
        USING ERRCODE = 'foreign_key_violation';
END
$$;
CREATE TRIGGER booking_requests_parents_fixed BEFORE UPDATE OF user_id, event_id ON booking_requests
    FOR EACH ROW
    WHEN (OLD.user_id IS DISTINCT FROM NEW.user_id OR OLD.event_id IS DISTINCT FROM NEW.event_id)
    EXECUTE FUNCTION booking_requests_parents_fixed();

CREATE FUNCTION booking_requests_parent_id_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM booking_requests
                WHERE (TG_TABLE_NAME = 'users' AND user_id = OLD.id)
                   OR (TG_TABLE_NAME = 'events' AND event_id = OLD.id)) THEN
        RAISE EXCEPTION '% % is named by booking requests; its id cannot change', TG_TABLE_NAME, OLD.id
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER users_id_fixed BEFORE UPDATE OF id ON users
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION booking_requests_parent_id_fixed();
CREATE TRIGGER events_id_fixed BEFORE UPDATE OF id ON events
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION booking_requests_parent_id_fixed();

CREATE FUNCTION booking_requests_cascade() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_TABLE_NAME = 'users' THEN
        DELETE FROM booking_requests WHERE user_id IN (SELECT id FROM gone);
    ELSE
        DELETE FROM booking_requests WHERE event_id IN (SELECT id FROM gone);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER users_cascade_requests AFTER DELETE ON users
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION booking_requests_cascade();
CREATE TRIGGER events_cascade_requests AFTER DELETE ON events
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION booking_requests_cascade();
