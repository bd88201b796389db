-- The token an action was taken with (its `jti`): a channel manager can issue a partner's
-- token naming any user (onboarding's `POST /admin/partner-tokens`), and the trail credited
-- the partner's person by the subject alone; with the token id it joins onboarding's
-- `token_grants`, which says who issued it. Empty for rows written before.
ALTER TABLE audit_log ADD COLUMN token_id text NOT NULL DEFAULT '';
