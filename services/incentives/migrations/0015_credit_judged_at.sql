-- The moment a credit's partner was judged at (eligible, tier, type): its issue, or for a
-- re-issue after a correction (`replaces`) the moment the credit it corrects was judged at.
-- A re-issue was judged at its own issue, the correction's moment: a partner suspended or
-- expelled since its win lost everything it had earned on the deal at any amount change (the
-- reversal took it all back, the re-issue earned nothing), and a re-issue was booked at the
-- partner's tier of the correction. NULL for rows booked before: their `processed_at` stands in.
ALTER TABLE credits ADD COLUMN judged_at timestamptz;
