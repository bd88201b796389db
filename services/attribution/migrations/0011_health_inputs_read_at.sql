-- When the inputs behind a day's score were read: the database's clock as the run began to
-- read them. The hourly job runs on every instance, and each run reads all its partners'
-- inputs first, then stores them a partner a transaction over the run's length: two runs of
-- the same day at once would otherwise leave whichever stored last, older inputs or not. A
-- day's row is replaced only by inputs read at the same moment or later (health_repository.
-- save_scores). NULL: a row stored before this column, older than any read since.
-- Adding a column without a default rewrites nothing, but waits for the table's lock behind
-- whatever reads it (a health page, a run's store) and holds up the writers queued behind:
-- a migration that waits more than 10 s fails, and is run again.
SET LOCAL lock_timeout = '10s';
ALTER TABLE health_scores ADD COLUMN inputs_read_at timestamptz;
