-- The KPI report's revenue and top partners summed every credit there is on every read (the
-- console's dashboard asks for all time at each load): on the benchmark's 643k credits, 2.0 s
-- for revenue and 0.4-0.5 s for top partners, each credit meeting every version of its
-- partner in the join that finds its tier and type at issue. Those figures now sum running
-- totals kept per partner and every dimension the report groups or filters by: the quarter
-- the credit closed in, the partner's tier and type when the credit was issued, the
-- customer's country and the currency, net of reversals.
--
-- The database keeps them, by triggers on the facts, so whatever writes a fact (this version
-- of the service, an older one still running during an upgrade, an operator's repair) moves
-- its total in the same transaction. A credit adds to its key (net of a reversal already
-- there), a reversal takes its amount off its credit's key once the credit is there (a
-- credit that comes after its reversal counts net of it), and a partner version, which can
-- arrive after credits it applies to, sums its partner's totals again from the partner's
-- credits. The credits stay the facts: a total can always be derived from the rows it sums.
--
-- The triggers' functions run with this schema's search_path (fixed at creation), whatever
-- the writer's session names: an operator connected with another search_path still moves
-- this schema's totals. They look each reversal and credit up by its key (LIMIT 1 keeps the
-- lookup a lookup: the planner would otherwise flatten it into a join free to hash the whole
-- table), never reading a table whole: a session plans a trigger's statements once, for the
-- rows of its first call (a bulk load's, say), and a plan sized for those made every later
-- batch of 20 credits pay 176 ms, mostly compiling it (JIT, off for these functions: their
-- statements are small).
--
-- Concurrent writers of one partner's facts go one after the other, each seeing what the
-- others committed: every trigger first takes advisory locks (`revenue_lock`) on the partners
-- and the credits its rows touch, then reads (a statement after the lock sees what committed
-- before it was granted). A credit and its reversal written at once lock the credit; a
-- reversal then locks the partner of the credit it names. The consumers take a batch's keys
-- first, together and in order (services/programme/handlers.py), so batches never wait on
-- each other in opposite orders; a writer that does not (an older version) may meet a
-- deadlock, which Postgres ends and its consumer retries.
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

-- The advisory lock key of 'partner/<id>' or 'credit/<id>': one of 1,024, so that a statement
-- writing many facts (an operator's bulk load) holds at most that many locks; two names that
-- share a key only wait for each other. The keys lie in a range of their own.
CREATE FUNCTION revenue_lock_key(name text) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 7142000000 + (hashtextextended(name, 0) & 1023) $$;

-- Take the transaction's locks on `names` together, in ascending order of their keys.
CREATE FUNCTION revenue_lock(names text[]) RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(k)
    FROM (SELECT DISTINCT revenue_lock_key(name) AS k FROM unnest(names) AS name) AS keys
    ORDER BY k;
END $$;

-- The partner's tier and type when the credit `c` was issued: the version in force then (the
-- latest changed at or before it, the highest of versions changed at the same moment), or the
-- first one known for a credit older than any; none before any version. The answer migration
-- 0005's spans give, looked up a credit at a time (a batch's few credits) instead of spanning
-- every partner's versions.
CREATE FUNCTION version_at_issue(partner text, issued timestamptz)
RETURNS TABLE (tier text, partner_type text)
LANGUAGE sql STABLE
AS $$
    SELECT v.tier, v.partner_type FROM partner_versions v
    WHERE v.partner_id = partner
    ORDER BY v.changed_at <= issued DESC,
             CASE WHEN v.changed_at <= issued THEN v.changed_at END DESC,
             CASE WHEN v.changed_at <= issued THEN v.version END DESC,
             v.changed_at, v.version
    LIMIT 1
$$;

CREATE FUNCTION add_credits_to_revenue_totals() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
SET jit = off
AS $$
BEGIN
    PERFORM revenue_lock(ARRAY(
        SELECT 'partner/' || partner_id FROM new_credits
        UNION SELECT 'credit/' || credit_id FROM new_credits));
    -- A credit closing on no real day (an infinite date, stored before the contracts refused
    -- it) lies in no quarter: it counts nowhere.
    INSERT INTO revenue_totals AS t
    SELECT c.partner_id, date_trunc('quarter', c.close_date)::date,
           coalesce(p.tier, 'unknown'), coalesce(p.partner_type, 'unknown'),
           coalesce(c.customer_country, 'unknown'), c.currency,
           coalesce(sum(c.amount - coalesce(r.amount, 0)) FILTER (WHERE c.kind = 'sourced'), 0),
           coalesce(sum(c.amount - coalesce(r.amount, 0)) FILTER (WHERE c.kind = 'influenced'),
                    0)
    FROM new_credits c
    LEFT JOIN LATERAL (
        SELECT x.amount FROM credit_reversals x WHERE x.credit_id = c.credit_id LIMIT 1) r
        ON true
    LEFT JOIN LATERAL version_at_issue(c.partner_id, c.issued_at) p ON true
    WHERE isfinite(c.close_date)
    GROUP BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (partner_id, quarter, tier, partner_type, region, currency) DO UPDATE SET
        sourced = t.sourced + EXCLUDED.sourced, influenced = t.influenced + EXCLUDED.influenced;
    RETURN NULL;
