-- Email verification (security #11): an account must prove its address before it can host
-- events or be emailed. Accounts that existed before this migration keep working: they are
-- taken as verified at their creation (the operator already vouched for them).
ALTER TABLE users ADD COLUMN email_verified_at TIMESTAMPTZ;
UPDATE users SET email_verified_at = created_at;
