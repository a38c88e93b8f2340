-- Remote open (the operator console, DESIGN's people's pages): an
-- operator's command that one gate open its barrier, sent down the lot's
-- change log as kind 'gate_open', op 'open'. As the other kinds (migration
-- 017), it reuses the reservation's columns: the command's id in
-- reservation_id, the gate's id in plate, the operator's reason in status,
-- when it was issued in starts_at and the last instant an edge may act on
-- it in ends_at. Readers that mean reservations filter on kind = ''.
ALTER TABLE outbox DROP CONSTRAINT IF EXISTS outbox_kind_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_kind_check CHECK (kind IN ('', 'permit', 'presence_reset', 'gate_open'));
ALTER TABLE outbox DROP CONSTRAINT IF EXISTS outbox_op_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_op_check CHECK (op IN ('upsert', 'delete', 'reset', 'open'));
