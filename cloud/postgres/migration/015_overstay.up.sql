-- Overstay (issue 14): an exit later than ends_at plus the lot's exit_grace
-- owes the lot's rate per started 15 minutes past ends_at. The ingest of the
-- exit marks it due with its minutes, in the event's own transaction; a
-- worker prices it once (amount set only while NULL) and opens its Checkout
-- Session off that transaction; the session's payment marks it paid.
ALTER TABLE reservations ADD COLUMN IF NOT EXISTS overstay_exit_at timestamptz;
ALTER TABLE reservations ADD COLUMN IF NOT EXISTS overstay_minutes integer;
ALTER TABLE reservations ADD COLUMN IF NOT EXISTS overstay_amount bigint;
ALTER TABLE reservations ADD COLUMN IF NOT EXISTS overstay_status text CHECK (overstay_status IN ('due', 'paid'));
ALTER TABLE reservations ADD COLUMN IF NOT EXISTS overstay_session_id text UNIQUE;
ALTER TABLE reservations ADD COLUMN IF NOT EXISTS overstay_url text;
ALTER TABLE reservations ADD COLUMN IF NOT EXISTS overstay_payment_intent text;
-- Sessions expire unpaid (Stripe's default: a day); each new one for the
-- same overstay needs its own idempotency key, numbered by this.
ALTER TABLE reservations ADD COLUMN IF NOT EXISTS overstay_sessions integer NOT NULL DEFAULT 0;
-- The overstay worker's queue: due, and not yet priced or without a session.
CREATE INDEX IF NOT EXISTS reservations_overstay_due_idx ON reservations (overstay_exit_at)
    WHERE overstay_status = 'due' AND (overstay_amount IS NULL OR overstay_session_id IS NULL);
