-- reservations_plate_idx (lot_id, plate) served no query: the edge matches
-- plates in its own store, and the cloud finds reservations by id, session
-- or window. Every hold and every status change (a new row version each)
-- paid for an entry in it.
DROP INDEX IF EXISTS reservations_plate_idx;
