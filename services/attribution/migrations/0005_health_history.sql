-- Partner health, stored daily: one row per partner and day (a later run the same day
-- replaces it), with its components, inputs and reasons, so the history can be read back and
-- a score traced to its figures. `published` marks the rows announced on attribution.health.v1
-- (a day's score is announced when it differs from the last one announced).
CREATE TABLE health_scores (
    partner_id      text NOT NULL,
    day             date NOT NULL,
    score           numeric(5, 1) NOT NULL CHECK (score BETWEEN 0 AND 100),
    revenue         numeric(6, 4) NOT NULL,
    win_rate        numeric(6, 4) NOT NULL,
    velocity        numeric(6, 4) NOT NULL,
    enablement      numeric(6, 4),
    penalty         numeric(6, 2) NOT NULL,
    inputs          jsonb NOT NULL,
    reasons         text[] NOT NULL,
    config_version  text NOT NULL,
    scored_at       timestamptz NOT NULL,
    published       boolean NOT NULL DEFAULT false,
    PRIMARY KEY (partner_id, day)
);
CREATE INDEX health_scores_published ON health_scores (partner_id, day) WHERE published;

-- Onboarding's enablement signal per partner (partner.enablement_measured.v1): the newest
-- measurement wins, a late or repeated one changes nothing.
CREATE TABLE enablement_signals (
    partner_id   text PRIMARY KEY,
    score        numeric(5, 1) NOT NULL,
    measured_at  timestamptz NOT NULL,
    people       integer NOT NULL,
    reasons      text[] NOT NULL
);
