-- A customer is known by several keys (its domain, its folded name, the name as incentives
-- keyed it before): a clawback forgets every key whose first deal it reversed, found by the
-- deal.
CREATE INDEX customers_by_first_deal ON customers (first_deal_key);
