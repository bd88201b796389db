-- A `campaign` touchpoint names the co-marketing campaign (programme's id) the partner touched
-- the deal through; the partner's credits on the deal then carry it, so a campaign's
-- attributed revenue is a sum over credits. Only campaign touchpoints name one.
ALTER TABLE touchpoints ADD COLUMN campaign_id text;
ALTER TABLE touchpoints ADD CONSTRAINT touchpoints_campaign_named
    CHECK ((kind = 'campaign') = (campaign_id IS NOT NULL));
