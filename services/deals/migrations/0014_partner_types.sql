-- The partner's type (partners.lifecycle.v1 `partner_type`: gsi, isv, msp, var_reseller,
-- technology_alliance, referral_affiliate, consultant_influencer), for the rules of engagement
-- by partner type. Null until the partner's next lifecycle event: an unknown type keeps the
-- rules every partner had before.
ALTER TABLE partners ADD COLUMN partner_type text;
