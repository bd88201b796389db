-- People of a partner (the person registry) and the learning system's xAPI statements.
--
-- A person belongs to one partner at a time: a membership row from joining until leaving. A
-- certification belongs to the membership it was earned in, and counts only until the person
-- left (competencies are counted from distinct people: someone who left is no longer one).
CREATE TABLE people (
    person_id    text PRIMARY KEY,
    partner_id   text NOT NULL REFERENCES partners,
    email        text NOT NULL,            -- lower-cased
    name         text,
    role         text NOT NULL CHECK (role IN ('sales', 'technical', 'customer_success')),
    lms_account  text,                     -- account:<homePage>|<name> in the learning system
    joined_at    timestamptz NOT NULL,
    added_by     text NOT NULL,
    left_at      timestamptz,
    left_by      text,
    CHECK (left_at IS NULL OR left_at >= joined_at)
);
-- One current membership per mailbox and per learning-system account, platform-wide.
CREATE UNIQUE INDEX people_current_email ON people (email) WHERE left_at IS NULL;
CREATE UNIQUE INDEX people_current_account ON people (lms_account)
    WHERE left_at IS NULL AND lms_account IS NOT NULL;
CREATE INDEX people_by_partner ON people (partner_id, joined_at);

ALTER TABLE certifications ADD COLUMN person_id text REFERENCES people;
ALTER TABLE certifications ADD COLUMN statement_id uuid;

-- Statements exactly as stored (append-only: never updated; a repeat of an id is compared with
-- `comparable`, the statement without what the LRS sets).
CREATE TABLE xapi_statements (
    statement_id  uuid PRIMARY KEY,
    content       jsonb NOT NULL,
    comparable    text NOT NULL,
    actor_key     text NOT NULL,           -- mbox:<email> | account:<homePage>|<name> | ...
    verb          text NOT NULL,
    activity      text,
    occurred_at   timestamptz NOT NULL,
    stored_at     timestamptz NOT NULL,
    stored_by     text NOT NULL            -- the system client that sent it
);
CREATE INDEX xapi_statements_by_actor ON xapi_statements (actor_key, occurred_at);

-- What a statement did, once its actor is a known person (append-only too). A statement whose
-- actor nobody is yet has no row here: it is applied when the person is registered.
CREATE TABLE xapi_statement_outcomes (
    statement_id      uuid PRIMARY KEY REFERENCES xapi_statements,
    person_id         text NOT NULL REFERENCES people,
    partner_id        text NOT NULL,
    certification_id  text,
    outcome           text NOT NULL,
    decided_at        timestamptz NOT NULL
);
CREATE INDEX xapi_statement_outcomes_by_person ON xapi_statement_outcomes (person_id);
