-- Which Pollinate partner a CRM's partner reference stands for, as channel managers confirm
-- it. A deal whose reference has no confirmed link credits no one for it (it is unmatched and
-- listed for review) until a manager confirms one. A confirmed link whose external id is the
-- partner id stands for that partner from every CRM.
CREATE TABLE crm_links (
    source        text NOT NULL,
    external_id   text NOT NULL,
    partner_id    text NOT NULL,
    status        text NOT NULL CHECK (status IN ('proposed', 'confirmed')),
    proposed_by   text NOT NULL,
    proposed_at   timestamptz NOT NULL,
    confirmed_by  text,
    confirmed_at  timestamptz,
    PRIMARY KEY (source, external_id)
);
CREATE INDEX crm_links_identity ON crm_links (external_id) WHERE external_id = partner_id;
CREATE INDEX deals_by_partner_ref ON deals (partner_ref) WHERE partner_ref IS NOT NULL;
