-- Credits a won deal does not pay out for now, and why (domain/parking.py): the share of a
-- partner out of the programme when the deal was won (withheld), or the whole deal when it was
-- won without an amount (partner_id null). Each settlement of a deal replaces its rows; a
-- channel manager reads them (`GET /credits/parked`, the deal's attribution).
CREATE TABLE parked_credits (
    deal_key   text NOT NULL,
    partner_id text,
    kind       text CHECK (kind IN ('sourced', 'influenced')),
    amount     numeric,
    currency   text,
    reason     text NOT NULL,
    parked_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX parked_credits_by_deal ON parked_credits (deal_key);
