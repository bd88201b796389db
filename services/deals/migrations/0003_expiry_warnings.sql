-- The protection-window end a partner was last warned about (warned once per end; an
-- extension moves the end and earns a new warning).
ALTER TABLE registrations ADD COLUMN expiry_warned_for timestamptz;
