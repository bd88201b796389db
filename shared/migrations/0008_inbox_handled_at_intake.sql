-- A service may apply an event in the very transaction that records it (deals projects a CRM
-- change where it is received) and then writes its consumer's inbox row itself, so the group
-- reads the event later as a duplicate. Kafka has not placed the event yet: no partition, no
-- offset.
ALTER TABLE inbox ALTER COLUMN kafka_partition DROP NOT NULL;
ALTER TABLE inbox ALTER COLUMN kafka_offset DROP NOT NULL;
