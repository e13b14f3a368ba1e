-- Waiting room #14: an event can put its buyers through a waiting room (a queue before the
-- sale, admission paced by the seats left, signed admission tokens). The queue itself lives in
-- Redis or in the process (it is polled by everyone waiting and must not touch PostgreSQL);
-- only the switch is stored here.
ALTER TABLE events ADD COLUMN waiting_room BOOLEAN NOT NULL DEFAULT false;
