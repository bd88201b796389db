-- When a mail was first tried: it is given up once its failures have lasted the give-up time
-- from then, not from when it was queued (found in review: a mail held four days while its
-- partner was suspended, or queued before any SMTP host was set, was given up at its first
-- temporary failure, never really retried).
ALTER TABLE emails ADD COLUMN first_attempt_at timestamptz;
