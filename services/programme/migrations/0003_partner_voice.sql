-- Partner voice: NPS-style satisfaction surveys sent to partners (through the notifications
-- service), their answers (once per survey and person), and the partner advisory council.

CREATE TABLE surveys (
    survey_id  uuid PRIMARY KEY,
    question   text        NOT NULL,
    tiers      text[]      NOT NULL,  -- the audience: empty = every tier
    types      text[]      NOT NULL,  -- empty = every partner type
    closes_at  timestamptz NOT NULL,
    created_by text        NOT NULL,
    created_at timestamptz NOT NULL
);

-- The partners a survey was sent to (active partners of its audience when it was sent).
CREATE TABLE survey_recipients (
    survey_id  uuid NOT NULL REFERENCES surveys,
    partner_id text NOT NULL,
    PRIMARY KEY (survey_id, partner_id)
);

-- One answer per survey and person; the partner's tier and type when it answered.
CREATE TABLE survey_answers (
    answer_id    uuid PRIMARY KEY,
    survey_id    uuid        NOT NULL REFERENCES surveys,
    partner_id   text        NOT NULL,
    respondent   text        NOT NULL,
    score        integer     NOT NULL CHECK (score BETWEEN 0 AND 10),
    comment      text        NOT NULL,
    tier         text,
    partner_type text,
    answered_at  timestamptz NOT NULL,
    UNIQUE (survey_id, respondent),
    FOREIGN KEY (survey_id, partner_id) REFERENCES survey_recipients
);
CREATE INDEX survey_answers_by_time ON survey_answers (answered_at);

-- The partner advisory council: its members (a partner and its representative), its meetings
-- (who attended, what was discussed) and the decisions taken at each.
CREATE TABLE council_members (
    partner_id     text PRIMARY KEY,
    representative text        NOT NULL,
    role           text        NOT NULL,
    joined_on      date        NOT NULL,
    left_on        date,
    recorded_by    text        NOT NULL,
    recorded_at    timestamptz NOT NULL
);

CREATE TABLE council_meetings (
    meeting_id  uuid PRIMARY KEY,
    held_on     date        NOT NULL,
    attendees   text[]      NOT NULL,
    agenda      text        NOT NULL,
    notes       text        NOT NULL,
    decisions   jsonb       NOT NULL,
    recorded_by text        NOT NULL,
    recorded_at timestamptz NOT NULL
);
