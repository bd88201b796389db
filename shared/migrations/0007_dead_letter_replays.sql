-- Which of the service's dead letters (its `<service>.dlq.v1` offsets) were replayed through
-- its API, by whom and with what outcome (shared/dead_letters.py): a letter is replayed once.
-- A replay that fails again parks a new dead letter (a new offset) with its new reason.
CREATE TABLE dead_letter_replays (
    dlq_offset  bigint PRIMARY KEY,
    consumer    text NOT NULL,
    outcome     text NOT NULL,
    detail      text NOT NULL DEFAULT '',
    principal   text NOT NULL,
    replayed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
