-- An MDF claim is idempotent per (partner, proof reference): a form sent twice or a client's
-- retry under "INV-2026-001" answers with the claim recorded under it, never asks (and pays)
-- twice; the same reference asking for other money is a conflict (domain/claims.check_repeat).
-- One row per claim, naming it; the primary key refuses a second claim under one proof
-- reference whatever the requests' timing (the use cases also look it up under the fund's
-- lock, so a concurrent repeat finds the first). Claims with and without a pre-approval share
-- the key: one proof is one spending, whichever money it is claimed from.
-- Kept beside `mdf_claims` rather than as a unique index on it: claims recorded before this
-- migration may hold two under one proof reference (a double submit recorded both), and a
-- unique index would fail the migration on them. They stay as recorded (decided or not); the
-- first answers a repeat from now on. A reference names its claim for good: append-only.
-- The key holds the reference's SHA-256 (`proof_digest`, written as
-- sha256(convert_to(proof_reference, 'UTF8')) by whoever inserts): a reference of 500
-- characters beside a partner id of 200 can exceed what one btree entry holds (2704 bytes).
CREATE TABLE mdf_claim_references (
    partner_id       text NOT NULL,
    proof_reference  text NOT NULL,
    proof_digest     bytea NOT NULL CHECK (length(proof_digest) = 32),
    claim_id         text NOT NULL UNIQUE REFERENCES mdf_claims (claim_id),
    PRIMARY KEY (partner_id, proof_digest)
);
CREATE TRIGGER mdf_claim_references_append_only BEFORE UPDATE OR DELETE ON mdf_claim_references
    FOR EACH ROW EXECUTE FUNCTION refuse_ledger_change();
CREATE TRIGGER mdf_claim_references_no_truncate BEFORE TRUNCATE ON mdf_claim_references
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_ledger_change();

-- Claims recorded before: the first under each proof reference names it.
INSERT INTO mdf_claim_references (partner_id, proof_reference, proof_digest, claim_id)
SELECT DISTINCT ON (partner_id, proof_reference)
    partner_id, proof_reference, sha256(convert_to(proof_reference, 'UTF8')), claim_id
FROM mdf_claims
ORDER BY partner_id, proof_reference, requested_at, claim_id;
