-- The resource library: collateral, playbooks, technical guides and SDK/API early-access
-- programmes, each visible to the partner types and tiers it is meant for (empty: all).
CREATE TABLE resources (
    resource_id    text PRIMARY KEY,
    kind           text NOT NULL
                   CHECK (kind IN ('collateral', 'playbook', 'technical_guide', 'early_access')),
    title          text NOT NULL,
    url            text NOT NULL,
    partner_types  text[] NOT NULL DEFAULT '{}',
    tiers          text[] NOT NULL DEFAULT '{}',
    published_by   text NOT NULL,
    published_at   timestamptz NOT NULL,
    withdrawn_at   timestamptz
);

-- Engagement with resources, a signal of enablement: a person's download counts once a day,
-- a sandbox sign-up once (a retried request records nothing twice).
CREATE TABLE resource_engagements (
    resource_id  text NOT NULL REFERENCES resources,
    partner_id   text NOT NULL REFERENCES partners,
    subject      text NOT NULL,             -- the person (their token's subject)
    action       text NOT NULL CHECK (action IN ('download', 'sandbox_signup')),
    on_day       date NOT NULL,
    at           timestamptz NOT NULL
);
CREATE UNIQUE INDEX resource_downloads_once_a_day ON resource_engagements
    (resource_id, subject, on_day) WHERE action = 'download';
CREATE UNIQUE INDEX resource_signups_once ON resource_engagements
    (resource_id, subject) WHERE action = 'sandbox_signup';
CREATE INDEX resource_engagements_by_partner ON resource_engagements (partner_id, at);
