-- `GET /crm-links?status=proposed` pages the proposals waiting for a manager in key order; most
-- links are confirmed, so the proposals have an index of their own instead of a walk of the
-- primary key past every confirmed one.
CREATE INDEX crm_links_proposed ON crm_links (source, external_id) WHERE status = 'proposed';
