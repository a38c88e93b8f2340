-- Status changes no edge needs to hear of (issue 17): a hold made PENDING,
-- and the end of a reservation no edge ever held (a PENDING hold expired or
-- cancelled, a lapsed hold refunded). An edge only keeps reservations that
-- open its gate (CONFIRMED, CHECKED_IN), so before this migration each of
-- these went down the lot's change log as a 'delete' of nothing: half the
-- relay's traffic per booking, and all of it for a hold never paid.
--
-- They are kept here instead, for the audit of a lot's history (the
-- simulator's no_overlap check replays it): after_seq is the lot's seq
-- when the change was made, under the lot's row lock that every writer
-- takes, and id grows in the order of that lock within a lot (nextval is
-- called under it, and the sequence keeps the default CACHE 1: a cache per
-- session would break that order). So a lot's
-- history is the change log and this table merged by (seq, id), a change of
-- the log coming before the silent ones made after it. Nothing publishes
-- from here, and the lot's seq does not move for these rows.
CREATE TABLE IF NOT EXISTS silent_changes (
    id             bigserial PRIMARY KEY,
    lot_id         uuid NOT NULL REFERENCES lots (id),
    after_seq      bigint NOT NULL,
    reservation_id uuid NOT NULL,
    status         text NOT NULL,
    plate          text NOT NULL,
    starts_at      timestamptz NOT NULL,
    ends_at        timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);
