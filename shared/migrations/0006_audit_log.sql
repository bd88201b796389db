-- Who did what through the service's API: every write route records its acting principal here,
-- in the write's own transaction (shared/audit.py). Append-only for the runtime role's purposes:
-- nothing in the platform updates or deletes these rows.
CREATE TABLE audit_log (
    id        bigserial PRIMARY KEY,
    at        timestamptz NOT NULL DEFAULT clock_timestamp(),
    principal text NOT NULL,
    roles     text[] NOT NULL,
    partner_id text,
    action    text NOT NULL,
    subject   text NOT NULL
);
CREATE INDEX audit_log_subject ON audit_log (subject, at);
