-- A registration for an address that already has an account creates nothing, but holds the
-- username it asked for as a created account would: so a second registration with that
-- username answers 409 either way, and cannot tell whether the address had an account.
CREATE TABLE username_holds (
    username_lower TEXT        PRIMARY KEY,
    held_until     TIMESTAMPTZ NOT NULL
);
