-- The waitlist table again, its entries taken back out of the request rows.
DROP VIEW waitlist;
DROP FUNCTION waitlist_is_read_only();

CREATE TABLE waitlist (
    id             BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id     UUID        NOT NULL UNIQUE,
    user_id        BIGINT      NOT NULL,
    event_id       BIGINT      NOT NULL,
    seats          INTEGER     NOT NULL CHECK (seats BETWEEN 1 AND 10),
    allow_partial  BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    price_quoted   BIGINT      NOT NULL CHECK (price_quoted >= 0),
    ticket_type_id BIGINT
);
INSERT INTO waitlist (id, request_id, user_id, event_id, seats, allow_partial, created_at, price_quoted, ticket_type_id)
    OVERRIDING SYSTEM VALUE
SELECT waitlist_seq, id, user_id, event_id, seats_waitlisted, allow_partial, decided_at, price_quoted, ticket_type_id
  FROM booking_requests WHERE seats_waitlisted > 0;
SELECT setval(pg_get_serial_sequence('waitlist', 'id'),
              GREATEST((SELECT last_value FROM booking_requests_waitlist_seq), 1));
CREATE INDEX waitlist_event_fifo_idx ON waitlist (event_id, id);
CREATE INDEX waitlist_user_history_idx ON waitlist (user_id, created_at DESC, id DESC);
CREATE TRIGGER waitlist_check_request
    AFTER INSERT ON waitlist
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION check_request_of_new_rows();
CREATE TRIGGER waitlist_keep_key BEFORE UPDATE OF request_id, user_id, event_id ON waitlist
    FOR EACH ROW EXECUTE FUNCTION keep_key_columns('request_id', 'user_id', 'event_id');

DROP TRIGGER booking_requests_delete_rows ON booking_requests;
CREATE TRIGGER booking_requests_delete_rows
    AFTER DELETE ON booking_requests
    REFERENCING OLD TABLE AS gone
    FOR EACH STATEMENT EXECUTE FUNCTION delete_referencing_rows('bookings', 'request_id', 'waitlist', 'request_id');
DROP TRIGGER booking_requests_refuse_truncate ON booking_requests;
CREATE TRIGGER booking_requests_refuse_truncate BEFORE TRUNCATE ON booking_requests
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_truncate_while_referenced('bookings', 'waitlist');

DROP INDEX booking_requests_waitlist_user_idx;
DROP INDEX booking_requests_waitlist_fifo_idx;
ALTER TABLE booking_requests
    DROP CONSTRAINT booking_requests_price_quoted_check,
    DROP CONSTRAINT booking_requests_waiting_check,
    DROP COLUMN price_quoted,
    DROP COLUMN waitlist_seq;
