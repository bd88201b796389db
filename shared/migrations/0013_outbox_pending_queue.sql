-- The relay found waiting rows through a partial index on `published_at IS NULL`, and the
-- purge found old rows through an index on `published_at`. An update that changes a column
-- any index names (in its key or its predicate) is never HOT: every publish mark wrote a new
-- entry in each of the outbox's indexes, the key and the event-id key included, which vacuum
-- then removed again. The waiting rows are now named in
-- a narrow queue of their own, and no index of the outbox names `published_at`, so the mark
-- (published_at and committed_at, on a half-full page: 0010) is a HOT update: no index entry.
--
-- One entry a writing statement, not a row: a statement writes 9 (deals) to 50 (attribution)
-- rows under load, and an entry (its insert, its key, its delete) costs about what one of the
-- outbox's index entries does. An entry holds its rows' positions in order, at most 1,000 (a
-- statement that writes more makes more entries, split by position / 1000); the relay takes
-- the positions it settled out of an entry and deletes the entry once it is empty, or keys it
-- by the lowest position it still holds, which orders the entries.

-- The outbox is locked whole first, for the migration's length: no row is written between
-- the trigger's start and the queueing of the rows waiting before it, and no lock is raised
-- half-way (DROP INDEX would, and could deadlock with a writer). Writers wait as long as
-- indexing the parked rows takes (a scan of the outbox); a migration that waits more than
-- 10 s for the lock fails, and is run again.
SET LOCAL lock_timeout = '10s';
LOCK TABLE outbox IN ACCESS EXCLUSIVE MODE;

CREATE TABLE outbox_pending (
    first_position bigint   PRIMARY KEY,
    positions      bigint[] NOT NULL
);

-- Every row written to the outbox is queued by the statement that writes it, whoever writes
-- it (this version, the one before it during a rolling upgrade, a dead letter, an operator):
-- a trigger, not each writer, so no writer can forget it. search_path is fixed so that a
-- session whose search_path names another schema queues into this one.
CREATE FUNCTION queue_outbox_rows() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    INSERT INTO outbox_pending (first_position, positions)
    SELECT min(position), array_agg(position ORDER BY position)
    FROM recorded GROUP BY position / 1000;
    RETURN NULL;
END
$$;

CREATE TRIGGER outbox_rows_queued
    AFTER INSERT ON outbox REFERENCING NEW TABLE AS recorded
    FOR EACH STATEMENT EXECUTE FUNCTION queue_outbox_rows();

INSERT INTO outbox_pending (first_position, positions)
SELECT min(position), array_agg(position ORDER BY position)
FROM outbox WHERE published_at IS NULL AND parked_at IS NULL
GROUP BY position / 1000;

-- The relay deletes an entry once it settled its rows, so almost every row of the queue is a
-- dead one: vacuumed after every thousand, whatever the table's size, so the relay's read (the
-- first entries) does not walk a long run of dead ones.
ALTER TABLE outbox_pending SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 1000,
    vacuum_index_cleanup = on
);

-- Parked rows (never sendable, kept with their reason) are counted by every metrics scrape
-- and listed by `python -m shared.dlq parked`: an index of their own. It names `parked_at`,
-- which the publish mark never changes.
CREATE INDEX outbox_parked ON outbox (position) WHERE parked_at IS NOT NULL;

DROP INDEX outbox_unpublished;
DROP INDEX outbox_published_at;
