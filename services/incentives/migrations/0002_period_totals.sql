-- Running totals per partner and period, kept by triggers in the transaction that writes the
-- entries: booking a credit reads its partner's period totals from one row instead of summing
-- every entry of the period (a cost that grew with the partner's history). The ledgers are
-- append-only, so an insert is the only change to follow.
CREATE TABLE period_totals (
    partner_id  text           NOT NULL,
    period      text           NOT NULL,
    earned      numeric(20, 2) NOT NULL DEFAULT 0,  -- ledger entries, payouts left out
    accrued     numeric(20, 2) NOT NULL DEFAULT 0,  -- MDF accruals and their reversals
    PRIMARY KEY (partner_id, period)
);

INSERT INTO period_totals (partner_id, period, earned, accrued)
SELECT partner_id, period, sum(earned), sum(accrued)
FROM (
    SELECT partner_id, period, amount AS earned, 0 AS accrued
    FROM ledger_entries WHERE entry_type <> 'payout'
    UNION ALL
    SELECT partner_id, period, 0, amount
    FROM mdf_entries WHERE entry_type IN ('accrual', 'reversal')
) AS entries
GROUP BY partner_id, period;

CREATE FUNCTION add_earned_to_period_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO period_totals AS t (partner_id, period, earned)
    SELECT partner_id, period, sum(amount) FROM new_entries
    WHERE entry_type <> 'payout'
    GROUP BY partner_id, period ORDER BY partner_id, period
    ON CONFLICT (partner_id, period) DO UPDATE SET earned = t.earned + EXCLUDED.earned;
    RETURN NULL;
END
$$;

CREATE TRIGGER ledger_entries_period_totals
    AFTER INSERT ON ledger_entries REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION add_earned_to_period_totals();

CREATE FUNCTION add_accrued_to_period_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO period_totals AS t (partner_id, period, accrued)
    SELECT partner_id, period, sum(amount) FROM new_entries
    WHERE entry_type IN ('accrual', 'reversal')
    GROUP BY partner_id, period ORDER BY partner_id, period
    ON CONFLICT (partner_id, period) DO UPDATE SET accrued = t.accrued + EXCLUDED.accrued;
    RETURN NULL;
END
$$;

CREATE TRIGGER mdf_entries_period_totals
    AFTER INSERT ON mdf_entries REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION add_accrued_to_period_totals();
