-- The waitlist folded into the request row (issue #12: "one row per request as the ledger,
-- waitlist state folded into it with a partial FIFO index").
--
-- A waitlist entry was a second row per waiting request — its heap tuple, four index entries
-- (primary key, request id, FIFO, user history) and the per-statement check that its request
-- exists — written for three decisions in four in the flash sale, and deleted or updated again
-- when it was served, next to the request row that already held the same user, event, seats
-- waiting, partial flag and ticket type. Now the request row is the entry:
-- * `seats_waitlisted > 0` is "on the waitlist" (it already was, kept equal to the entry's
--   seats by every writer); `waitlist_seq` is its place in the queue (from a sequence, in
--   arrival order, as the entry's identity id was) and `price_quoted` the price it was quoted
--   (DESIGN invariant 6);
-- * the rules the table enforced stay: a waiting request has a place and a quoted price
--   (CHECK), a place is unique within its event (unique partial index, also the FIFO index),
--   the quoted price is not negative, the seats waiting are 1..10 (implied by the request's
--   `seats_confirmed + seats_waitlisted <= seats` and `seats <= 10`), and an entry's request,
--   user and event exist and do not change (it is the request row);
-- * `waitlist` stays as a read-only view with the table's columns, so every reader (history,
--   analytics, positions, the sweep, the ticket-type guard) reads what it read. A write to it
--   is refused (an automatically updatable view would delete the request itself).
--
-- Serving an entry is now the request row's own update (seats_waitlisted down, which the
-- writer already did), not an extra DELETE or UPDATE of a second row.
ALTER TABLE booking_requests
    ADD COLUMN waitlist_seq BIGINT,
    ADD COLUMN price_quoted BIGINT;
CREATE SEQUENCE booking_requests_waitlist_seq OWNED BY booking_requests.waitlist_seq;
SELECT setval('booking_requests_waitlist_seq', COALESCE((SELECT max(id) FROM waitlist), 0) + 1, false);

-- The entries move into their requests (the queue is the truth of what still waits).
UPDATE booking_requests r
   SET waitlist_seq = w.id, price_quoted = w.price_quoted, seats_waitlisted = w.seats
  FROM waitlist w
 WHERE w.request_id = r.id;
UPDATE booking_requests SET seats_waitlisted = 0 WHERE seats_waitlisted > 0 AND waitlist_seq IS NULL;

ALTER TABLE booking_requests
    ADD CONSTRAINT booking_requests_waiting_check
        CHECK (seats_waitlisted = 0 OR (waitlist_seq IS NOT NULL AND price_quoted IS NOT NULL)),
    ADD CONSTRAINT booking_requests_price_quoted_check CHECK (price_quoted >= 0);
CREATE UNIQUE INDEX booking_requests_waitlist_fifo_idx
    ON booking_requests (event_id, waitlist_seq) WHERE seats_waitlisted > 0;
CREATE INDEX booking_requests_waitlist_user_idx
    ON booking_requests (user_id, decided_at DESC, waitlist_seq DESC) WHERE seats_waitlisted > 0;

-- No second table to cascade to or to guard.
DROP TRIGGER booking_requests_delete_rows ON booking_requests;
CREATE TRIGGER booking_requests_delete_rows
    AFTER DELETE ON booking_requests
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION delete_referencing_rows('bookings', 'request_id');
DROP TRIGGER booking_requests_refuse_truncate ON booking_requests;
CREATE TRIGGER booking_requests_refuse_truncate BEFORE TRUNCATE ON booking_requests
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate_while_referenced('bookings');

DROP TABLE waitlist;
CREATE VIEW waitlist AS
SELECT waitlist_seq     AS id,
       id               AS request_id,
       user_id,
       event_id,
       seats_waitlisted AS seats,
       allow_partial,
       decided_at       AS created_at,
       price_quoted,
       ticket_type_id
  FROM booking_requests
 WHERE seats_waitlisted > 0;

CREATE FUNCTION waitlist_is_read_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'waitlist is a view of booking_requests: change the request row (seats_waitlisted, waitlist_seq)'
        USING ERRCODE = 'object_not_in_prerequisite_state';
END $$;
CREATE TRIGGER waitlist_read_only INSTEAD OF INSERT OR UPDATE OR DELETE ON waitlist
    FOR EACH ROW EXECUTE FUNCTION waitlist_is_read_only();
