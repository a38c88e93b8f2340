-- Work the payment provider refused, held back from its queue for a while.
-- Three workers ask the provider to act for reservations: close an ended
-- hold's Checkout Session, refund a cancellation, open an overstay's
-- session. Each reads its queue oldest first, and each stopped at the first
-- error; the row the provider refused (a session it does not know, an
-- amount it will not take) stayed first in its queue, so it was asked again
-- every tick and nothing behind it was ever reached. A refused row now gets
-- a row here: the queue's reads skip it until retry_at, which doubles with
-- each refusal up to an hour, and last_error says why for whoever looks
-- (booking.Service, RunWorkers). An outage is not a refusal and writes
-- nothing here: every row would fail alike, and the pass just stops. A row
-- no refusal has touched for a day (its work done since, or gone from the
-- queue) is purged by the same worker that purges idempotency keys.
--
-- A table of its own rather than columns on reservations: one reservation
-- can be in two of these queues at once (a cancelled paid booking owes a
-- refund and has a session to close), and holding it back in one must not
-- hold it back in the other; and no migration of the large table. No
-- foreign key to it either: creating one locks reservations against
-- writes until the migration commits, for rows written only with the id
-- of a reservation just read from a queue (reservations are never
-- deleted; a row whose reservation is gone is purged after its day).
CREATE TABLE IF NOT EXISTS provider_retries (
    work           text NOT NULL CHECK (work IN ('close_session', 'refund', 'overstay_session')),
    reservation_id uuid NOT NULL,
    attempts       integer NOT NULL,
    retry_at       timestamptz NOT NULL,
    last_error     text NOT NULL,
    first_refused  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (work, reservation_id)
);
