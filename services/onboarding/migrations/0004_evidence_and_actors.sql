-- Evidence for checklist items a partner cannot complete by its own tick (the agreement, the
-- enablement): item -> {reference, submitted_by, submitted_at, confirmed_by, confirmed_at}.
ALTER TABLE partners ADD COLUMN checklist_evidence jsonb NOT NULL DEFAULT '{}'::jsonb;

-- Who made each change: the acting principal of a request (shared/identity.py `acting_as`),
-- or the service itself for what its jobs and consumed events change.
ALTER TABLE partner_history ADD COLUMN acted_by text NOT NULL DEFAULT 'onboarding';
ALTER TABLE certifications ADD COLUMN recorded_by text;

-- Every platform token issued: to whom, by whom, until when.
CREATE TABLE token_grants (
    token_id    text PRIMARY KEY,
    partner_id  text NOT NULL REFERENCES partners,
    subject     text NOT NULL,
    role        text NOT NULL,
    issued_by   text NOT NULL,
    issued_at   timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX token_grants_by_partner ON token_grants (partner_id, issued_at);
