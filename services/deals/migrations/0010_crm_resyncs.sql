-- Records whose current state must be fetched from the CRM (a gap or overflow event stands
-- for changes it does not carry): a durable queue the resync job works through, surviving
-- restarts. record_id '*' is a window: every record changed since `since`.
CREATE TABLE crm_resyncs (
    source        text NOT NULL,
    record_id     text NOT NULL,
    since         timestamptz,
    reason        text NOT NULL,
    requested_at  timestamptz NOT NULL,
    due_at        timestamptz NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text,
    done_at       timestamptz,
    PRIMARY KEY (source, record_id)
);
CREATE INDEX crm_resyncs_due ON crm_resyncs (due_at) WHERE done_at IS NULL;
