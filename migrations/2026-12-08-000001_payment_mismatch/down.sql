ALTER TABLE payment_sessions DROP COLUMN mismatch;
