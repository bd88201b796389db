-- What is left in each partner's lots, kept by triggers in the transaction that changes the
-- lots: booking reads a fund's live amount from its row, less the few lots already past (or
-- about to pass) their expiry, instead of summing every live lot, a cost that grew with the
-- partner's history (a lot per credit). Every writer of mdf_lots holds the fund's row lock
-- first (lock_fund / lock_funds), so these updates add no lock order of their own.
ALTER TABLE mdf_funds
    ADD COLUMN lots_remaining numeric(20, 2) NOT NULL DEFAULT 0 CHECK (lots_remaining >= 0);

UPDATE mdf_funds AS f SET lots_remaining = l.remaining
FROM (SELECT partner_id, sum(remaining) AS remaining FROM mdf_lots GROUP BY partner_id) AS l
WHERE l.partner_id = f.partner_id;

CREATE FUNCTION follow_lots_remaining() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- A transition table exists only for the operations that have it: each branch reads
    -- only its own (PL/pgSQL plans a statement when it first runs).
    IF TG_OP = 'INSERT' THEN
        UPDATE mdf_funds AS f SET lots_remaining = f.lots_remaining + c.change
        FROM (SELECT partner_id, sum(remaining) AS change FROM new_lots GROUP BY partner_id) AS c
        WHERE f.partner_id = c.partner_id AND c.change <> 0;
    ELSIF TG_OP = 'UPDATE' THEN
        UPDATE mdf_funds AS f SET lots_remaining = f.lots_remaining + c.change
        FROM (
            SELECT partner_id, sum(change) AS change FROM (
                SELECT partner_id, remaining AS change FROM new_lots
                UNION ALL
                SELECT partner_id, -remaining FROM old_lots
            ) AS both_sides GROUP BY partner_id
        ) AS c
        WHERE f.partner_id = c.partner_id AND c.change <> 0;
    ELSE
        UPDATE mdf_funds AS f SET lots_remaining = f.lots_remaining - c.change
        FROM (SELECT partner_id, sum(remaining) AS change FROM old_lots GROUP BY partner_id) AS c
        WHERE f.partner_id = c.partner_id AND c.change <> 0;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER mdf_lots_inserted_follow_remaining
    AFTER INSERT ON mdf_lots REFERENCING NEW TABLE AS new_lots
    FOR EACH STATEMENT EXECUTE FUNCTION follow_lots_remaining();
CREATE TRIGGER mdf_lots_updated_follow_remaining
    AFTER UPDATE ON mdf_lots REFERENCING OLD TABLE AS old_lots NEW TABLE AS new_lots
    FOR EACH STATEMENT EXECUTE FUNCTION follow_lots_remaining();
CREATE TRIGGER mdf_lots_deleted_follow_remaining
    AFTER DELETE ON mdf_lots REFERENCING OLD TABLE AS old_lots
    FOR EACH STATEMENT EXECUTE FUNCTION follow_lots_remaining();
