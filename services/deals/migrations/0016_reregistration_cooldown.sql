-- A decision looks up the requesting partner's registrations that expired within the
-- re-registration cooldown (services/deals/domain/cooldown.py): a few rows of one partner,
-- found by this index however many registrations the partner ever had.
CREATE INDEX registrations_expired_by_partner ON registrations (partner_id, expires_at)
    WHERE status = 'expired';
