-- The programme year: each partner's annual reviews (and its probation's deadline) with the
-- decision and its reasons, the notices sent before a review (each once), and appeals.
CREATE TABLE programme_reviews (
    review_id        text PRIMARY KEY,
    partner_id       text NOT NULL REFERENCES partners,
    review_on        date NOT NULL,
    basis            text NOT NULL CHECK (basis IN ('annual', 'probation_end')),
    outcome          text NOT NULL
                     CHECK (outcome IN ('requalified', 'demoted', 'probation', 'expelled')),
    status_before    text NOT NULL,
    status_after     text NOT NULL,
    tier_before      text NOT NULL,
    tier_after       text NOT NULL,
    reasons          text[] NOT NULL,
    plan             text[] NOT NULL DEFAULT '{}',
    probation_until  date,
    appeal_until     timestamptz,
    decided_at       timestamptz NOT NULL,
    reversed_at      timestamptz,  -- an upheld appeal reversed it
    UNIQUE (partner_id, review_on, basis)
);
CREATE INDEX programme_reviews_by_partner ON programme_reviews (partner_id, decided_at);

CREATE TABLE programme_notices (
    partner_id   text NOT NULL REFERENCES partners,
    review_on    date NOT NULL,
    days_before  integer NOT NULL,
    sent_at      timestamptz NOT NULL,
    PRIMARY KEY (partner_id, review_on, days_before)
);

CREATE TABLE requalification_appeals (
    appeal_id   text PRIMARY KEY,
    review_id   text NOT NULL UNIQUE REFERENCES programme_reviews,
    partner_id  text NOT NULL REFERENCES partners,
    grounds     text NOT NULL,
    filed_by    text NOT NULL,
    filed_at    timestamptz NOT NULL,
    upheld      boolean,
    note        text,
    decided_by  text,
    decided_at  timestamptz
);
