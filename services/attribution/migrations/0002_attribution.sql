-- Attribution: the latest state of each deal, its touchpoints, the credit ledger, and the
-- registration signals behind the partner health score.

CREATE TABLE deals (
    deal_key     text PRIMARY KEY,
    source       text NOT NULL,
    revision     integer NOT NULL,           -- the newest snapshot applied; older ones are dropped
    status       text NOT NULL,              -- open | won | lost
    deleted      boolean NOT NULL DEFAULT false,
    amount       numeric,
    currency     text,
    close_date   date,
    customer     jsonb NOT NULL,
    products     text[] NOT NULL DEFAULT '{}',
    co_sell      boolean NOT NULL DEFAULT false,
    partner_ref  text,
    created_at   timestamptz,
    changed_at   timestamptz NOT NULL,
    ingested_at  timestamptz,
    calculation  integer NOT NULL DEFAULT 0,  -- bumps with every settlement that moved credits
    last_note    text,                        -- why credits did (or did not) move last time
    updated_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE touchpoints (
    touchpoint_id       text PRIMARY KEY,     -- registration:<id> | crm:<deal>:<partner> | tp_...
    deal_key            text NOT NULL,
    partner_id          text NOT NULL,
    kind                text NOT NULL,
    occurred_at         timestamptz NOT NULL,
    source              text NOT NULL,
    origin              text NOT NULL CHECK (origin IN ('registration', 'crm', 'api')),
    external_id         text,
    registration_status text,
    active              boolean NOT NULL DEFAULT true,
    reported_by         text,
    received_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX touchpoints_by_deal ON touchpoints (deal_key);
CREATE INDEX touchpoints_by_partner ON touchpoints (partner_id);

-- Append-only in meaning: a credit is issued once and, if it changes, reversed in full
-- (reversal columns) and replaced by a new credit. Active credits: reversed_at IS NULL.
CREATE TABLE credits (
    credit_id         text PRIMARY KEY,
    deal_key          text NOT NULL,
    partner_id        text NOT NULL,
    kind              text NOT NULL CHECK (kind IN ('sourced', 'influenced')),
    amount            numeric NOT NULL CHECK (amount >= 0),
    currency          text NOT NULL,
    original_amount   numeric NOT NULL CHECK (original_amount >= 0),
    original_currency text NOT NULL,
    fx_rate           numeric NOT NULL CHECK (fx_rate > 0),
    share             numeric NOT NULL,
    model             text NOT NULL,
    config_version    text NOT NULL,
    reasons           jsonb NOT NULL,
    close_date        date NOT NULL,
    deal_revision     integer NOT NULL,
    replaces          text REFERENCES credits (credit_id),
    issued_at         timestamptz NOT NULL,
    reversal_id       text UNIQUE,
    reversal_reason   text,
    reversed_at       timestamptz,
    CHECK ((reversed_at IS NULL) = (reversal_id IS NULL))
);
CREATE UNIQUE INDEX credits_one_active_per_partner
    ON credits (deal_key, partner_id, kind) WHERE reversed_at IS NULL;
CREATE INDEX credits_by_partner ON credits (partner_id, close_date);
CREATE INDEX credits_by_deal ON credits (deal_key);

CREATE TABLE registrations (
    registration_id text PRIMARY KEY,
    partner_id      text NOT NULL,
    status          text NOT NULL,
    conflicts       integer NOT NULL DEFAULT 0,
    crm_deal_key    text,
    changed_at      timestamptz NOT NULL
);
CREATE INDEX registrations_by_partner ON registrations (partner_id, changed_at);
