-- Reported touchpoints count only when their partner is linked to the deal or a channel
-- manager approved them (a manager's own reports are approved). Earlier manager reports are
-- approved; earlier partner reports count only if their partner is linked.
ALTER TABLE touchpoints ADD COLUMN approved boolean NOT NULL DEFAULT false;
UPDATE touchpoints SET approved = true WHERE origin = 'api' AND reported_by = 'admin';
CREATE INDEX touchpoints_reported ON touchpoints (deal_key, partner_id, kind) WHERE origin = 'api';
