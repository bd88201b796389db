-- Each partner version's span of time: from its `changed_at` to the next version's (the last
-- runs on; the first also covers everything before it, for a fact older than any version
-- known). A fact joins the one span holding its moment: one hash join instead of a lookup per
-- fact. Versions with the same moment leave the highest in force, as onboarding applied them.
CREATE VIEW partner_spans AS
SELECT partner_id, version, tier, partner_type, regions,
       CASE WHEN row_number() OVER w = 1 THEN '-infinity'::timestamptz ELSE changed_at END
           AS valid_from,
       coalesce(lead(changed_at) OVER w, 'infinity'::timestamptz) AS valid_to
FROM partner_versions
WINDOW w AS (PARTITION BY partner_id ORDER BY changed_at, version);
