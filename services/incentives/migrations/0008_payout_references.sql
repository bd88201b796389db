-- A payout is idempotent per (partner, reference): finance retrying "wire-123" answers with the
-- payout recorded under it, never pays twice. One row per payout, naming its ledger entry; the
-- primary key refuses a second payout under the same reference whatever the requests' timing
-- (the use case also looks it up under the partner's lock, so a retry finds the first).
-- Kept beside the append-only ledger rather than as a unique index on it: a ledger written
-- before this migration may hold two payouts under one reference, and they stay as paid.
CREATE TABLE payout_references (
    partner_id     text NOT NULL,
    reference      text NOT NULL,
    entry_id       text NOT NULL UNIQUE REFERENCES ledger_entries (entry_id),
    -- What the request asked for (positive); NULL: the whole balance.
    requested      numeric(20, 2) CHECK (requested > 0),
    balance_after  numeric(20, 2) NOT NULL,
    PRIMARY KEY (partner_id, reference)
);
CREATE TRIGGER payout_references_append_only BEFORE UPDATE OR DELETE ON payout_references
    FOR EACH ROW EXECUTE FUNCTION refuse_ledger_change();
CREATE TRIGGER payout_references_no_truncate BEFORE TRUNCATE ON payout_references
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_ledger_change();

-- Payouts recorded before: the first under each reference names it, as asked for its amount
-- (whether its request named one was not recorded).
INSERT INTO payout_references (partner_id, reference, entry_id, requested, balance_after)
SELECT DISTINCT ON (partner_id, reference) partner_id, reference, entry_id, -amount, balance_after
FROM (
    SELECT *, sum(amount) OVER (PARTITION BY partner_id ORDER BY seq) AS balance_after
    FROM ledger_entries
) AS entries
WHERE entry_type = 'payout' AND reference IS NOT NULL
ORDER BY partner_id, reference, seq;
