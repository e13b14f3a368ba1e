ALTER TABLE events DROP COLUMN waiting_room;
