-- Co-marketing campaigns (issue 21, item 4): the record (kind, dates, partners), the leads and
-- pipeline its partners report, and the facts heard from the owning services: MDF
-- pre-approvals and approved claims naming the campaign (incentives.ledger.v1) and credits
-- issued through its campaign touchpoint (attribution.credits.v1). A fact counts for a
-- campaign only if its partner is one of the campaign's (checked when read), since the
-- campaign id on an event is what a partner typed.
CREATE TABLE campaigns (
    campaign_id  text PRIMARY KEY,
    name         text        NOT NULL,
    kind         text        NOT NULL,
    description  text        NOT NULL DEFAULT '',
    starts_on    date        NOT NULL,
    ends_on      date        NOT NULL CHECK (ends_on >= starts_on),
    created_by   text        NOT NULL,
    created_at   timestamptz NOT NULL,
    cancelled_at timestamptz,
    cancelled_by text,
    cancel_reason text
);
CREATE INDEX campaigns_by_start ON campaigns (starts_on DESC);

CREATE TABLE campaign_partners (
    campaign_id text NOT NULL REFERENCES campaigns (campaign_id),
    partner_id  text NOT NULL,
    PRIMARY KEY (campaign_id, partner_id)
);
CREATE INDEX campaign_partners_by_partner ON campaign_partners (partner_id);

-- Leads and pipeline as a partner (or its manager) reports them: every report is kept; the
-- latest of each partner is the campaign's figure.
CREATE TABLE campaign_result_reports (
    report_id   bigserial PRIMARY KEY,
    campaign_id text          NOT NULL REFERENCES campaigns (campaign_id),
    partner_id  text          NOT NULL,
    leads       integer       NOT NULL CHECK (leads >= 0),
    pipeline    numeric(20, 2) NOT NULL CHECK (pipeline >= 0),
    currency    text          NOT NULL,
    reported_by text          NOT NULL,
    reported_at timestamptz   NOT NULL
);
CREATE INDEX campaign_result_reports_latest
    ON campaign_result_reports (campaign_id, partner_id, report_id DESC);

-- The latest state of each MDF pre-approval (incentive.mdf_preapproval_changed.v1).
CREATE TABLE campaign_preapprovals (
    preapproval_id text PRIMARY KEY,
    campaign_id    text          NOT NULL,
    partner_id     text          NOT NULL,
    status         text          NOT NULL,
    amount         numeric(20, 2) NOT NULL,
    reserved       numeric(20, 2) NOT NULL,
    claimed        numeric(20, 2) NOT NULL,
    currency       text          NOT NULL,
    changed_at     timestamptz   NOT NULL
);
CREATE INDEX campaign_preapprovals_by_campaign ON campaign_preapprovals (campaign_id);

-- Approved MDF claims against a campaign's pre-approvals (incentive.mdf_claim_decided.v1).
CREATE TABLE campaign_claims (
    claim_id       text PRIMARY KEY,
    campaign_id    text          NOT NULL,
    preapproval_id text          NOT NULL,
    partner_id     text          NOT NULL,
    amount         numeric(20, 2) NOT NULL,
    currency       text          NOT NULL,
    decided_at     timestamptz   NOT NULL
);
CREATE INDEX campaign_claims_by_campaign ON campaign_claims (campaign_id);

-- Credits issued through a campaign touchpoint (the credit itself is in `credits`, its
-- reversal, if any, in `credit_reversals`).
CREATE TABLE campaign_credits (
    credit_id   text PRIMARY KEY,
    campaign_id text NOT NULL
);
CREATE INDEX campaign_credits_by_campaign ON campaign_credits (campaign_id);
