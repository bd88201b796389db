-- A deal merged into another (HubSpot deal.merge) remembers the survivor's key: every later
-- state of the merged deal says where it went, so downstream moves what it holds for it
-- (attribution: reported touchpoints and credits) to the survivor.
ALTER TABLE crm_deals ADD COLUMN merged_into text;
