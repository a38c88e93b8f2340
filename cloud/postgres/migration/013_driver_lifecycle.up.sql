-- Driver lifecycle (issue 14): the driver's own credential for their
-- reservation, cancellation with its refund, and the lots' policies.

-- Only a SHA-256 of the access token is kept on the reservation, as for
-- edge tokens: a leaked table lets nobody act for a driver. The token
-- itself stays on the idempotency key for its 24 hours, because a replayed
-- 201 must carry it byte for byte and a free hold's 201 is rebuilt from the
-- row (the body of a paid hold stores it anyway).
ALTER TABLE reservations ADD COLUMN IF NOT EXISTS access_token_hash bytea
    CHECK (access_token_hash IS NULL OR length(access_token_hash) = 32);
ALTER TABLE idempotency_keys ADD COLUMN IF NOT EXISTS access_token text;

-- A cancellation in policy refunds the price: refund_amount says what is
-- owed, refund_status whether Stripe has taken the request ('pending' until
-- it has: the cancel's own call or, after a crash, the refund worker).
ALTER TABLE reservations ADD COLUMN IF NOT EXISTS refund_amount bigint;
ALTER TABLE reservations ADD COLUMN IF NOT EXISTS refund_status text
    CHECK (refund_status IN ('pending', 'succeeded'));
CREATE INDEX IF NOT EXISTS reservations_refund_pending_idx ON reservations (updated_at)
    WHERE refund_status = 'pending';

-- Policies of a lot: free cancellation until starts_at minus this, and how
-- long after ends_at an exit is still on time.
ALTER TABLE lots ADD COLUMN IF NOT EXISTS free_cancellation interval NOT NULL DEFAULT '0s';
ALTER TABLE lots ADD COLUMN IF NOT EXISTS exit_grace interval NOT NULL DEFAULT '15m';

-- parkgate_hold takes the access token now: its old signature goes, or a
-- call omitting the new defaulted arguments would be ambiguous.
DROP FUNCTION IF EXISTS parkgate_hold(uuid, uuid, text, text, timestamptz, timestamptz, interval,
    bigint, text, text, bytea, interval, bytea, integer);
