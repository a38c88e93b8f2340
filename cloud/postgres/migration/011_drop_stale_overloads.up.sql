-- The signatures functions had before their current ones. Migrations 004 and
-- 006 dropped them on the databases that ran those migrations' old text; here
-- for any database that has one still. A stale overload left next to the
-- current function would make calls that omit the new defaulted arguments
-- ambiguous.
DROP FUNCTION IF EXISTS parkgate_change(uuid, text[], text, text, text, boolean);
DROP FUNCTION IF EXISTS parkgate_hold(uuid, uuid, text, text, timestamptz, timestamptz, interval,
    bigint, text, text, bytea, interval, bytea);
