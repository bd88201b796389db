-- The review queues and the scoring's rejections are read a page at a time in (applied_at,
-- partner_id) order (`GET /applications?after=&limit=`). Rejections come from the public intake
-- and grow with it; each page is read from its own index instead of sorting them all. The
-- waiting queues ('review', 'approve') share one index; it replaces the 'review'-only one.
DROP INDEX partners_review_queue;
CREATE INDEX partners_waiting ON partners (qualification_outcome, applied_at, partner_id)
    WHERE status = 'applied';
CREATE INDEX partners_rejected ON partners (applied_at, partner_id)
    WHERE qualification_outcome = 'reject';
