-- Checkout (#13): ticket types, holds that expire, payments as a ledger, refunds.

-- How an event sells. `instant`: a decision that gets seats confirms them (the behaviour so far).
-- `hold`: it holds them for `hold_secs` while the buyer pays; an unpaid hold expires and its
-- seats go back on sale. Payments go to `payment_provider` (`manual`: the host marks a hold
-- paid; `stripe`: a Stripe Checkout Session). Free seats are confirmed at once in both modes.
-- `refund_until_hours`: a buyer who cancels a paid booking at least this many hours before the
-- start is refunded in full; NULL: buyers cannot cancel paid bookings (the host can refund).
ALTER TABLE events
    ADD COLUMN checkout TEXT NOT NULL DEFAULT 'instant' CHECK (checkout IN ('instant', 'hold')),
    ADD COLUMN hold_secs INTEGER NOT NULL DEFAULT 900 CHECK (hold_secs BETWEEN 1 AND 86400),
    ADD COLUMN payment_provider TEXT NOT NULL DEFAULT 'manual'
        CHECK (payment_provider IN ('manual', 'stripe')),
    ADD COLUMN refund_until_hours INTEGER DEFAULT 0 CHECK (refund_until_hours >= 0);

-- What a buyer picks. `capacity` on the event stays the shared limit over all types; a type's
-- `quota` limits that type. `sold` counts the type's held and confirmed seats (moved by the
-- booking writer in the same transaction as the event's `reserved_seats`), and the CHECK makes
-- over-selling a type impossible, as the event's CHECK does for the event.
CREATE TABLE ticket_types (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     BIGINT      NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    name         TEXT        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    price        BIGINT      NOT NULL CHECK (price >= 0),
    quota        INTEGER     CHECK (quota > 0),
    max_per_user INTEGER     CHECK (max_per_user > 0),
    sales_start  TIMESTAMPTZ,
    sales_end    TIMESTAMPTZ,
    hidden       BOOLEAN     NOT NULL DEFAULT FALSE,
    is_default   BOOLEAN     NOT NULL DEFAULT FALSE,
    sold         INTEGER     NOT NULL DEFAULT 0 CHECK (sold >= 0),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT ticket_types_sold_within_quota CHECK (quota IS NULL OR sold <= quota),
    CONSTRAINT ticket_types_window_check CHECK (sales_end IS NULL OR sales_start IS NULL OR sales_start < sales_end),
    CONSTRAINT ticket_types_default_visible CHECK (NOT (is_default AND hidden))
);
CREATE INDEX ticket_types_event_idx ON ticket_types (event_id, id);
CREATE UNIQUE INDEX ticket_types_one_default_idx ON ticket_types (event_id) WHERE is_default;
SELECT diesel_manage_updated_at('ticket_types');

-- Every event has its default type ("General admission" at the event's price): a request
-- without `ticketTypeId` buys it, so clients that know nothing of types keep working. The
-- default type's price is the event's price, kept so by these triggers whatever writes events.
INSERT INTO ticket_types (event_id, name, price, is_default, sold)
SELECT id, 'General admission', price, TRUE, reserved_seats FROM events;

CREATE FUNCTION events_default_ticket_type() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO ticket_types (event_id, name, price, is_default)
        VALUES (NEW.id, 'General admission', NEW.price, TRUE);
    ELSIF NEW.price IS DISTINCT FROM OLD.price THEN
        UPDATE ticket_types SET price = NEW.price WHERE event_id = NEW.id AND is_default;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER events_default_ticket_type AFTER INSERT OR UPDATE OF price ON events
    FOR EACH ROW EXECUTE FUNCTION events_default_ticket_type();

-- Requests, bookings and waitlist entries name their type (NULL on rows from before: the
-- default type).
ALTER TABLE booking_requests DROP CONSTRAINT booking_requests_reject_reason_check;
ALTER TABLE booking_requests ADD CONSTRAINT booking_requests_reject_reason_check
    CHECK (reject_reason IN ('sold_out', 'per_user_limit', 'event_closed', 'waitlist_closed',
                             'withdrawn', 'not_on_sale', 'ticket_type_unavailable', 'sales_ended'));
ALTER TABLE booking_requests ADD COLUMN ticket_type_id BIGINT REFERENCES ticket_types (id) ON DELETE CASCADE;
ALTER TABLE waitlist ADD COLUMN ticket_type_id BIGINT REFERENCES ticket_types (id) ON DELETE CASCADE;
ALTER TABLE bookings ADD COLUMN ticket_type_id BIGINT REFERENCES ticket_types (id) ON DELETE CASCADE;

-- A booking's life: `held` (seats reserved until `expires_at`, not paid) → `confirmed` (paid or
-- free; `paid_at` when paid) or `expired` (seats back on sale); a paid booking cancelled →
-- `refund_pending` → `refunded`; an unpaid one → `cancelled`.
ALTER TABLE bookings DROP CONSTRAINT bookings_status_check;
ALTER TABLE bookings DROP CONSTRAINT bookings_check;
ALTER TABLE bookings
    ADD COLUMN expires_at TIMESTAMPTZ,
    ADD COLUMN paid_at TIMESTAMPTZ,
    ADD CONSTRAINT bookings_status_check CHECK (status IN
        ('held', 'confirmed', 'expired', 'cancelled', 'refund_pending', 'refunded')),
    ADD CONSTRAINT bookings_cancelled_at_check
        CHECK ((status IN ('cancelled', 'refund_pending', 'refunded')) = (cancelled_at IS NOT NULL)),
    ADD CONSTRAINT bookings_held_expires_check CHECK (status <> 'held' OR expires_at IS NOT NULL),
    ADD CONSTRAINT bookings_refund_paid_check
        CHECK (status NOT IN ('refund_pending', 'refunded') OR paid_at IS NOT NULL);
-- The expiry sweep's one read: holds due, soonest first.
CREATE INDEX bookings_held_expiry_idx ON bookings (expires_at) WHERE status = 'held';
-- Held seats count like confirmed ones (the per-user cap, the attendee list).
DROP INDEX bookings_event_confirmed_idx;
CREATE INDEX bookings_event_live_idx ON bookings (event_id, user_id) WHERE status IN ('confirmed', 'held');

-- A payment the buyer was sent to make (a Stripe Checkout Session, or a manual payment the host
-- recorded). `captured` means the money arrived and the booking writer has not applied it yet;
-- the writer applies it (confirms the hold, re-acquires the seats of an expired one, or refunds)
-- and marks it `applied` in the same transaction, once.
CREATE TABLE payment_sessions (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    booking_id   BIGINT      NOT NULL REFERENCES bookings (id) ON DELETE CASCADE,
    event_id     BIGINT      NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    user_id      BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    provider     TEXT        NOT NULL CHECK (provider IN ('manual', 'stripe')),
    external_id  TEXT        UNIQUE,
    url          TEXT,
    amount       BIGINT      NOT NULL CHECK (amount > 0),
    state        TEXT        NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'captured', 'applied')),
    result       TEXT        CHECK (result IN ('confirmed', 'reacquired', 'refunded')),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    captured_at  TIMESTAMPTZ,
    applied_at   TIMESTAMPTZ,
    CHECK ((state = 'applied') = (result IS NOT NULL))
);
CREATE INDEX payment_sessions_booking_idx ON payment_sessions (booking_id);
CREATE INDEX payment_sessions_captured_idx ON payment_sessions (id) WHERE state = 'captured';

