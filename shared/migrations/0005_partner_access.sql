-- Which partners may no longer use the platform (suspended, expelled, rejected), as the
-- lifecycle topic says: every service keeps it, so a partner's tokens stop working everywhere
-- within seconds of onboarding's decision (shared/access.py). A newer version always wins.
CREATE TABLE partner_access (
    partner_id text PRIMARY KEY,
    status     text NOT NULL,
    version    bigint NOT NULL,
    changed_at timestamptz NOT NULL,
    seen_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX partner_access_seen_at ON partner_access (seen_at);
