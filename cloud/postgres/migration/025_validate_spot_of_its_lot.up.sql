-- Checks the reservations made before migration 024 against its key. In a
-- transaction of its own: VALIDATE takes only a SHARE UPDATE EXCLUSIVE
-- lock on reservations, so holds and payments go on while it reads the
-- table; in 024's transaction it would have held that migration's lock,
-- which stops every write, for the whole read.
ALTER TABLE reservations VALIDATE CONSTRAINT reservations_spot_of_lot_fkey;
