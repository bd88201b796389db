-- Periodic reconciliation: each run compares a window of a CRM's records (changed since
-- `since`) with the projection and keeps its drift report: how many records it checked, how
-- many were missing here, stale here or deleted upstream (each listed in `drift`, with the
-- fields that differed), how many resyncs it queued, and the error that cut it short, if any.
CREATE TABLE crm_reconciliations (
    id                bigserial PRIMARY KEY,
    source            text NOT NULL,
    started_at        timestamptz NOT NULL,
    finished_at       timestamptz NOT NULL,
    since             timestamptz NOT NULL,
    checked           integer NOT NULL,
    in_sync           integer NOT NULL,
    missing_here      integer NOT NULL,
    stale_here        integer NOT NULL,
    deleted_upstream  integer NOT NULL,
    resyncs_queued    integer NOT NULL,
    drift             jsonb NOT NULL,
    error             text
);
CREATE INDEX crm_reconciliations_by_source ON crm_reconciliations (source, started_at DESC);
