-- The relay finds waiting rows through `outbox_unpublished`, a partial index; a published
-- row's old version keeps its entry there until VACUUM removes it. With the default trigger
-- (a fifth of the table dead) and a day of published rows kept, a busy outbox carried 220k
-- such entries and every relay read walked them: 2.9 ms for a read that found nothing, 0.05 ms
-- after a VACUUM. Vacuumed once 2% of the rows are dead, small and often instead of in bursts,
-- and always with its indexes: at that size PostgreSQL would skip the index pass (fewer than
-- 2% of pages with dead rows), which is the pass that empties the partial index.
ALTER TABLE outbox SET (
    autovacuum_vacuum_scale_factor = 0.02,
    autovacuum_vacuum_threshold = 1000,
    vacuum_index_cleanup = on
);
