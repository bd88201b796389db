-- The moment a deal was won: when the snapshot that made it won entered Pollinate (its
-- `ingested_at`, else its `changed_at`; the snapshot carries no CRM close time). Touchpoints
-- at or after it do not count towards that win, even on the close day (domain/models.py,
-- `closed_at`). Null while the deal is not won.
ALTER TABLE deals ADD COLUMN won_at timestamptz;

-- Deals won before this column was kept: the newest snapshot held is the latest moment the win
-- can have happened, the best attribution knows (never earlier than the win: no touchpoint
-- that came before it stops counting).
UPDATE deals SET won_at = least(ingested_at, changed_at) WHERE status = 'won';
