-- The references of the booking writer's rows, checked once per statement instead of once per
-- row (issue #12): a request's user and event, and a booking's or waitlist entry's request.
--
-- The booking writer inserts a batch of requests (~100 rows) in one statement, and their
-- bookings and waitlist entries in one statement each. As foreign keys,
-- `booking_requests.user_id → users`, `booking_requests.event_id → events` and
-- `bookings`/`waitlist (request_id, user_id, event_id) → booking_requests` ran three RI queries
-- per decision, each a whole executor start-up and shutdown: in a profile of the flash sale
-- the foreign-key checks of the writer's inserts were ~35% of PostgreSQL's CPU, and in psql a
-- 128-row insert took 3.3–3.9 ms with the two keys, 1.9–2.2 ms with the statement-level check
-- below and 1.5–1.8 ms with none.
--
-- The same rules, enforced by the schema:
-- * a request's user and event exist: after each INSERT statement, every distinct user and
--   event of the new rows is looked up and locked FOR KEY SHARE, as the RI check locks them (a
--   concurrent delete waits for this transaction, then cascades to its rows; a delete that
--   committed first makes the insert fail). The error is the foreign key's: SQLSTATE 23503,
--   constraint `booking_requests_user_id_fkey` / `booking_requests_event_id_fkey`;
-- * a booking's or waitlist entry's request exists with the same user and event (the
--   composite key of the lean write set, and its unique index, go), checked and locked the
--   same way per statement; the error names `bookings_request_fkey` / `waitlist_request_fkey`;
-- * deleting a user or an event deletes their requests, and deleting a request its booking
--   and waitlist entries (ON DELETE CASCADE);
-- * a request keeps its id, user and event, and a booking or waitlist entry its request, user
--   and event (stricter than the keys' NO ACTION, which let them move to another parent);
-- * a user's or an event's id does not change, and TRUNCATE of `users` or `events` is refused
--   while requests exist, of `booking_requests` while bookings or waitlist entries exist (as
--   the foreign keys refused it).
-- Not covered, unlike the foreign key: a delete of a user or an event in a REPEATABLE READ or
-- SERIALIZABLE transaction does not see requests committed after its snapshot (the RI
-- cascade's cross-check); the application deletes neither.
ALTER TABLE booking_requests
    DROP CONSTRAINT booking_requests_user_id_fkey,
    DROP CONSTRAINT booking_requests_event_id_fkey;
ALTER TABLE bookings DROP CONSTRAINT bookings_request_fkey;
ALTER TABLE waitlist DROP CONSTRAINT waitlist_request_fkey;
-- The unique key the composite foreign keys pointed at: the check below probes the primary key
-- and compares the user and event on the row, one index entry fewer per request.
ALTER TABLE booking_requests DROP CONSTRAINT booking_requests_id_user_event_key;

-- Keys that never change: the columns named as the trigger's arguments keep their values (a
-- request its id, user and event; a booking or waitlist entry its request, user and event; a
-- user or an event its id). Fires only on an UPDATE that sets one of them.
CREATE FUNCTION keep_key_columns() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    col TEXT;
BEGIN
    FOREACH col IN ARRAY TG_ARGV LOOP
        IF to_jsonb(NEW) -> col IS DISTINCT FROM to_jsonb(OLD) -> col THEN
            RAISE EXCEPTION 'a row of "%" keeps its %: other rows reference it by them', TG_TABLE_NAME, array_to_string(TG_ARGV, ', ')
                USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME;
        END IF;
    END LOOP;
    RETURN NEW;
END $$;

CREATE TRIGGER booking_requests_keep_key BEFORE UPDATE OF id, user_id, event_id ON booking_requests
    FOR EACH ROW EXECUTE FUNCTION keep_key_columns('id', 'user_id', 'event_id');
CREATE TRIGGER bookings_keep_key BEFORE UPDATE OF request_id, user_id, event_id ON bookings
    FOR EACH ROW EXECUTE FUNCTION keep_key_columns('request_id', 'user_id', 'event_id');
CREATE TRIGGER waitlist_keep_key BEFORE UPDATE OF request_id, user_id, event_id ON waitlist
    FOR EACH ROW EXECUTE FUNCTION keep_key_columns('request_id', 'user_id', 'event_id');
CREATE TRIGGER users_keep_key BEFORE UPDATE OF id ON users
    FOR EACH ROW EXECUTE FUNCTION keep_key_columns('id');
CREATE TRIGGER events_keep_key BEFORE UPDATE OF id ON events
    FOR EACH ROW EXECUTE FUNCTION keep_key_columns('id');

CREATE FUNCTION booking_requests_check_references() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    wanted_users  BIGINT[];
    wanted_events BIGINT[];
BEGIN
    SELECT COALESCE(array_agg(DISTINCT user_id), '{}'), COALESCE(array_agg(DISTINCT event_id), '{}')
      INTO wanted_users, wanted_events
      FROM new_requests;
    IF (SELECT count(*) FROM (SELECT 1 FROM users WHERE id = ANY (wanted_users) FOR KEY SHARE) l)
       <> cardinality(wanted_users) THEN
        RAISE EXCEPTION 'insert on table "booking_requests" violates foreign key constraint "booking_requests_user_id_fkey"'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'booking_requests_user_id_fkey',
                  TABLE = 'booking_requests', DETAIL = 'A user of the new requests does not exist.';
    END IF;
    IF (SELECT count(*) FROM (SELECT 1 FROM events WHERE id = ANY (wanted_events) FOR KEY SHARE) l)
       <> cardinality(wanted_events) THEN
        RAISE EXCEPTION 'insert on table "booking_requests" violates foreign key constraint "booking_requests_event_id_fkey"'
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'booking_requests_event_id_fkey',
                  TABLE = 'booking_requests', DETAIL = 'An event of the new requests does not exist.';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER booking_requests_check_references
    AFTER INSERT ON booking_requests
    REFERENCING NEW TABLE AS new_requests
    FOR EACH STATEMENT EXECUTE FUNCTION booking_requests_check_references();

-- Bookings and waitlist entries: each (request, user, event) of the new rows is a request.
CREATE FUNCTION check_request_of_new_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    wanted BIGINT;
    found  BIGINT;
BEGIN
    -- One pass over the distinct keys: one index probe and row lock per request, in one
    -- statement (no RI query per row); a key with no request counts in `wanted` only.
    SELECT count(*), count(l.found) INTO wanted, found
      FROM (SELECT DISTINCT request_id, user_id, event_id FROM new_rows) n
      LEFT JOIN LATERAL (SELECT true AS found FROM booking_requests r
                          WHERE r.id = n.request_id AND r.user_id = n.user_id AND r.event_id = n.event_id
                            FOR KEY SHARE) l ON true;
    IF found <> wanted THEN
        RAISE EXCEPTION 'insert on table "%" violates foreign key constraint "%_request_fkey"', TG_TABLE_NAME, TG_TABLE_NAME
            USING ERRCODE = 'foreign_key_violation', CONSTRAINT = TG_TABLE_NAME || '_request_fkey',
                  TABLE = TG_TABLE_NAME, DETAIL = 'A row names a request that does not exist, or another user or event than its request.';
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER bookings_check_request
    AFTER INSERT ON bookings
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION check_request_of_new_rows();
CREATE TRIGGER waitlist_check_request
    AFTER INSERT ON waitlist
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION check_request_of_new_rows();

-- ON DELETE CASCADE: deleting rows deletes the rows that reference them, given as the
-- trigger's arguments in pairs (table, column holding the deleted row's id).
CREATE FUNCTION delete_referencing_rows() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 0 .. TG_NARGS - 1 BY 2 LOOP
        EXECUTE format('DELETE FROM %I WHERE %I IN (SELECT id FROM gone)', TG_ARGV[i], TG_ARGV[i + 1]);
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER booking_requests_delete_rows
    AFTER DELETE ON booking_requests
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION delete_referencing_rows('bookings', 'request_id', 'waitlist', 'request_id');
CREATE TRIGGER users_delete_requests
    AFTER DELETE ON users
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION delete_referencing_rows('booking_requests', 'user_id');
CREATE TRIGGER events_delete_requests
    AFTER DELETE ON events
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION delete_referencing_rows('booking_requests', 'event_id');

-- TRUNCATE is refused while the tables named as the trigger's arguments have rows that
-- reference the truncated one (as the foreign keys refused it).
CREATE FUNCTION refuse_truncate_while_referenced() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    referencing TEXT;
    found       BOOLEAN;
BEGIN
    FOREACH referencing IN ARRAY TG_ARGV LOOP
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I)', referencing) INTO found;
        IF found THEN
            RAISE EXCEPTION 'cannot truncate "%": rows of "%" reference it', TG_TABLE_NAME, referencing
                USING ERRCODE = 'foreign_key_violation', TABLE = TG_TABLE_NAME;
        END IF;
    END LOOP;
    RETURN NULL;
END $$;

CREATE TRIGGER users_refuse_truncate BEFORE TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate_while_referenced('booking_requests');
CREATE TRIGGER events_refuse_truncate BEFORE TRUNCATE ON events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate_while_referenced('booking_requests');
CREATE TRIGGER booking_requests_refuse_truncate BEFORE TRUNCATE ON booking_requests
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate_while_referenced('bookings', 'waitlist');
