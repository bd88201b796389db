-- When an opportunity closed (won or lost), by the CRM's own clock (the source time of the
-- change that closed it); null while it is open. A registration submitted after the close may
-- not link the deal (it did not source it), and one submitted before closes with it at once
-- (services/deals/domain/links.py).
ALTER TABLE crm_deals ADD COLUMN closed_at timestamptz;

-- Deals closed before this column was kept: the source time of the stage held is the latest
-- moment the close can have happened (a later delivery of the same stage moves it forward),
-- the best this projection knows. Stamps are `time|commit|sequence`; a time written without an
-- offset is UTC.
SET LOCAL TIME ZONE 'UTC';
UPDATE crm_deals
SET closed_at = split_part(field_timestamps ->> 'stage', '|', 1)::timestamptz
WHERE status <> 'open' AND field_timestamps ? 'stage';
