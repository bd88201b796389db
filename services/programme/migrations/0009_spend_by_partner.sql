-- A partner's business plan reads its own spend (new logos by rule and quarter, MDF claims
-- approved), as do the KPIs asked for one partner or one manager's partners. The one index
-- of spend_entries was by quarter, so each of those read every partner's entries: on the
-- benchmark's 1.9 million, two parallel scans a plan year (0.74-1.19 s a year's actuals).
CREATE INDEX spend_entries_by_partner ON spend_entries (partner_id, movement, quarter);
