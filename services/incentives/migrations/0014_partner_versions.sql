-- Every version of a partner the projection heard of, with when it changed: a credit is judged
-- by the partner as it was when the credit was issued (eligible, tier, type), not as it is
-- when incentives gets to it (credits and lifecycle changes are two topics read by two
-- consumer groups: which one lagged decided what a credit earned; a partner suspended after
-- its credit was issued earned nothing for it, one reinstated before a late credit of its
-- suspension earned it). The projection's current row stays: a partner waiting at the credit's
-- issue (applied, onboarding) or never heard of then is judged as it is now.
CREATE TABLE partner_versions (
    partner_id   text NOT NULL,
    version      integer NOT NULL,
    changed_at   timestamptz NOT NULL,
    tier         text NOT NULL,
    status       text NOT NULL,
    partner_type text,
    PRIMARY KEY (partner_id, version)
);
CREATE INDEX partner_versions_by_time ON partner_versions (partner_id, changed_at DESC);

INSERT INTO partner_versions (partner_id, version, changed_at, tier, status, partner_type)
SELECT partner_id, version, updated_at, tier, status, partner_type FROM partners;
