-- The KPI report's revenue and top partners summed every credit there is on every read (the
-- console's dashboard asks for all time at each load): on the benchmark's 643k credits, 2.0 s
-- for revenue and 0.4-0.5 s for top partners, each credit meeting every version of its
-- partner in the join that finds its tier and type at issue. Those figures now sum running
-- totals kept per partner and every dimension the report groups or filters by: the quarter
-- the credit closed in, the partner's tier and type when the credit was issued, the
-- customer's country and the currency, net of reversals.
--
-- Kept by the repository where the facts are written (repository.py), under an advisory lock
-- per partner that every writer of a partner's facts takes first: a credit (added to its
-- key), a reversal (taken off its credit's key, once the credit is there: a reversal that came
-- first is taken off when its credit comes) and a partner version (which can arrive after
-- credits it applies to, so the partner's totals are summed again from its credits). The
-- credits stay the facts: a total can always be derived again from the rows it sums.
CREATE TABLE revenue_totals (
    partner_id   text    NOT NULL,
    quarter      date    NOT NULL,  -- the first day of the close date's quarter
    tier         text    NOT NULL,  -- at issue; 'unknown' before any version of the partner
    partner_type text    NOT NULL,
    region       text    NOT NULL,  -- the customer's country; 'unknown' when the CRM gave none
    currency     text    NOT NULL,
    sourced      numeric NOT NULL,
    influenced   numeric NOT NULL,
    PRIMARY KEY (partner_id, quarter, tier, partner_type, region, currency)
);
CREATE INDEX revenue_totals_by_quarter ON revenue_totals (quarter);

-- Filled from the credits there are. Writers of credits, reversals and versions wait for the
-- fill (one pass over the credits); a migration that waits more than 10 s for a lock fails,
-- and is run again.
SET LOCAL lock_timeout = '10s';
LOCK TABLE credits, credit_reversals, partner_versions IN SHARE MODE;

INSERT INTO revenue_totals
SELECT c.partner_id, date_trunc('quarter', c.close_date)::date,
       coalesce(p.tier, 'unknown'), coalesce(p.partner_type, 'unknown'),
       coalesce(c.customer_country, 'unknown'), c.currency,
       coalesce(sum(c.amount - coalesce(r.amount, 0)) FILTER (WHERE c.kind = 'sourced'), 0),
       coalesce(sum(c.amount - coalesce(r.amount, 0)) FILTER (WHERE c.kind = 'influenced'), 0)
FROM credits c
LEFT JOIN credit_reversals r USING (credit_id)
LEFT JOIN partner_spans p ON p.partner_id = c.partner_id
    AND c.issued_at >= p.valid_from AND c.issued_at < p.valid_to
WHERE isfinite(c.close_date)
GROUP BY 1, 2, 3, 4, 5, 6;
