-- A delivery is written once and marked once it is delivered (status, attempts, delivered_at).
-- status is in the pending-head index's predicate, so the mark is never a HOT update; but when
-- the new row version lands on the same page as the old one, PostgreSQL logs only the bytes
-- that differ instead of the whole row (a delivery carries its payload, about 0.9 kB). Full
-- pages sent every mark's new version to another page. Half-full pages leave room for the new
-- versions of the rows a run marks together (the outboxes do the same: shared 0010).
ALTER TABLE webhook_deliveries SET (fillfactor = 50);
