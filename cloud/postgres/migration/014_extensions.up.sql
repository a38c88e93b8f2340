-- Extensions (issue 14): the extra interval a driver buys is a reservation
-- row of its own on the same spot, [old ends_at, new ends_at), linked to the
-- reservation it extends. Being a row, it is held like a hold: PENDING,
-- expiring, and under the same exclusion constraint, so an extension and a
-- new hold for that interval cannot both win. Once paid it is merged: the
-- reservation's ends_at moves and the row is COMPLETED (no longer active).
ALTER TABLE reservations ADD COLUMN IF NOT EXISTS extends_id uuid REFERENCES reservations (id);
CREATE INDEX IF NOT EXISTS reservations_extends_idx ON reservations (extends_id)
    WHERE extends_id IS NOT NULL;
