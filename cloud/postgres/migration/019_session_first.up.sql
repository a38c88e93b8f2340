-- parkgate_hold takes the Checkout Session a hold on a calm lot made before
-- it (issue 17): the session goes on the reservation as it is inserted,
-- rather than by a second transaction that rewrote the row and every one of
-- its indexes. Its old signature goes, or a call omitting the new defaulted
-- arguments would be ambiguous.
DROP FUNCTION IF EXISTS parkgate_hold(uuid, uuid, text, text, timestamptz, timestamptz, interval,
    bigint, text, text, bytea, interval, bytea, integer, text, bytea, bigint);
