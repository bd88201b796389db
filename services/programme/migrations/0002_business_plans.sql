-- Joint business plans and quarterly business reviews, and what their actuals need from the
-- facts: a partner version's competencies (its certifications, from onboarding) and an
-- incentive entry's rule and deal (new logos, from incentives' new-logo kickers).
ALTER TABLE partner_versions ADD COLUMN competencies text[] NOT NULL DEFAULT '{}';
ALTER TABLE spend_entries ADD COLUMN rule text, ADD COLUMN deal_key text;

-- One plan per partner and year: the goals both sides agree. A channel manager proposes (or
-- revises: the next revision, proposed again); the partner accepts or declines it.
CREATE TABLE business_plans (
    partner_id      text          NOT NULL,
    year            integer       NOT NULL CHECK (year BETWEEN 2000 AND 2100),
    revision        integer       NOT NULL CHECK (revision >= 1),
    state           text          NOT NULL CHECK (state IN ('proposed', 'accepted', 'declined')),
    currency        text          NOT NULL,
    sourced_revenue numeric(20, 2) NOT NULL CHECK (sourced_revenue >= 0),
    certifications  integer       NOT NULL CHECK (certifications >= 0),
    new_logos       integer       NOT NULL CHECK (new_logos >= 0),
    campaigns       integer       NOT NULL CHECK (campaigns >= 0),
    note            text          NOT NULL DEFAULT '',
    proposed_by     text          NOT NULL,
    proposed_at     timestamptz   NOT NULL,
    responded_by    text,
    responded_at    timestamptz,
    response_note   text,
    PRIMARY KEY (partner_id, year)
);

-- Every revision and answer, as it happened.
CREATE TABLE business_plan_history (
    partner_id text        NOT NULL,
    year       integer     NOT NULL,
    seq        integer     NOT NULL,
    revision   integer     NOT NULL,
    state      text        NOT NULL,
    goals      jsonb       NOT NULL,
    acted_by   text        NOT NULL,
    note       text        NOT NULL,
    at         timestamptz NOT NULL,
    PRIMARY KEY (partner_id, year, seq),
    FOREIGN KEY (partner_id, year) REFERENCES business_plans
);

-- A quarterly business review: the accepted plan's goals against the actuals as they stood
-- when it was recorded (a record of the meeting: it does not move with later events).
CREATE TABLE business_reviews (
    review_id     uuid PRIMARY KEY,
    partner_id    text        NOT NULL,
    year          integer     NOT NULL,
    quarter       text        NOT NULL,
    plan_revision integer     NOT NULL,
    lines         jsonb       NOT NULL,
    summary       text        NOT NULL,
    actions       jsonb       NOT NULL,
    recorded_by   text        NOT NULL,
    recorded_at   timestamptz NOT NULL,
    UNIQUE (partner_id, quarter),
    FOREIGN KEY (partner_id, year) REFERENCES business_plans
);
