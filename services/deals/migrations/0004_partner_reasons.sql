-- What the partner was told of its decision (never another partner, its registration or a rep);
-- `reasons` keeps the full evidence for channel managers. NULL: decided before the two were kept
-- apart (a partner then sees only the kinds of the conflicts).
ALTER TABLE registrations ADD COLUMN partner_reasons text[];
