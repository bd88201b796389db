-- A row Kafka refuses for a permanent reason (too large for the broker, an invalid topic) is
-- parked here with the reason, instead of being retried forever in front of every later row.
-- Parked rows are neither published nor purged: operators see them with
-- `python -m shared.dlq parked --service <name>`.
ALTER TABLE outbox ADD COLUMN parked_at timestamptz, ADD COLUMN park_reason text;
