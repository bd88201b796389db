-- A pre-approval's claim deadline counts from its campaign's last day (as programme last
-- announced it), not from the activity dates the partner typed, which were not checked
-- against the campaign before: a probe asked for two years of a ten-day campaign, and its
-- approval took claims for two years. The request now refuses dates outside the campaign
-- (domain/campaigns.check_within); rows written before stay as asked (the partner's words:
-- a requested one, approved now, counts from the campaign's end), and an approved one keeps
-- the claim window it was approved with (its deadline less its own last day), counted from
-- the campaign's last day instead, in UTC days as domain/preapprovals.claim_deadline counts.
-- One whose deadline thereby passed is expired by the next run of the expiry job, which
-- releases what no claim awaiting a decision asks for; expired and rejected ones are history.
UPDATE mdf_preapprovals AS p
SET expires_at = ((p.expires_at AT TIME ZONE 'UTC') + make_interval(days => c.ends_on - p.ends_on))
    AT TIME ZONE 'UTC'
FROM campaigns AS c
WHERE c.campaign_id = p.campaign_id
  AND p.status = 'approved'
  AND p.expires_at IS NOT NULL
  AND p.ends_on <> c.ends_on;

-- A moved campaign end moves its approved pre-approvals' deadlines (mdf_preapprovals.
-- follow_campaigns): found by campaign.
CREATE INDEX mdf_preapprovals_approved_by_campaign ON mdf_preapprovals (campaign_id)
    WHERE status = 'approved';
