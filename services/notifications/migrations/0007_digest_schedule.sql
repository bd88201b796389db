-- When digests were last gathered, for every instance: each instance gathered on a timer of its
-- own that began at its start, so three instances sent three digests an hour, and instances
-- restarted within every hour (deploys, autoscaling) never sent one. One row: an instance
-- gathers when a period has passed since it was last done by any, under the row's lock.
CREATE TABLE digest_schedule (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    gathered_at timestamptz NOT NULL
);
INSERT INTO digest_schedule (gathered_at) VALUES (now());
