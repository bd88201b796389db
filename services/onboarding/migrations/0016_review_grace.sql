-- What an upheld appeal restores: the grace a partner had when a review expelled it (its end,
-- or NULL out of grace). Rows recorded before this column say nothing of it: an expulsion of a
-- partner in grace reversed from one of those restores it active, and the next run judges it.
ALTER TABLE programme_reviews ADD COLUMN grace_until_before timestamptz;
