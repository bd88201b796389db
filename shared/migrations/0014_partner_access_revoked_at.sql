-- When a partner last lost access (suspended, expelled, rejected): a token issued before it
-- stays refused once the partner is active again. Only the latest status was kept, so a
-- partner reinstated within its tokens' life had every token it held before the suspension
-- working again (a leaked token, the reason to suspend, included). Kept from every revoking
-- version heard, in whatever order the versions arrive.
ALTER TABLE partner_access ADD COLUMN revoked_at timestamptz;
UPDATE partner_access SET revoked_at = changed_at
WHERE status IN ('suspended', 'expelled', 'rejected');
