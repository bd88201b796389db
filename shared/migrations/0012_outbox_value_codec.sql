-- An event's value may be kept compressed (shared/outbox_codec.py): the number of the codec
-- that wrote it, NULL for the CloudEvents JSON itself (every row before this migration, and a
-- dead letter's record, kept as it came). The relay unpacks a row before it sends it.
ALTER TABLE outbox ADD COLUMN value_codec smallint;
