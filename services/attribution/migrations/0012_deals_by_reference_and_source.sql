-- The references deals name, CRM by CRM, read without reading the deals: the console's
-- unmatched references (views.py) step from one (reference, source) to the next through this
-- index, one probe each, where a read of every deal naming a reference went over the whole
-- table (1.2 million deals for the 4.4k unmatched among them). It serves the lookups by
-- reference alone too (its first column), so it takes the place of the index on it.
CREATE INDEX deals_by_partner_ref_and_source ON deals (partner_ref, source)
    WHERE partner_ref IS NOT NULL;
DROP INDEX deals_by_partner_ref;
