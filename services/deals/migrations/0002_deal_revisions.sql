-- Every published merged state of a CRM opportunity carries a revision that only grows, so
-- downstream services can drop a late, older snapshot.
ALTER TABLE crm_deals ADD COLUMN revision integer NOT NULL DEFAULT 0;
ALTER TABLE crm_deals ADD COLUMN ingested_at timestamptz;
