-- A CRM record's write-back is the newest word about it, not the last consumed: one record can
-- have several registrations over time (an expired one, then another partner's approval),
-- whose events travel on different partitions, and a dead letter replayed after newer writes
-- would roll the CRM back. Each row keeps the moment of the decision it writes (null: queued
-- before this was kept, taken as older than any word that comes).
ALTER TABLE crm_writebacks ADD COLUMN as_of timestamptz;
