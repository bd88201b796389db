-- Where each pulled source (AWS ACE ListOpportunities, Microsoft referrals) stands: the
-- watermark is the newest modification time the source reported in a finished listing (its
-- own value, never our clock); while a listing is under way, its start and the source's
-- continuation (NextToken, nextLink) let a restarted process resume it.
CREATE TABLE crm_pull_checkpoints (
    source        text PRIMARY KEY,
    watermark     timestamptz,
    window_start  timestamptz,
    continuation  text,
    seen_max      timestamptz,
    updated_at    timestamptz NOT NULL
);