-- Money as a ledger: a row per capture and per refund, never changed or removed (triggers
-- refuse it). Reconciliation checks, per event, captured − refunded = the cost of the paid
-- bookings that are still live.
CREATE TABLE payments (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id    BIGINT      NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    booking_id  BIGINT      NOT NULL REFERENCES bookings (id) ON DELETE CASCADE,
    session_id  BIGINT      REFERENCES payment_sessions (id) ON DELETE CASCADE,
    kind        TEXT        NOT NULL CHECK (kind IN ('capture', 'refund')),
    amount      BIGINT      NOT NULL CHECK (amount > 0),
    provider    TEXT        NOT NULL CHECK (provider IN ('manual', 'stripe')),
    reference   TEXT        NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (provider, kind, reference)
);
CREATE INDEX payments_event_idx ON payments (event_id);
CREATE INDEX payments_booking_idx ON payments (booking_id);
CREATE FUNCTION payments_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the payments ledger is append-only' USING ERRCODE = '55000';
END
$$;
CREATE TRIGGER payments_append_only BEFORE UPDATE ON payments
    FOR EACH ROW EXECUTE FUNCTION payments_append_only();

-- Provider webhook events already processed (a replay changes nothing).
CREATE TABLE payment_webhooks (
    provider    TEXT        NOT NULL,
    event_id    TEXT        NOT NULL,
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, event_id)
);

-- The writer's booking transitions: each row must be in the state the writer decided from, or
-- the whole transaction fails (40001) and the writer decides again on fresh state.
CREATE FUNCTION engine_transition(ids BIGINT[], from_status TEXT[], to_status TEXT[]) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    moved BIGINT;
BEGIN
    UPDATE bookings b
       SET status = d.t,
           expires_at = CASE WHEN d.t = 'held' THEN b.expires_at ELSE NULL END,
           paid_at = CASE WHEN d.t IN ('confirmed', 'refund_pending') AND d.f IN ('held', 'expired') THEN now() ELSE b.paid_at END,
           cancelled_at = CASE WHEN d.t IN ('cancelled', 'refund_pending', 'refunded') THEN coalesce(b.cancelled_at, now()) ELSE NULL END
      FROM UNNEST(ids, from_status, to_status) AS d(id, f, t)
     WHERE b.id = d.id AND b.status = d.f;
    GET DIAGNOSTICS moved = ROW_COUNT;
    IF moved <> cardinality(ids) THEN
        RAISE EXCEPTION 'booking state moved under the writer (% of % bookings as expected)',
            moved, cardinality(ids) USING ERRCODE = '40001';
    END IF;
END
$$;

-- Payments the writer applied: each must still be `captured`.
CREATE FUNCTION engine_apply_payments(ids BIGINT[], results TEXT[]) RETURNS VOID
LANGUAGE plpgsql AS $$
DECLARE
    moved BIGINT;
BEGIN
    UPDATE payment_sessions s SET state = 'applied', result = d.r, applied_at = now()
      FROM UNNEST(ids, results) AS d(id, r)
     WHERE s.id = d.id AND s.state = 'captured';
    GET DIAGNOSTICS moved = ROW_COUNT;
    IF moved <> cardinality(ids) THEN
        RAISE EXCEPTION 'payment state moved under the writer (% of % payments as expected)',
            moved, cardinality(ids) USING ERRCODE = '40001';
    END IF;
END
$$;