END $$;

CREATE FUNCTION take_reversals_off_revenue_totals() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
SET jit = off
AS $$
BEGIN
    PERFORM revenue_lock(ARRAY(SELECT 'credit/' || credit_id FROM new_reversals));
    PERFORM revenue_lock(ARRAY(
        SELECT 'partner/' || c.partner_id FROM new_reversals r
        JOIN LATERAL (
            SELECT x.partner_id FROM credits x WHERE x.credit_id = r.credit_id LIMIT 1) c
            ON true));
    INSERT INTO revenue_totals AS t
    SELECT c.partner_id, date_trunc('quarter', c.close_date)::date,
           coalesce(p.tier, 'unknown'), coalesce(p.partner_type, 'unknown'),
           coalesce(c.customer_country, 'unknown'), c.currency,
           coalesce(-sum(r.amount) FILTER (WHERE c.kind = 'sourced'), 0),
           coalesce(-sum(r.amount) FILTER (WHERE c.kind = 'influenced'), 0)
    FROM new_reversals r
    JOIN LATERAL (SELECT * FROM credits x WHERE x.credit_id = r.credit_id LIMIT 1) c ON true
    LEFT JOIN LATERAL version_at_issue(c.partner_id, c.issued_at) p ON true
    WHERE isfinite(c.close_date)
    GROUP BY 1, 2, 3, 4, 5, 6
    ON CONFLICT (partner_id, quarter, tier, partner_type, region, currency) DO UPDATE SET
        sourced = t.sourced + EXCLUDED.sourced, influenced = t.influenced + EXCLUDED.influenced;
    RETURN NULL;
END $$;

-- The totals of the credits of `partners`, summed from the credits (through their partner's
-- index: a version re-sums one partner's credits, not all; each reversal looked up by its key,
-- as in the credits' trigger, whose aggregation this repeats over the transition table).
CREATE FUNCTION revenue_totals_from_credits(partners text[]) RETURNS SETOF revenue_totals
LANGUAGE sql STABLE
AS $$
    SELECT c.partner_id, date_trunc('quarter', c.close_date)::date,
           coalesce(p.tier, 'unknown'), coalesce(p.partner_type, 'unknown'),
           coalesce(c.customer_country, 'unknown'), c.currency,
           coalesce(sum(c.amount - coalesce(r.amount, 0)) FILTER (WHERE c.kind = 'sourced'), 0),
           coalesce(sum(c.amount - coalesce(r.amount, 0)) FILTER (WHERE c.kind = 'influenced'),
                    0)
    FROM credits c
    LEFT JOIN LATERAL (
        SELECT x.amount FROM credit_reversals x WHERE x.credit_id = c.credit_id LIMIT 1) r
        ON true
    LEFT JOIN LATERAL version_at_issue(c.partner_id, c.issued_at) p ON true
    WHERE c.partner_id = ANY(partners) AND isfinite(c.close_date)
    GROUP BY 1, 2, 3, 4, 5, 6
$$;

CREATE FUNCTION sum_versions_partners_again() RETURNS trigger
LANGUAGE plpgsql
SET search_path FROM CURRENT
SET jit = off
AS $$
DECLARE
    partners text[] := ARRAY(SELECT DISTINCT partner_id FROM new_versions);
BEGIN
    PERFORM revenue_lock(ARRAY(SELECT 'partner/' || p FROM unnest(partners) AS p));
    DELETE FROM revenue_totals WHERE partner_id = ANY(partners);
    INSERT INTO revenue_totals SELECT * FROM revenue_totals_from_credits(partners);
    RETURN NULL;
END $$;

-- No fact is written between the triggers' creation and the fill (writers wait for the
-- migration: one pass over the credits); a migration that waits more than 10 s for a lock
-- fails, and is run again.
SET LOCAL lock_timeout = '10s';
LOCK TABLE credits, credit_reversals, partner_versions IN SHARE ROW EXCLUSIVE MODE;

CREATE TRIGGER credits_add_to_revenue_totals AFTER INSERT ON credits
    REFERENCING NEW TABLE AS new_credits
    FOR EACH STATEMENT EXECUTE FUNCTION add_credits_to_revenue_totals();
CREATE TRIGGER reversals_take_off_revenue_totals AFTER INSERT ON credit_reversals
    REFERENCING NEW TABLE AS new_reversals
    FOR EACH STATEMENT EXECUTE FUNCTION take_reversals_off_revenue_totals();
CREATE TRIGGER versions_sum_revenue_totals_again AFTER INSERT ON partner_versions
    REFERENCING NEW TABLE AS new_versions
    FOR EACH STATEMENT EXECUTE FUNCTION sum_versions_partners_again();

INSERT INTO revenue_totals
SELECT * FROM revenue_totals_from_credits(ARRAY(SELECT DISTINCT partner_id FROM credits));
