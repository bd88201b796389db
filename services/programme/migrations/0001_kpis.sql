-- The programme's read model: what the other services told on their topics, kept as facts
-- (one row per event that matters), from which every KPI is computed when it is asked for.
-- Nothing here is a running total: a late or out-of-order event simply joins the facts and the
-- next read counts it, and a figure can always be re-derived from the rows it sums.

-- Every partner version onboarding published (partners.lifecycle.v1): the partner as it stood
-- from `changed_at` (tier, type, regions), and what changed. `decision` is set on an onboarding
-- decision (applied -> qualified or rejected): automatic (the scoring) or manual (a manager).
CREATE TABLE partner_versions (
    partner_id      text        NOT NULL,
    version         integer     NOT NULL,
    partner_type    text        NOT NULL,
    status          text        NOT NULL,
    previous_status text,
    tier            text        NOT NULL,
    regions         text[]      NOT NULL,
    change          text        NOT NULL,
    decision        text CHECK (decision IN ('automatic', 'manual')),
    changed_at      timestamptz NOT NULL,
    PRIMARY KEY (partner_id, version)
);
CREATE INDEX partner_versions_by_change ON partner_versions (change, changed_at);

-- Attribution credits (attribution.credits.v1) and their reversals, kept apart so a reversal
-- that arrives before its credit waits for it. Region: the customer's country, as the CRM
-- gave it (partners' regions are countries too).
CREATE TABLE credits (
    credit_id        text PRIMARY KEY,
    deal_key         text          NOT NULL,
    partner_id       text          NOT NULL,
    kind             text          NOT NULL CHECK (kind IN ('sourced', 'influenced')),
    amount           numeric(20, 4) NOT NULL,
    currency         text          NOT NULL,
    customer_country text,
    close_date       date          NOT NULL,
    issued_at        timestamptz   NOT NULL
);
CREATE INDEX credits_by_close_date ON credits (close_date);
CREATE INDEX credits_by_partner ON credits (partner_id, issued_at);

CREATE TABLE credit_reversals (
    credit_id   text PRIMARY KEY,
    reversal_id text          NOT NULL UNIQUE,
    amount      numeric(20, 4) NOT NULL,
    reversed_at timestamptz   NOT NULL
);

-- Incentive and MDF money (incentives.ledger.v1), signed as it moves the programme's cost:
-- an earning or an approved MDF claim adds, a clawback subtracts. `quarter` is the revenue
-- quarter the entry belongs to (the credit's close date for earnings and their clawbacks; the
-- decision's date for an MDF claim, which no deal carries).
CREATE TABLE spend_entries (
    entry_id   text PRIMARY KEY,
    partner_id text          NOT NULL,
    movement   text          NOT NULL
        CHECK (movement IN ('incentive', 'mdf_accrual', 'mdf_claim')),
    credit_id  text,
    quarter    text          NOT NULL,
    amount     numeric(20, 4) NOT NULL,
    currency   text          NOT NULL,
    at         timestamptz   NOT NULL
);
CREATE INDEX spend_entries_by_quarter ON spend_entries (quarter);

-- Registration moves (deals.registrations.v1): entering review (`pending`) and decisions
-- (approved, rejected, or won when a review approves a registration whose deal already
-- closed won). `automatic`: the rules at submission or the review policy past its deadline;
-- otherwise a channel manager's review. `at_submission`: decided when it was registered.
CREATE TABLE registration_moves (
    event_id        uuid PRIMARY KEY,
    registration_id text        NOT NULL,
    partner_id      text        NOT NULL,
    move            text        NOT NULL CHECK (move IN ('pending', 'decision')),
    outcome         text,
    automatic       boolean,
    at_submission   boolean     NOT NULL DEFAULT false,
    at              timestamptz NOT NULL,
    CHECK ((move = 'decision') = (outcome IS NOT NULL AND automatic IS NOT NULL))
);
CREATE INDEX registration_moves_by_registration ON registration_moves (registration_id, at);
CREATE INDEX registration_moves_decisions ON registration_moves (at) WHERE move = 'decision';
