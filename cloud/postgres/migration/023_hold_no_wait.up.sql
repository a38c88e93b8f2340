-- parkgate_hold takes p_no_wait: a calm lot's hold, which shares its
-- transaction with other lots' holds, answers 'lot_busy' rather than wait
-- for a lot row another transaction holds (issue 17: a surge on one lot,
-- on another replica, must not hold up the calm lots batched with it). Its
-- old signature goes, or a call omitting the new defaulted argument would
-- be ambiguous.
DROP FUNCTION IF EXISTS parkgate_hold(uuid, uuid, text, text, timestamptz, timestamptz, interval,
    bigint, text, text, bytea, interval, bytea, integer, text, bytea, bigint, text, text);
