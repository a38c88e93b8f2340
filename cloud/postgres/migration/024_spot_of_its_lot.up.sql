-- A reservation's spot is a spot of its lot: one foreign key on
-- (lot_id, spot_id) to spots' (lot_id, id), in place of one on lot_id to
-- lots and one on spot_id to spots.
--
-- The two keys checked that the lot and the spot exist, not that the spot
-- is the lot's. A reservation whose spot is another lot's would be booked
-- without its lot's availability scan seeing it (the lot's range index,
-- parkgate_hold), and the exclusion constraint would then fail the next
-- hold that picked that spot instead of letting it pick another. The
-- lot's existence still follows: spots.lot_id references lots.
--
-- And a key is checked per inserted row by a query of its own, run inside
-- the insert: with one check in place of two, Postgres' CPU per hold went
-- from 364 to 318 µs (median of 6 alternating rounds of the shipped
-- binary; README, Performance).
--
-- spots' (lot_id, id) index becomes the key's unique constraint: the same
-- columns, so parkgate_hold's walk of a lot's spots in id order (022)
-- reads it as before. NOT VALID: the rows already there are checked by
-- migration 025 in a transaction of its own, under a lock that lets
-- reservations be written meanwhile; new rows are checked from here on.
CREATE UNIQUE INDEX spots_lot_id_id_key ON spots (lot_id, id);
ALTER TABLE spots ADD CONSTRAINT spots_lot_id_id_key UNIQUE USING INDEX spots_lot_id_id_key;
DROP INDEX IF EXISTS spots_lot_order_idx;
ALTER TABLE reservations
    ADD CONSTRAINT reservations_spot_of_lot_fkey FOREIGN KEY (lot_id, spot_id) REFERENCES spots (lot_id, id) NOT VALID,
    DROP CONSTRAINT IF EXISTS reservations_lot_id_fkey,
    DROP CONSTRAINT IF EXISTS reservations_spot_id_fkey;
