-- Signals between onboarding and attribution's health score.
-- What onboarding last announced of a partner's enablement (partner.enablement_measured.v1):
-- announced again when the score moves, and at least once a day.
CREATE TABLE enablement_announced (
    partner_id   text PRIMARY KEY REFERENCES partners,
    score        numeric(5, 1) NOT NULL,
    measured_at  timestamptz NOT NULL
);

-- Each partner's health as attribution last scored it (partner.health_scored.v1): the newest
-- day wins, a late or repeated event changes nothing. One of the programme year's minimums.
CREATE TABLE partner_health (
    partner_id  text PRIMARY KEY,
    score       numeric(5, 1) NOT NULL,
    day         date NOT NULL,
    scored_at   timestamptz NOT NULL,
    reasons     text[] NOT NULL
);
