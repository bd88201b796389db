-- A clawback names the entry it takes back. Plans count a deal's new logo from its new-logo
-- kicker entry, paid or not (a partner at its period cap is paid 0 for it, and the sum of what
-- was paid missed it), taken back only by a clawback; and spend by tier books a clawback under
-- the tier of the entry it takes back, not the tier at the moment of the clawback. Clawbacks
-- recorded before this column are told by their sign.
ALTER TABLE spend_entries ADD COLUMN reverses text;
