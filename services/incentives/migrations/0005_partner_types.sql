-- The partner's type as onboarding last described it: programmes may pay partner types
-- differently (base rates, kickers and SPIFFs per type).
ALTER TABLE partners ADD COLUMN partner_type text;
