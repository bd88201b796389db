-- The partner as the programme's own events describe it, beside the lifecycle's versions:
-- its account manager (partners.programme.v1 `partner.account_manager_assigned.v1`), its
-- latest annual review and the appeal of it (`partner.requalification_decided.v1`,
-- `partner.requalification_appeal_decided.v1`) and its latest health score
-- (attribution.health.v1). One row per partner; each part keeps the newest word (its own
-- moment decides), so a late or repeated event changes nothing.
CREATE TABLE partner_profiles (
    partner_id            text PRIMARY KEY,
    account_manager       text,
    manager_assigned_at   timestamptz,
    health_score          numeric(5, 1),
    health_previous       numeric(5, 1),
    health_day            date,
    review_id             text,
    review_on             date,
    review_outcome        text,
    review_reasons        text[],
    probation_until       date,
    review_decided_at     timestamptz,
    appeal_upheld         boolean,
    appeal_decided_at     timestamptz
);
CREATE INDEX partner_profiles_by_manager ON partner_profiles (account_manager, partner_id);

-- A partner's standing now: its latest lifecycle version (tier, type, status) and its profile.
-- A partner known only from one side shows the other side empty.
CREATE VIEW partner_book AS
SELECT coalesce(v.partner_id, p.partner_id) AS partner_id,
       v.tier, v.partner_type, v.status, v.regions,
       p.account_manager, p.manager_assigned_at, p.health_score, p.health_previous,
       p.health_day, p.review_id, p.review_on, p.review_outcome, p.review_reasons,
       p.probation_until, p.review_decided_at, p.appeal_upheld, p.appeal_decided_at
FROM (SELECT DISTINCT ON (partner_id) partner_id, tier, partner_type, status, regions
      FROM partner_versions ORDER BY partner_id, version DESC) v
FULL JOIN partner_profiles p ON p.partner_id = v.partner_id;
