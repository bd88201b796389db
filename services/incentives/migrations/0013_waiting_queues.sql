-- The console's MDF queues are the claims and the budgets waiting for a decision, the oldest
-- first (`?status=requested&order=oldest`): each from an index of the waiting ones alone, not
-- the newest of every status filtered afterwards (which lost a waiting one behind newer ones).
CREATE INDEX mdf_claims_waiting ON mdf_claims (requested_at, claim_id) WHERE status = 'requested';
CREATE INDEX mdf_preapprovals_waiting ON mdf_preapprovals (requested_at, preapproval_id)
    WHERE status = 'requested';
