-- The decision ledger of registrations: every decision and status change (the first decision,
-- a review, a link sent to review, an extension, an expiry, a close with the CRM opportunity)
-- is one entry, written in the change's own transaction: what, when, by which principal, under
-- which policy version, with the full reasons, what the partner was told and the evidence
-- considered. `registrations` keeps the current state; this keeps how it got there.
CREATE TABLE registration_ledger (
    seq              bigserial PRIMARY KEY,
    registration_id  text NOT NULL REFERENCES registrations (registration_id),
    at               timestamptz NOT NULL DEFAULT clock_timestamp(),
    what             text NOT NULL,
    previous_status  text,
    status           text NOT NULL,
    principal_kind   text NOT NULL CHECK (principal_kind IN ('partner', 'manager', 'system', 'crm')),
    principal        text NOT NULL,
    policy_version   text NOT NULL,
    reasons          text[] NOT NULL,
    partner_reasons  text[] NOT NULL,
    evidence         jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX registration_ledger_by_registration ON registration_ledger (registration_id, seq);

-- Append-only: a trigger refuses UPDATE, DELETE and TRUNCATE (the owner role cannot be denied
-- these by REVOKE, so the table itself enforces it), as incentives' ledgers do.
CREATE FUNCTION refuse_registration_ledger_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END
$$;
CREATE TRIGGER registration_ledger_append_only BEFORE UPDATE OR DELETE ON registration_ledger
    FOR EACH ROW EXECUTE FUNCTION refuse_registration_ledger_change();
CREATE TRIGGER registration_ledger_no_truncate BEFORE TRUNCATE ON registration_ledger
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_registration_ledger_change();

-- Registrations decided before the ledger existed get their first decision as an entry, so
-- every registration's history starts with how it was decided.
INSERT INTO registration_ledger (registration_id, at, what, previous_status, status,
    principal_kind, principal, policy_version, reasons, partner_reasons, evidence)
SELECT registration_id, decided_at, 'decided', NULL, status, 'partner', partner_id,
    policy_version, reasons, COALESCE(partner_reasons, reasons), inputs
FROM registrations ORDER BY decided_at, registration_id;

-- The outcome of the linked CRM opportunity when it closed won while the registration still
-- awaited review: the review then decides it (approved: won).
ALTER TABLE registrations ADD COLUMN deal_outcome text;
