-- A row's Kafka headers were a jsonb object written with every event: content-type, ce_id,
-- ce_type, ce_source and the trace, about 250 bytes of a 1.1-1.4 kB row, all but the trace
-- already in the row's own columns or the same for every row of the outbox. An event now
-- keeps only its trace here; the relay builds the CloudEvents headers from `event_id`,
-- `event_type`, its service's source and `traceparent`. `headers` is left for rows that carry
-- headers of their own (dead letters: their origin and reason), and is NULL otherwise.
ALTER TABLE outbox ADD COLUMN traceparent text;
ALTER TABLE outbox ALTER COLUMN headers DROP NOT NULL;
ALTER TABLE outbox ALTER COLUMN headers DROP DEFAULT;
