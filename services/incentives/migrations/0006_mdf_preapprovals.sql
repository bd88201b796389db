-- MDF pre-approvals (domain/preapprovals.py): a partner's budget for a campaign, asked for
-- before spending; approval reserves it in the fund, claims against it draw on the
-- reservation, expiry releases what is left. `mdf_funds.reserved` is the sum of the
-- pre-approvals' `reserved`, kept by the use case under the fund's row lock.
ALTER TABLE mdf_funds
    ADD COLUMN reserved numeric(20, 2) NOT NULL DEFAULT 0 CHECK (reserved >= 0);

CREATE TABLE mdf_preapprovals (
    preapproval_id  text PRIMARY KEY,
    partner_id      text NOT NULL REFERENCES mdf_funds (partner_id),
    -- The partner's own reference: a retried request with the same one is the same request.
    reference       text NOT NULL,
    campaign_id     text NOT NULL,
    activity_kind   text NOT NULL,
    description     text NOT NULL,
    starts_on       date NOT NULL,
    ends_on         date NOT NULL CHECK (ends_on >= starts_on),
    amount          numeric(20, 2) NOT NULL CHECK (amount > 0),
    currency        text NOT NULL,
    status          text NOT NULL CHECK (status IN ('requested', 'approved', 'rejected', 'expired')),
    reason          text NOT NULL DEFAULT '',
    reserved        numeric(20, 2) NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    claimed         numeric(20, 2) NOT NULL DEFAULT 0 CHECK (claimed >= 0),
    expires_at      timestamptz,
    requested_at    timestamptz NOT NULL,
    decided_at      timestamptz,
    expired_at      timestamptz,
    UNIQUE (partner_id, reference),
    CHECK (reserved + claimed <= amount)
);
CREATE INDEX mdf_preapprovals_by_partner ON mdf_preapprovals (partner_id, requested_at DESC);
CREATE INDEX mdf_preapprovals_due ON mdf_preapprovals (expires_at) WHERE status = 'approved';

ALTER TABLE mdf_claims ADD COLUMN preapproval_id text REFERENCES mdf_preapprovals (preapproval_id);
CREATE INDEX mdf_claims_by_preapproval ON mdf_claims (preapproval_id) WHERE preapproval_id IS NOT NULL;
