-- Attributed revenue (issued - reversed) per partner and close date, kept by triggers in the
-- transaction that records credits and reversals: a tier evaluation reads at most one row
-- per day of the window instead of every credit in it (a cost that grew with the partner's
-- history). Credits and reversals are only ever inserted.
CREATE TABLE revenue_days (
    partner_id  text           NOT NULL,
    close_date  date           NOT NULL,
    net         numeric(20, 4) NOT NULL,
    PRIMARY KEY (partner_id, close_date)
);

INSERT INTO revenue_days (partner_id, close_date, net)
SELECT c.partner_id, c.close_date,
       sum(c.amount - coalesce(
           (SELECT sum(r.amount) FROM credit_reversals r WHERE r.credit_id = c.credit_id), 0))
FROM credits c
GROUP BY c.partner_id, c.close_date;

-- A credit counts net of the reversals recorded before it (a reversal may arrive first).
CREATE FUNCTION add_credits_to_revenue_days() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO revenue_days AS d (partner_id, close_date, net)
    SELECT n.partner_id, n.close_date,
           sum(n.amount - coalesce(
               (SELECT sum(r.amount) FROM credit_reversals r WHERE r.credit_id = n.credit_id),
               0))
    FROM new_credits n
    GROUP BY n.partner_id, n.close_date ORDER BY n.partner_id, n.close_date
    ON CONFLICT (partner_id, close_date) DO UPDATE SET net = d.net + EXCLUDED.net;
    RETURN NULL;
END
$$;

CREATE TRIGGER credits_revenue_days
    AFTER INSERT ON credits REFERENCING NEW TABLE AS new_credits
    FOR EACH STATEMENT EXECUTE FUNCTION add_credits_to_revenue_days();

-- A reversal lowers the day of the credit it reverses (if the credit is recorded yet).
CREATE FUNCTION subtract_reversals_from_revenue_days() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO revenue_days AS d (partner_id, close_date, net)
    SELECT c.partner_id, c.close_date, -sum(n.amount)
    FROM new_reversals n JOIN credits c ON c.credit_id = n.credit_id
    GROUP BY c.partner_id, c.close_date ORDER BY c.partner_id, c.close_date
    ON CONFLICT (partner_id, close_date) DO UPDATE SET net = d.net + EXCLUDED.net;
    RETURN NULL;
END
$$;

CREATE TRIGGER credit_reversals_revenue_days
    AFTER INSERT ON credit_reversals REFERENCING NEW TABLE AS new_reversals
    FOR EACH STATEMENT EXECUTE FUNCTION subtract_reversals_from_revenue_days();
