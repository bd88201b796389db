-- A quarterly review records the approved MDF claims shown beside its goal lines (from the
-- year's start to the quarter's end, as they stood when it was recorded). Reviews recorded
-- before keep NULL: what was shown then is not known, and zero would say otherwise.
ALTER TABLE business_reviews ADD COLUMN mdf_claims_approved integer
    CHECK (mdf_claims_approved >= 0);
