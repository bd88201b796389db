-- Partners' webhook endpoints and the durable delivery queue.
--
-- An endpoint gets the partner's messages (of its kinds; none listed: every kind) in inbox
-- order, one at a time: the head delivery (lowest position still pending) is retried with
-- backoff until it succeeds, and the ones behind it wait, so a receiver sees them in order.
-- A deliverer claims an endpoint with a lease (never a transaction held across the HTTP call);
-- a deliverer that dies leaves the lease to expire and another resends the same webhook-id,
-- the one duplicate the Standard Webhooks specification allows (receivers drop it by id).
CREATE TABLE webhook_endpoints (
    endpoint_id           uuid PRIMARY KEY,
    partner_id            text        NOT NULL,
    url                   text        NOT NULL,
    description           text        NOT NULL DEFAULT '',
    kinds                 text[]      NOT NULL DEFAULT '{}',
    secret                text        NOT NULL,
    -- After a rotation the previous secret signs too, for a while, so a receiver can switch.
    previous_secret       text,
    previous_secret_until timestamptz,
    enabled               boolean     NOT NULL DEFAULT true,
    disabled_reason       text,
    consecutive_failures  integer     NOT NULL DEFAULT 0,
    failing_since         timestamptz,
    lease_until           timestamptz,
    lease_owner           uuid,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_partner ON webhook_endpoints (partner_id, created_at);

CREATE TABLE webhook_deliveries (
    delivery_id      uuid PRIMARY KEY,
    endpoint_id      uuid        NOT NULL REFERENCES webhook_endpoints ON DELETE CASCADE,
    partner_id       text        NOT NULL,
    position         bigint      NOT NULL,  -- the message's inbox position: the order
    message_id       uuid        NOT NULL,  -- the notification id: the webhook-id header
    event_type       text        NOT NULL,
    payload          text        NOT NULL,  -- the exact body that is signed and sent
    status           text        NOT NULL DEFAULT 'pending'
                                 CHECK (status IN ('pending', 'delivered')),
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status_code integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    UNIQUE (endpoint_id, message_id)
);
CREATE INDEX webhook_deliveries_head ON webhook_deliveries (endpoint_id, position)
    WHERE status = 'pending';
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (endpoint_id, position DESC);

CREATE TABLE webhook_attempts (
    delivery_id  uuid        NOT NULL REFERENCES webhook_deliveries ON DELETE CASCADE,
    attempt      integer     NOT NULL,
    attempted_at timestamptz NOT NULL,
    status_code  integer,
    error        text,
    duration_ms  integer     NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
