-- Deals service schema: partner projection, CRM opportunity projection, registrations.

-- Partners as onboarding last described them (from partners.lifecycle.v1); never onboarding's DB.
CREATE TABLE partners (
    partner_id  text PRIMARY KEY,
    name        text NOT NULL,
    status      text NOT NULL,
    tier        text NOT NULL,
    regions     text[] NOT NULL DEFAULT '{}',
    products    text[] NOT NULL DEFAULT '{}',
    version     integer NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- Canonical CRM opportunities merged field by field; field_timestamps keeps each field's source
-- time so an older, late delivery never overwrites a newer value.
CREATE TABLE crm_deals (
    deal_key          text PRIMARY KEY,
    source            text NOT NULL,
    source_id         text NOT NULL,
    name              text,
    customer_name     text,
    customer_domain   text,
    customer_country  text,
    name_key          text NOT NULL DEFAULT '',
    products          text[],
    amount            numeric(20, 4),
    currency          text,
    stage             text,
    status            text NOT NULL DEFAULT 'open',
    close_date        date,
    owner             text,
    partner_ref       text,
    co_sell           boolean,
    created_at        timestamptz,
    deleted           boolean NOT NULL DEFAULT false,
    field_timestamps  jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX crm_deals_open_by_domain ON crm_deals (customer_domain) WHERE status = 'open' AND NOT deleted;
CREATE INDEX crm_deals_open_by_name_key ON crm_deals (name_key) WHERE status = 'open' AND NOT deleted;

CREATE TABLE registrations (
    registration_id   text PRIMARY KEY,
    partner_id        text NOT NULL,
    customer_name     text NOT NULL,
    customer_domain   text,
    customer_country  text,
    name_key          text NOT NULL,
    products          text[] NOT NULL,
    amount            numeric(20, 4) NOT NULL,
    currency          text NOT NULL,
    status            text NOT NULL,
    reasons           text[] NOT NULL,
    conflicts         jsonb NOT NULL,
    policy_version    text NOT NULL,
    inputs            jsonb NOT NULL,
    submitted_at      timestamptz NOT NULL,
    decided_at        timestamptz NOT NULL,
    expires_at        timestamptz,
    extensions_used   integer NOT NULL DEFAULT 0,
    crm_deal_key      text,
    updated_at        timestamptz NOT NULL
);
-- Conflict checks look up holding registrations by domain or by name key, newest window only.
CREATE INDEX registrations_holding_by_domain ON registrations (customer_domain, submitted_at)
    WHERE status IN ('submitted', 'approved', 'pending_review');
CREATE INDEX registrations_holding_by_name_key ON registrations (name_key, submitted_at)
    WHERE status IN ('submitted', 'approved', 'pending_review');
CREATE INDEX registrations_by_partner ON registrations (partner_id, submitted_at DESC);
CREATE INDEX registrations_due_to_expire ON registrations (expires_at) WHERE status = 'approved';
CREATE INDEX registrations_by_crm_deal ON registrations (crm_deal_key) WHERE crm_deal_key IS NOT NULL;
