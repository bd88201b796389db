-- The campaign projection (programme.campaign_changed.v1 on programme.campaigns.v1): each
-- co-marketing campaign as programme last described it, so a `campaign` touchpoint can name
-- only a campaign its partner runs, on a day the campaign ran (domain/campaigns.py). The
-- newest change wins; a cancellation is final, whatever arrives after it.
CREATE TABLE campaigns (
    campaign_id  text PRIMARY KEY,
    partner_ids  text[]      NOT NULL,
    starts_on    date        NOT NULL,
    ends_on      date        NOT NULL,
    cancelled_at timestamptz,
    changed_at   timestamptz NOT NULL
);
