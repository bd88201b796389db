-- The review queue's SLA: when an application awaiting a manager was escalated (past its
-- deadline, once); the deadline itself follows from applied_at and the program's calendar.
ALTER TABLE partners ADD COLUMN review_escalated_at timestamptz;
