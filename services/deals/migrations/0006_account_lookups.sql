-- The direct owners of an account (co-sell messages, every registration change told) and the
-- partners overlapping on it are found by domain or by name block, like conflicts: indexed,
-- over every opportunity not deleted (an account's owner may hold only closed ones).
CREATE INDEX crm_deals_by_domain ON crm_deals (customer_domain) WHERE NOT deleted;
CREATE INDEX crm_deals_by_name_key ON crm_deals (name_key) WHERE NOT deleted;
