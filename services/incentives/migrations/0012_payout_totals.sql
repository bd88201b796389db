-- The finance team's payouts view (and the console's dashboard, at every load, for its paid
-- total) summed the whole ledger three times: per partner what a period earned, had reversed
-- and was paid, every period there is, and the latest payouts by time (on the benchmark's 2.3
-- million entries, three parallel scans of 692 MB a view). The running totals the booking
-- path already keeps per partner and period now carry what the view reads: reversals,
-- payouts, the latest payout's time and how many ledger entries there are (an MDF accrual
-- alone also makes a row), so the view sums partners x periods rows, not entries.

-- Both tables are locked whole first, for the migration's length: no entry is written between
-- the trigger's change and the backfill (each entry counted once, by one of them). The totals
-- first: a booking reads them before it writes the ledger, so it finishes before the migration
-- asks for the ledger. A payout or a clawback writes the ledger before the totals: one caught
-- between the two locks is a deadlock's victim: the migration (run again), or the writer (its
-- consumer retries; an HTTP caller gets a 503 to retry). Writers wait as long as the
-- backfill's one scan of the ledger takes; a migration that waits 10 s for a lock fails.
SET LOCAL lock_timeout = '10s';
LOCK TABLE period_totals IN ACCESS EXCLUSIVE MODE;
LOCK TABLE ledger_entries IN SHARE MODE;

ALTER TABLE period_totals
    ADD COLUMN reversed     numeric(20, 2) NOT NULL DEFAULT 0,  -- within earned
    ADD COLUMN paid         numeric(20, 2) NOT NULL DEFAULT 0,  -- payouts, negative as booked
    ADD COLUMN last_paid_at timestamptz,
    ADD COLUMN entries      bigint NOT NULL DEFAULT 0;          -- ledger entries, payouts too

CREATE OR REPLACE FUNCTION add_earned_to_period_totals() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO period_totals AS t (partner_id, period, earned, reversed, paid, last_paid_at,
                                    entries)
    SELECT partner_id, period,
           coalesce(sum(amount) FILTER (WHERE entry_type <> 'payout'), 0),
           coalesce(sum(amount) FILTER (WHERE entry_type = 'reversal'), 0),
           coalesce(sum(amount) FILTER (WHERE entry_type = 'payout'), 0),
           max(created_at) FILTER (WHERE entry_type = 'payout'),
           count(*)
    FROM new_entries
    GROUP BY partner_id, period ORDER BY partner_id, period
    ON CONFLICT (partner_id, period) DO UPDATE SET
        earned = t.earned + EXCLUDED.earned,
        reversed = t.reversed + EXCLUDED.reversed,
        paid = t.paid + EXCLUDED.paid,
        last_paid_at = greatest(t.last_paid_at, EXCLUDED.last_paid_at),
        entries = t.entries + EXCLUDED.entries;
    RETURN NULL;
END
$$;

INSERT INTO period_totals AS t (partner_id, period, reversed, paid, last_paid_at, entries)
SELECT partner_id, period,
       coalesce(sum(amount) FILTER (WHERE entry_type = 'reversal'), 0),
       coalesce(sum(amount) FILTER (WHERE entry_type = 'payout'), 0),
       max(created_at) FILTER (WHERE entry_type = 'payout'),
       count(*)
FROM ledger_entries
GROUP BY partner_id, period
ON CONFLICT (partner_id, period) DO UPDATE SET
    reversed = EXCLUDED.reversed,
    paid = EXCLUDED.paid,
    last_paid_at = EXCLUDED.last_paid_at,
    entries = EXCLUDED.entries;

-- The latest payouts, newest first, without sorting every payout ever made.
CREATE INDEX ledger_payouts_by_time ON ledger_entries (created_at DESC, entry_id)
    WHERE entry_type = 'payout';
