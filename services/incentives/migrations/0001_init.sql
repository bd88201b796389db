-- Incentives service schema: partner projection, credits seen, first-customer / first-region
-- history, the append-only incentive ledger, MDF funds, lots, ledger and claims.

-- Partners as onboarding last described them (partners.lifecycle.v1); older versions ignored.
CREATE TABLE partners (
    partner_id  text PRIMARY KEY,
    tier        text NOT NULL,
    status      text NOT NULL,
    version     integer NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- Every credit processed (by credit id: the same credit twice pays once) and what it was judged.
CREATE TABLE credits (
    credit_id         text PRIMARY KEY,
    partner_id        text NOT NULL,
    deal_key          text NOT NULL,
    kind              text NOT NULL,
    amount            numeric NOT NULL,
    currency          text NOT NULL,
    customer_key      text,
    region            text,
    period            text NOT NULL,
    tier              text NOT NULL,
    new_logo          boolean NOT NULL,
    new_region        boolean NOT NULL,
    programs_version  text NOT NULL,
    notes             text[] NOT NULL DEFAULT '{}',
    ingested_at       timestamptz,
    processed_at      timestamptz NOT NULL,
    reversal_id       text,
    reversed_at       timestamptz
);
CREATE INDEX credits_by_partner ON credits (partner_id, processed_at DESC);

-- A reversal that arrived before its credit: applied as soon as the credit arrives.
CREATE TABLE pending_reversals (
    credit_id    text PRIMARY KEY,
    reversal     jsonb NOT NULL,
    received_at  timestamptz NOT NULL
);

-- The first deal each customer (normalised domain, else name) was credited on: "new logo".
CREATE TABLE customers (
    customer_key     text PRIMARY KEY,
    first_deal_key   text NOT NULL,
    first_credit_id  text NOT NULL,
    first_seen_at    timestamptz NOT NULL
);

-- The first credited deal of each partner in each region: "first deal in a new region".
CREATE TABLE partner_regions (
    partner_id       text NOT NULL,
    region           text NOT NULL,
    first_deal_key   text NOT NULL,
    first_credit_id  text NOT NULL,
    PRIMARY KEY (partner_id, region)
);

-- Append-only ledgers: a trigger refuses UPDATE, DELETE and TRUNCATE (the owner role cannot be
-- denied these by REVOKE, so the table itself enforces it).
CREATE FUNCTION refuse_ledger_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$;

CREATE TABLE ledger_entries (
    seq               bigserial UNIQUE,
    entry_id          text PRIMARY KEY,
    partner_id        text NOT NULL,
    entry_type        text NOT NULL
        CHECK (entry_type IN ('accrual', 'kicker', 'spiff', 'reversal', 'payout')),
    rule              text NOT NULL,
    period            text NOT NULL,
    credit_id         text,
    deal_key          text,
    basis             numeric,
    rate              numeric,
    uncapped_amount   numeric(20, 2),
    amount            numeric(20, 2) NOT NULL,
    currency          text NOT NULL,
    note              text NOT NULL DEFAULT '',
    tier              text,
    programs_version  text NOT NULL,
    reverses          text UNIQUE REFERENCES ledger_entries (entry_id),
    reference         text,
    created_at        timestamptz NOT NULL,
    ingested_at       timestamptz,
    CHECK ((entry_type = 'reversal') = (reverses IS NOT NULL)),
    CHECK (entry_type IN ('reversal', 'payout') OR amount >= 0)
);
CREATE INDEX ledger_by_partner_period ON ledger_entries (partner_id, period, seq);
CREATE INDEX ledger_by_credit ON ledger_entries (credit_id) WHERE credit_id IS NOT NULL;
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION refuse_ledger_change();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_ledger_change();

-- One row per partner fund: the row every MDF movement locks (SELECT ... FOR UPDATE), so
-- concurrent claims serialise and can never overdraw.
CREATE TABLE mdf_funds (
    partner_id  text PRIMARY KEY,
    deficit     numeric(20, 2) NOT NULL DEFAULT 0 CHECK (deficit >= 0),
    created_at  timestamptz NOT NULL
);

-- One lot per accrual: what is left of it and when it expires.
CREATE TABLE mdf_lots (
    lot_id      text PRIMARY KEY,
    partner_id  text NOT NULL REFERENCES mdf_funds (partner_id),
    credit_id   text NOT NULL UNIQUE,
    amount      numeric(20, 2) NOT NULL CHECK (amount >= 0),
    remaining   numeric(20, 2) NOT NULL CHECK (remaining >= 0),
    expired     numeric(20, 2) NOT NULL DEFAULT 0 CHECK (expired >= 0),
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL,
    CHECK (remaining + expired <= amount)
);
CREATE INDEX mdf_lots_live ON mdf_lots (partner_id, expires_at) WHERE remaining > 0;

CREATE TABLE mdf_claims (
    claim_id         text PRIMARY KEY,
    partner_id       text NOT NULL,
    amount           numeric(20, 2) NOT NULL CHECK (amount > 0),
    currency         text NOT NULL,
    description      text NOT NULL,
    proof_reference  text NOT NULL,
    status           text NOT NULL CHECK (status IN ('requested', 'approved', 'rejected')),
    reason           text NOT NULL DEFAULT '',
    requested_at     timestamptz NOT NULL,
    decided_at       timestamptz
);
CREATE INDEX mdf_claims_by_partner ON mdf_claims (partner_id, requested_at DESC);

CREATE TABLE mdf_entries (
    seq               bigserial UNIQUE,
    entry_id          text PRIMARY KEY,
    partner_id        text NOT NULL REFERENCES mdf_funds (partner_id),
    entry_type        text NOT NULL
        CHECK (entry_type IN ('accrual', 'reversal', 'claim', 'expiry', 'expiry_reversal')),
    rule              text NOT NULL,
    period            text NOT NULL,
    credit_id         text,
    lot_id            text REFERENCES mdf_lots (lot_id),
    claim_id          text UNIQUE REFERENCES mdf_claims (claim_id),
    basis             numeric,
    rate              numeric,
    uncapped_amount   numeric(20, 2),
    amount            numeric(20, 2) NOT NULL,
    currency          text NOT NULL,
    note              text NOT NULL DEFAULT '',
    reverses          text UNIQUE REFERENCES mdf_entries (entry_id),
    programs_version  text NOT NULL,
    created_at        timestamptz NOT NULL,
    ingested_at       timestamptz
);
CREATE INDEX mdf_entries_by_partner_period ON mdf_entries (partner_id, period, seq);
CREATE TRIGGER mdf_entries_append_only BEFORE UPDATE OR DELETE ON mdf_entries
    FOR EACH ROW EXECUTE FUNCTION refuse_ledger_change();
CREATE TRIGGER mdf_entries_no_truncate BEFORE TRUNCATE ON mdf_entries
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_ledger_change();
