-- Onboarding: applications and partners (one row per company domain), their certifications,
-- the attribution credits that drive tiers, and an audit trail of every lifecycle version.

CREATE TABLE partners (
    partner_id                   text PRIMARY KEY,
    company_name                 text NOT NULL,
    domain                       text NOT NULL UNIQUE,  -- normalised: duplicate applications meet here
    partner_type                 text NOT NULL,
    status                       text NOT NULL,
    tier                         text NOT NULL,
    version                      integer NOT NULL DEFAULT 0,  -- grows with every published snapshot
    application                  jsonb NOT NULL,     -- everything the applicant declared
    regions                      text[] NOT NULL,    -- authorised regions
    products_applied             text[] NOT NULL,
    products                     text[] NOT NULL DEFAULT '{}',  -- authorised products
    competencies                 text[] NOT NULL DEFAULT '{}',
    qualification                jsonb NOT NULL,     -- score, outcome, explanation per criterion
    qualification_outcome        text NOT NULL,      -- approve | review | reject
    decision_note                text,
    checklist                    jsonb NOT NULL DEFAULT '{}'::jsonb,  -- item -> completed at
    agreement_valid_until        timestamptz,
    revenue                      numeric(20, 4) NOT NULL DEFAULT 0,  -- as of the last evaluation
    grace_until                  timestamptz,
    suspended_at                 timestamptz,
    suspended_by_requalification boolean NOT NULL DEFAULT false,
    policy_version               text NOT NULL,
    reason                       text NOT NULL DEFAULT '',
    applied_at                   timestamptz NOT NULL,
    updated_at                   timestamptz NOT NULL
);
CREATE INDEX partners_review_queue ON partners (applied_at)
    WHERE status = 'applied' AND qualification_outcome = 'review';
CREATE INDEX partners_by_status ON partners (status);

CREATE TABLE partner_history (
    partner_id  text NOT NULL REFERENCES partners,
    version     integer NOT NULL,
    change      text NOT NULL,
    status      text NOT NULL,
    tier        text NOT NULL,
    reason      text NOT NULL,
    changed_at  timestamptz NOT NULL,
    PRIMARY KEY (partner_id, version)
);

CREATE TABLE certifications (
    certification_id  text PRIMARY KEY,
    partner_id        text NOT NULL REFERENCES partners,
    person            text NOT NULL,  -- lower-cased e-mail
    person_name       text,
    role              text NOT NULL CHECK (role IN ('sales', 'technical')),
    track             text NOT NULL,
    issued_at         timestamptz NOT NULL,
    expires_at        timestamptz NOT NULL CHECK (expires_at > issued_at),
    recorded_at       timestamptz NOT NULL,
    UNIQUE (partner_id, person, role, track, issued_at)
);

-- Credits as attribution issued them; a reversal cancels its credit (issued - reversed).
CREATE TABLE credits (
    credit_id    text PRIMARY KEY,
    partner_id   text NOT NULL,
    deal_key     text NOT NULL,
    kind         text NOT NULL,
    amount       numeric(20, 4) NOT NULL,
    currency     text NOT NULL,
    close_date   date NOT NULL,
    issued_at    timestamptz NOT NULL
);
CREATE INDEX credits_by_partner ON credits (partner_id, close_date);

CREATE TABLE credit_reversals (
    reversal_id  text PRIMARY KEY,
    credit_id    text NOT NULL,
    partner_id   text NOT NULL,
    amount       numeric(20, 4) NOT NULL,
    reversed_at  timestamptz NOT NULL
);
CREATE INDEX credit_reversals_by_credit ON credit_reversals (credit_id);
