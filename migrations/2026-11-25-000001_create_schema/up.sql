-- The whole AtomicSeats schema. Integrity rules live here, not only in the code:
-- the booking engine may have bugs, the database still refuses to oversell.

CREATE TABLE users (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      TEXT        NOT NULL CHECK (char_length(username) BETWEEN 3 AND 32),
    name          TEXT        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100),
    email         TEXT        NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    password_hash TEXT        NOT NULL,
    role          TEXT        NOT NULL DEFAULT 'guest' CHECK (role IN ('guest', 'host', 'admin')),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Case-insensitive uniqueness: "Alice" and "alice" are the same account.
CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email));
SELECT diesel_manage_updated_at('users');

-- Refresh tokens are stored as SHA-256 hashes, rotated on every use. A family is one login;
-- presenting an already-rotated token revokes its whole family (theft detection).
CREATE TABLE refresh_tokens (
    id          UUID        PRIMARY KEY,
    user_id     BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id   UUID        NOT NULL,
    token_hash  BYTEA       NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    rotated_at  TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ,
    CHECK (expires_at > created_at)
);
CREATE INDEX refresh_tokens_user_id_idx ON refresh_tokens (user_id);
CREATE INDEX refresh_tokens_family_id_idx ON refresh_tokens (family_id);

CREATE TABLE events (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host_id        BIGINT      NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    name           TEXT        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description    TEXT        NOT NULL CHECK (char_length(description) <= 5000),
    venue          TEXT        NOT NULL CHECK (char_length(venue) BETWEEN 1 AND 300),
    starts_at      TIMESTAMPTZ NOT NULL,
    ends_at        TIMESTAMPTZ NOT NULL,
    capacity       INTEGER     NOT NULL CHECK (capacity > 0),
    -- Invariant 1: never oversell. The engine keeps this equal to the sum of confirmed seats.
    reserved_seats INTEGER     NOT NULL DEFAULT 0,
    -- Price per seat in minor units (cents).
    price          BIGINT      NOT NULL DEFAULT 0 CHECK (price >= 0),
    max_per_user   INTEGER     CHECK (max_per_user > 0),
    waitlist_open  BOOLEAN     NOT NULL DEFAULT TRUE,
    status         TEXT        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'cancelled')),
    cancelled_at   TIMESTAMPTZ,
    -- Bumped by every write under the row lock: cache snapshots carry it, so a late cache
    -- write of an older snapshot never overwrites a newer one.
    version        BIGINT      NOT NULL DEFAULT 0,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT events_seats_within_capacity CHECK (0 <= reserved_seats AND reserved_seats <= capacity),
    CONSTRAINT events_ends_after_start CHECK (ends_at > starts_at)
);
CREATE INDEX events_created_at_id_idx ON events (created_at, id);
CREATE INDEX events_starts_at_id_idx ON events (starts_at, id);
CREATE INDEX events_host_id_starts_at_id_idx ON events (host_id, starts_at, id);
CREATE INDEX events_name_lower_idx ON events (lower(name) text_pattern_ops);
SELECT diesel_manage_updated_at('events');

-- Every booking request and its outcome. `id` is the request id: a redelivered or retried
-- request hits the primary key and changes nothing (invariant 2).
CREATE TABLE booking_requests (
    id               UUID        PRIMARY KEY,
    user_id          BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event_id         BIGINT      NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    seats            INTEGER     NOT NULL CHECK (seats BETWEEN 1 AND 10),
    allow_partial    BOOLEAN     NOT NULL DEFAULT FALSE,
    join_waitlist    BOOLEAN     NOT NULL DEFAULT TRUE,
    idempotency_key  TEXT        CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
    status           TEXT        NOT NULL CHECK (status IN ('confirmed', 'partial', 'waitlisted', 'rejected')),
    seats_confirmed  INTEGER     NOT NULL DEFAULT 0 CHECK (seats_confirmed >= 0),
    seats_waitlisted INTEGER     NOT NULL DEFAULT 0 CHECK (seats_waitlisted >= 0),
    reject_reason    TEXT        CHECK (reject_reason IN ('sold_out', 'per_user_limit', 'event_closed', 'waitlist_closed', 'withdrawn')),
    cost             BIGINT      NOT NULL DEFAULT 0 CHECK (cost >= 0),
    -- When the API accepted the request (arrival order) and when the worker decided it.
    requested_at     TIMESTAMPTZ NOT NULL,
    decided_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (seats_confirmed + seats_waitlisted <= seats),
    CHECK (status <> 'rejected' OR reject_reason IS NOT NULL)
);
CREATE INDEX booking_requests_user_history_idx ON booking_requests (user_id, requested_at DESC, id DESC);
CREATE INDEX booking_requests_event_status_idx ON booking_requests (event_id, status);
SELECT diesel_manage_updated_at('booking_requests');

CREATE TABLE bookings (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id   UUID        NOT NULL REFERENCES booking_requests (id) ON DELETE CASCADE,
    user_id      BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event_id     BIGINT      NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    seats        INTEGER     NOT NULL CHECK (seats BETWEEN 1 AND 10),
    cost         BIGINT      NOT NULL CHECK (cost >= 0),
    status       TEXT        NOT NULL DEFAULT 'confirmed' CHECK (status IN ('confirmed', 'cancelled')),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    cancelled_at TIMESTAMPTZ,
    CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL))
);
CREATE INDEX bookings_user_history_idx ON bookings (user_id, created_at DESC, id DESC);
CREATE INDEX bookings_event_confirmed_idx ON bookings (event_id, user_id) WHERE status = 'confirmed';
CREATE INDEX bookings_request_id_idx ON bookings (request_id);

-- FIFO waitlist: an event's entries in `id` order. `seats` is what the entry still wants.
CREATE TABLE waitlist (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id    UUID        NOT NULL UNIQUE REFERENCES booking_requests (id) ON DELETE CASCADE,
    user_id       BIGINT      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    event_id      BIGINT      NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    seats         INTEGER     NOT NULL CHECK (seats BETWEEN 1 AND 10),
    allow_partial BOOLEAN     NOT NULL DEFAULT FALSE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX waitlist_event_fifo_idx ON waitlist (event_id, id);
CREATE INDEX waitlist_user_idx ON waitlist (user_id, event_id);

-- Side effects of a decision (emails), written in the decision's transaction (invariant 5).
CREATE TABLE outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind            TEXT        NOT NULL,
    user_id         BIGINT      REFERENCES users (id) ON DELETE CASCADE,
    event_id        BIGINT      REFERENCES events (id) ON DELETE SET NULL,
    payload         JSONB       NOT NULL,
    status          TEXT        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        INTEGER     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at    TIMESTAMPTZ,
    next_attempt_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- Held by one delivery attempt until then (a replay cannot send it twice concurrently).
    claimed_until   TIMESTAMPTZ,
    sent_at         TIMESTAMPTZ
);
-- The relay's two questions: what was never handed over, and what was handed over long ago
-- without being sent (a lost message). Both stay small however large the outbox grows.
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE status = 'pending' AND published_at IS NULL;
CREATE INDEX outbox_published_pending_idx ON outbox (published_at) WHERE status = 'pending' AND published_at IS NOT NULL;
CREATE INDEX outbox_status_idx ON outbox (status, id);
