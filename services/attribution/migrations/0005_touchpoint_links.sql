-- A sourcing touchpoint follows its registration's link, which a CRM merge can move to the
-- surviving deal or remove. Deal snapshots and registration events say where it is linked at
-- a moment and arrive on two topics in any order: the newest word decides (`linked_at`), and
-- "linked to no deal" is remembered (`unlinked`) so an older snapshot cannot revive it.
ALTER TABLE touchpoints ADD COLUMN linked_at timestamptz;
ALTER TABLE touchpoints ADD COLUMN unlinked boolean NOT NULL DEFAULT false;
