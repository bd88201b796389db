-- When an endpoint's holder last gave it back. A claim takes the due endpoints by the later of
-- their head's due time and this, so an endpoint that gave its slot back to others mid-backlog
-- (every slot taken, others due) waits behind the endpoints due before it gave it back: slow
-- endpoints with long backlogs take turns with everyone else instead of keeping their slots.
ALTER TABLE webhook_endpoints ADD COLUMN released_at timestamptz;

-- A delivery the partner asked for again (redeliver) until that attempt is made: its failure
-- is logged but not counted toward disabling the endpoint (a developer clicking redeliver on
-- a failing head disabled the endpoint after 14 clicks), nor does it advance the backoff.
ALTER TABLE webhook_deliveries ADD COLUMN requested boolean NOT NULL DEFAULT false;

-- Every secret rotated out that is still in its grace period signs (a bounded few, newest
-- last): with only the one before, a second rotation within the grace (a double click, an
-- answer lost and asked again) dropped the secret receivers still held at once.
ALTER TABLE webhook_endpoints
    ADD COLUMN previous_secrets       text[]        NOT NULL DEFAULT '{}',
    ADD COLUMN previous_secrets_until timestamptz[] NOT NULL DEFAULT '{}';
UPDATE webhook_endpoints
SET previous_secrets = ARRAY[previous_secret], previous_secrets_until = ARRAY[previous_secret_until]
WHERE previous_secret IS NOT NULL AND previous_secret_until > now();
-- previous_secret and previous_secret_until are no longer read or written; they stay for the
-- previous release's instances while a deployment rolls, to be dropped by a later migration.
