-- `GET /registrations` pages newest first by (submitted_at, registration_id): a partner's from
-- its own index (the partner's index, now with the id as the tie-breaker), a manager's from one
-- over every registration, instead of sorting them all for each page.
DROP INDEX registrations_by_partner;
CREATE INDEX registrations_by_partner ON registrations
    (partner_id, submitted_at DESC, registration_id DESC);
CREATE INDEX registrations_newest ON registrations (submitted_at DESC, registration_id DESC);
