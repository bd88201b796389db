-- Credits to a partner incentives has not yet heard is active (lifecycle events and credits
-- travel on different topics, so a credit can overtake its partner's activation). They wait
-- here, the whole event kept, and are booked in the transaction that projects the partner's
-- next settled state: earning when it is active, refused with the reason when it is not.
CREATE TABLE held_credits (
    credit_id   text PRIMARY KEY,
    partner_id  text        NOT NULL,
    seq         bigint      GENERATED ALWAYS AS IDENTITY,
    event       jsonb       NOT NULL,  -- the CreditIssued envelope, cause of what it books
    reason      text        NOT NULL,
    held_at     timestamptz NOT NULL
);
CREATE INDEX held_credits_partner ON held_credits (partner_id, seq);
