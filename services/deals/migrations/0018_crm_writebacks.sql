-- Write-backs wait here, one row per CRM record, instead of inside the crm-writeback consumer's
-- transaction: a CRM that is down (or a record it keeps failing) held up every write-back of
-- every CRM behind it, and each retry of the batch sent its earlier writes again. The consumer
-- queues (the write of the event it consumed last replaces one not yet sent, as it would have
-- followed it); the write-back job leases the due rows, sends each, and backs off,
-- dead-letters or marks it sent, a record at a time.
CREATE TABLE crm_writebacks (
    source       text NOT NULL,
    portal       text NOT NULL DEFAULT '',  -- HubSpot's account; '' elsewhere
    record_id    text NOT NULL,
    fields       json NOT NULL,             -- the CRM's own field names -> values, in order
    event_id     uuid NOT NULL,             -- the registration event they come from
    event_topic  text NOT NULL,
    event_value  bytea NOT NULL,            -- its envelope: dead-lettered when refused for good
    queued_at    timestamptz NOT NULL,      -- when this write was first queued
    due_at       timestamptz,               -- next attempt (a lease while sent); null: done
    attempts     integer NOT NULL DEFAULT 0,
    last_error   text,
    sent_at      timestamptz,
    PRIMARY KEY (source, portal, record_id)
);
CREATE INDEX crm_writebacks_due ON crm_writebacks (due_at) WHERE due_at IS NOT NULL;
