-- E-mail: each recipient's preference (where, which kinds, at once or as a digest) and the
-- outgoing mails, queued in the transaction that files their messages (nothing lost), sent
-- by a job over SMTP and retried with backoff.
CREATE TABLE email_preferences (
    recipient_kind text        NOT NULL CHECK (recipient_kind IN ('partner', 'owner')),
    recipient      text        NOT NULL,
    address        text        NOT NULL,
    kinds          text[]      NOT NULL DEFAULT '{}',  -- none listed: every kind
    mode           text        NOT NULL CHECK (mode IN ('immediate', 'digest', 'off')),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (recipient_kind, recipient)
);

-- Messages waiting for their recipient's next digest.
CREATE TABLE email_digest_queue (
    recipient_kind text   NOT NULL,
    recipient      text   NOT NULL,
    position       bigint NOT NULL,
    PRIMARY KEY (recipient_kind, recipient, position)
);

CREATE TABLE emails (
    email_id        uuid PRIMARY KEY,
    recipient_kind  text        NOT NULL,
    recipient       text        NOT NULL,
    address         text        NOT NULL,
    subject         text        NOT NULL,
    body            text        NOT NULL,
    positions       bigint[]    NOT NULL,  -- the messages it carries
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX emails_due ON emails (next_attempt_at) WHERE status = 'pending';
