-- Review SLAs: a registration waiting for review has a deadline (business days per situation,
-- never after a hyperscaler's acceptance deadline, which is kept to show the reviewer); the
-- reviewers are reminded once before it and the review escalated once at it. Registrations
-- that were already waiting when deadlines were introduced have none (a manager decides them).
ALTER TABLE registrations
    ADD COLUMN review_due_at timestamptz,
    ADD COLUMN acceptance_due_at timestamptz,
    ADD COLUMN review_reminded_at timestamptz,
    ADD COLUMN review_escalated_at timestamptz;
CREATE INDEX registrations_review_due ON registrations (review_due_at)
    WHERE status = 'pending_review' AND review_due_at IS NOT NULL;
