-- A captured payment that is not the one its session asked for (another amount or currency, a
-- reference to another booking): the booking writer refunds it instead of confirming anything.
ALTER TABLE payment_sessions ADD COLUMN mismatch BOOLEAN NOT NULL DEFAULT false;
