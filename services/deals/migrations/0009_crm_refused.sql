-- CRM items an adapter could not read (wrong shape, unknown stage, a portal not ingested...):
-- kept with the reason and the item as delivered, so nothing a CRM sent is lost silently
-- while its valid neighbours are recorded. `item` is bytes: it may hold what text cannot.
CREATE TABLE crm_refused (
    id           bigserial PRIMARY KEY,
    source       text NOT NULL,
    received_at  timestamptz NOT NULL,
    item_index   integer NOT NULL,
    reason       text NOT NULL,
    item         bytea NOT NULL
);
CREATE INDEX crm_refused_by_time ON crm_refused (received_at);
