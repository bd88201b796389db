-- A claimed domain blocks no one: several applications may claim one domain, and only the
-- partner that proves it (the first to verify) holds it. Held domains stay unique.
ALTER TABLE partners DROP CONSTRAINT partners_domain_key;
CREATE UNIQUE INDEX partners_held_domain ON partners (domain) WHERE domain_verified_at IS NOT NULL;
CREATE INDEX partners_by_domain ON partners (domain);
