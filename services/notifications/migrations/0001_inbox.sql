-- The per-recipient inbox. A message is addressed to one recipient: a partner (its people and
-- apps read it) or a direct account owner (a rep) whom a partner's event concerns. A rep's
-- message lives in the rep's inbox only, never in the partner's.
--
-- `position` is the reading order and what a cursor names. It is not a sequence: a sequence
-- hands numbers out at insert time, and a transaction holding a smaller number can commit
-- after a reader has passed a larger one, which the reader would then skip for good.
-- Positions come from the one counter row, updated in the inserting transaction: its row lock
-- is held until that transaction ends, so positions become visible in their order and "after
-- N" never misses a row that commits later.
CREATE TABLE inbox_counter (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_position bigint  NOT NULL
);
INSERT INTO inbox_counter VALUES (true, 0);

CREATE TABLE messages (
    position        bigint PRIMARY KEY,
    notification_id uuid        NOT NULL UNIQUE,
    recipient_kind  text        NOT NULL CHECK (recipient_kind IN ('partner', 'owner')),
    recipient       text        NOT NULL,
    partner_id      text        NOT NULL,  -- the partner whose event it is
    kind            text        NOT NULL,
    subject         text        NOT NULL,
    body            text        NOT NULL,
    registration_id text,
    deal_key        text,
    created_at      timestamptz NOT NULL,
    ingested_at     timestamptz,
    received_at     timestamptz NOT NULL DEFAULT now(),
    read_at         timestamptz
);
CREATE INDEX messages_recipient ON messages (recipient_kind, recipient, position);
CREATE INDEX messages_unread ON messages (recipient_kind, recipient, position)
    WHERE read_at IS NULL;
