-- Reminders sent before certifications expire: one row per certification and window (days
-- before), written in the transaction that records the notification in the outbox.
CREATE TABLE certification_reminders (
    certification_id  text NOT NULL REFERENCES certifications,
    days_before       integer NOT NULL,
    sent_at           timestamptz NOT NULL,
    PRIMARY KEY (certification_id, days_before)
);
-- Reminders look for certifications expiring soon.
CREATE INDEX certifications_by_expiry ON certifications (expires_at);
