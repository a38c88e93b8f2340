-- A hold for any spot takes the lowest free spot of its lot:
-- "WHERE lot_id = p_lot ... ORDER BY id LIMIT 1" (parkgate_hold). With only
-- the primary key and (lot_id, label) to choose from, Postgres walked the
-- primary key in id order and filtered by lot, expecting a lot's spots to be
-- spread over the ids; they are one run of ids, made with their lot, so a
-- hold read the spots of every lot made before its own (2,100 a hold over
-- 100 lots of 50, growing with the lots). In (lot_id, id) order the walk
-- starts at the lot's first spot and stops at its first free one.
CREATE INDEX IF NOT EXISTS spots_lot_order_idx ON spots (lot_id, id);
