-- Domain ownership: the application claims its domain; the partner holds it once it publishes
-- the platform-issued token (DNS TXT or the well-known file) and the platform has checked it.
ALTER TABLE partners ADD COLUMN domain_token text;
UPDATE partners SET domain_token = md5(random()::text || clock_timestamp()::text || partner_id)
    || md5(random()::text || partner_id);
ALTER TABLE partners ALTER COLUMN domain_token SET NOT NULL;
ALTER TABLE partners ADD COLUMN domain_verified_at timestamptz;
ALTER TABLE partners ADD COLUMN domain_verified_by text;
