-- A gate event's note: the reason an operator gave for a remote open (the
-- edge sends it with the manual_override event, signed with the rest), so
-- the audit shows why a barrier went up without a booking. Empty for
-- every other event.
ALTER TABLE gate_events ADD COLUMN IF NOT EXISTS note text NOT NULL DEFAULT '';
