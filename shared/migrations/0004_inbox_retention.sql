-- The inbox is purged of rows older than the topics' retention (INBOX_RETENTION_HOURS): Kafka
-- can no longer deliver those events again, so their rows guard nothing. Rows arrive in time
-- order, so a BRIN index finds the old ones at almost no cost to the inserts on the hot path.
CREATE INDEX inbox_processed_at ON inbox USING brin (processed_at);
