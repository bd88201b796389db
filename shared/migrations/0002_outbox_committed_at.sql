-- When the row's transaction committed, stamped by the relay as it marks the row published
-- (from pg_xact_commit_timestamp, where the server tracks commit timestamps): with
-- `published_at` it gives the relay lag, commit -> acknowledged by Kafka.
ALTER TABLE outbox ADD COLUMN committed_at timestamptz;
